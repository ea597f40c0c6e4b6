//! HTTP: the router and one module per endpoint. Handlers are thin: extract, call the
//! grant or store, convert.

mod authorize;
mod browser;
mod client_auth;
mod cors;
mod error;
mod feed;
mod feed_push;
mod form;
mod introspect;
mod logout;
mod meta;
mod metrics_access;
mod observe;
mod openapi;
mod pages;
mod peer;
mod revoke;
mod scrape;
mod state;
mod token;
mod userinfo;

pub(crate) use error::{BodyTimedOut, Flagged, no_store};
pub use metrics_access::MetricsToken;
pub use state::AppState;
pub(crate) use userinfo::UserinfoGuard;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::{get, post};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest request body accepted (form posts are small).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/token";
/// Path of the JWK Set.
pub const JWKS_PATH: &str = "/jwks.json";
/// Path of the RFC 7009 revocation endpoint.
pub const REVOKE_PATH: &str = "/revoke";
/// Path of the RFC 7662 introspection endpoint.
pub const INTROSPECT_PATH: &str = "/introspect";
/// Path of the revocation feed (docs/revocation-feed.md).
pub const FEED_PATH: &str = "/revocations";
/// Path of the Prometheus metrics (docs/operations.md).
pub const METRICS_PATH: &str = "/metrics";
/// Path of the authorization endpoint (login and consent pages).
pub const AUTHORIZE_PATH: &str = "/authorize";
/// Path of the OpenID Connect userinfo endpoint.
pub const USERINFO_PATH: &str = "/userinfo";
/// Path of the OpenID Connect end-session (RP-initiated logout) endpoint.
pub const LOGOUT_PATH: &str = "/logout";
pub use openapi::OPENAPI_PATH;

/// The server's routes. Every request gets an id, a log line and metrics
/// (`observe`); `Authorization`, `Cookie` and `DPoP` are marked sensitive as well, so no
/// layer can log them. `/metrics` is among them unless `metrics_listen` moves it to
/// [`metrics_router`].
pub fn router(state: Arc<AppState>) -> Router {
    crate::metrics::install();
    let mut routes = Router::new()
        .merge(browser_facing(&state))
        .route(AUTHORIZE_PATH, get(authorize::get).post(authorize::post))
        .route(LOGOUT_PATH, get(logout::get).post(logout::post))
        .merge(
            Router::new()
                .route(INTROSPECT_PATH, post(introspect::introspect))
                .layer(axum::middleware::from_fn(error::json_rejections)),
        )
        .route(FEED_PATH, get(feed::feed))
        .route("/healthz", get(meta::healthz))
        .route("/passkey.js", get(pages::passkey_js))
        .route("/readyz", get(meta::readyz))
        .route(OPENAPI_PATH, get(openapi::openapi_json));
    if state.config.metrics.metrics_listen.is_none() {
        routes = routes.merge(metrics_route(&state));
    }
    finish(routes, state)
}

/// The routes of the `metrics_listen` listener: `/metrics` only.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    crate::metrics::install();
    finish(metrics_route(&state), state)
}

/// `/metrics`, behind the bearer token when `metrics_token_file` is set.
fn metrics_route(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route(METRICS_PATH, get(scrape::scrape))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            metrics_access::require,
        ))
}

/// The layers every listener has: body limit, request observation, sensitive headers.
fn finish(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(observe::observe))
        // Every answer (JSON too) is what its Content-Type says: no sniffing.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        ))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            header::HeaderName::from_static("dpop"),
        ]))
        .with_state(state)
}

/// The endpoints a browser application calls cross-origin (token, revocation, userinfo,
/// keys, discovery), with CORS for the configured origins (none: no CORS headers).
fn browser_facing(state: &AppState) -> Router<Arc<AppState>> {
    let routes = Router::new()
        .route(TOKEN_PATH, post(token::token))
        .route(REVOKE_PATH, post(revoke::revoke))
        .route(
            USERINFO_PATH,
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(JWKS_PATH, get(meta::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(meta::discovery),
        )
        .route(
            "/.well-known/openid-configuration",
            get(meta::openid_configuration),
        )
        .layer(axum::middleware::from_fn(error::json_rejections));
    match cors::layer(&state.config.browser) {
        Some(layer) => routes.layer(layer),
        None => routes,
    }
}

#[cfg(test)]
mod tests;
