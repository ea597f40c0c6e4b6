//! Forward-auth mode: answers the authorization sub-request of nginx `auth_request`,
//! Traefik `ForwardAuth` and Envoy `ext_authz` (HTTP service) with 200 and identity headers,
//! or the guard's 401/403 and its challenge. nginx and Traefik ask at [`CHECK_PATH`];
//! Envoy asks at `envoy_path_prefix` + the original path. `/healthz` (alive),
//! `/readyz` (deciding on tokens yet) and the RFC 9728 metadata are the gateway's own.

mod original;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::config::{ForwardAuthConfig, ProxyKind};
use crate::decide::{Decision, Gateway};

pub use original::{Garbled, MAX_URI_LEN, Source};

/// Where nginx and Traefik send their sub-requests.
pub const CHECK_PATH: &str = "/auth";

struct Checker {
    gateway: Arc<Gateway>,
    source: Source,
}

/// The forward-auth router for `gateway` behind the proxy `config` names.
pub fn router(gateway: Arc<Gateway>, config: &ForwardAuthConfig) -> Router {
    let source = Source::new(config.proxy, config.envoy_path_prefix.as_deref());
    let metadata = gateway.guard().metadata_router();
    let checker = Arc::new(Checker {
        gateway: gateway.clone(),
        source,
    });
    let checks: Router<Arc<Checker>> = match config.proxy {
        ProxyKind::Nginx | ProxyKind::Traefik => Router::new().route(CHECK_PATH, any(check)),
        ProxyKind::Envoy => {
            // The prefix is checked by config (a path, not `/`, no trailing `/`).
            let prefix = config.envoy_path_prefix.as_deref().unwrap_or("/check");
            Router::new()
                .route(&format!("{prefix}/"), any(check))
                .route(&format!("{prefix}/{{*original}}"), any(check))
        }
    };
    checks
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(checker)
        .merge(metadata)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not a forward-auth path") })
}

async fn readyz(State(c): State<Arc<Checker>>) -> Response {
    c.gateway.readiness()
}

/// One sub-request: rebuild the original head, decide, answer.
async fn check(State(c): State<Arc<Checker>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let original = match c.source.original(&parts) {
        Ok(original) => original,
        Err(e) => {
            tracing::debug!(proxy = ?c.source.kind(), error = %e, "refused a sub-request");
            return no_store((StatusCode::BAD_REQUEST, e.to_string()).into_response());
        }
    };
    let decision = c.gateway.decide(&original).await;
    // The path only: a query may carry anything, and no credential is ever logged.
    tracing::debug!(
        method = %original.method,
        path = original.uri.path(),
        allowed = matches!(decision, Decision::Allow(_)),
        "forward-auth decision"
    );
    match decision {
        Decision::Allow(allowed) => {
            // Every identity header is sent, empty when the token lacks it, so a proxy
            // that copies the answer's headers over the request's (Traefik, Envoy)
            // overwrites a client's copy even then.
            let mut headers = HeaderMap::new();
            for name in c.gateway.identity_header_names() {
                headers.insert(name.clone(), HeaderValue::from_static(""));
            }
            for (name, value) in allowed.headers {
                if let Some(name) = name {
                    headers.insert(name, value);
                }
            }
            no_store((StatusCode::OK, headers).into_response())
        }
        Decision::Deny(response) => no_store(one_challenge_line(response)),
    }
}

/// Joins several `WWW-Authenticate` lines (`Bearer` and `DPoP`) into one, a
/// comma-separated list of challenges (RFC 9110 section 11.6.1): nginx 1.22's
/// `$upstream_http_www_authenticate` holds only the first line of a header.
fn one_challenge_line(mut response: Response) -> Response {
    let lines: Vec<&[u8]> = response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if lines.len() < 2 {
        return response;
    }
    let joined = lines.join(&b", "[..]);
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
