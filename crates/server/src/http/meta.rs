//! Metadata endpoints: the JWK Set, discovery (RFC 8414 and OpenID Connect Discovery),
//! liveness and readiness.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::openapi::JwkSet;
use crate::http::{
    AUTHORIZE_PATH, FEED_PATH, INTROSPECT_PATH, JWKS_PATH, LOGOUT_PATH, REVOKE_PATH, TOKEN_PATH,
    USERINFO_PATH,
};
use crate::store::GrantType;

#[utoipa::path(
    get,
    path = "/jwks.json",
    tag = "meta",
    responses((status = 200, description = "Public signing keys (RFC 7517)", body = JwkSet))
)]
pub(crate) async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let ring = state.keys.current();
    let mut r = Json(ring.jwks().clone()).into_response();
    // Resource servers may cache it this long; new keys are published at least this early.
    let max_age = state.config.signing.jwks_cache_ttl.as_secs();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

/// RFC 8414 authorization server metadata, which is also the OpenID Connect Discovery
/// document.
// The served type is the documented type, so the schema cannot drift from the document (a
// test checks it). Members in alphabetical order: the bytes the former `json!` map (sorted)
// produced.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServerMetadata {
    /// The assurance ladder of `acr` in ID tokens and user access tokens, lowest first.
    acr_values_supported: &'static [&'static str],
    authorization_endpoint: String,
    authorization_response_iss_parameter_supported: bool,
    /// The `claims` request parameter (OpenID Connect Core section 5.5), read for `acr`.
    claims_parameter_supported: bool,
    claims_supported: &'static [&'static str],
    code_challenge_methods_supported: &'static [&'static str],
    /// Algorithms a DPoP proof may use at the token endpoint (RFC 9449 section 5.1).
    dpop_signing_alg_values_supported: &'static [&'static str],
    /// OpenID Connect RP-Initiated Logout.
    end_session_endpoint: String,
    grant_types_supported: Vec<&'static str>,
    /// Algorithms that sign ID tokens: `RS256` (the default, OpenID Connect Discovery
    /// section 3) first, then the others a client may register.
    id_token_signing_alg_values_supported: Vec<&'static str>,
    introspection_endpoint: String,
    introspection_endpoint_auth_methods_supported: &'static [&'static str],
    issuer: String,
    jwks_uri: String,
    prompt_values_supported: &'static [&'static str],
    response_modes_supported: &'static [&'static str],
    response_types_supported: &'static [&'static str],
    revocation_endpoint: String,
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    scopes_supported: &'static [&'static str],
    subject_types_supported: &'static [&'static str],
    /// Algorithms of the keys that sign access tokens (Tessera's own member).
    tessera_access_token_signing_alg_values_supported: Vec<&'static str>,
    /// The revocation feed (docs/revocation-feed.md; Tessera's own member).
    tessera_revocation_feed_endpoint: String,
    token_endpoint: String,
    token_endpoint_auth_methods_supported: &'static [&'static str],
    userinfo_endpoint: String,
}

/// Client authentication at `/revoke` and `/introspect` (confidential clients only).
const CONFIDENTIAL_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post"];

#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "meta",
    responses((status = 200, description = "RFC 8414 metadata", body = ServerMetadata))
)]
pub(crate) async fn discovery(State(state): State<Arc<AppState>>) -> Response {
    Json(metadata(&state)).into_response()
}

/// The metadata document of this server, as its keys stand now.
fn metadata(state: &AppState) -> ServerMetadata {
    let ring = state.keys.current();
    ServerMetadata {
        issuer: state.issuer.clone(),
        acr_values_supported: &crate::oidc::ACR_VALUES,
        authorization_endpoint: state.url(AUTHORIZE_PATH),
        token_endpoint: state.url(TOKEN_PATH),
        jwks_uri: state.url(JWKS_PATH),
        userinfo_endpoint: state.url(USERINFO_PATH),
        end_session_endpoint: state.url(LOGOUT_PATH),
        grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str()).collect(),
        response_types_supported: &["code"],
        response_modes_supported: &["query"],
        code_challenge_methods_supported: &["S256"],
        dpop_signing_alg_values_supported: &tessera_token::dpop::PROOF_ALGS,
        authorization_response_iss_parameter_supported: true,
        claims_parameter_supported: true,
        prompt_values_supported: &["none", "login"],
        scopes_supported: &["openid", "profile"],
        claims_supported: &[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "amr",
            "nonce",
            "at_hash",
            "sid",
            "preferred_username",
        ],
        subject_types_supported: &["public"],
        token_endpoint_auth_methods_supported: &[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        revocation_endpoint: state.url(REVOKE_PATH),
        revocation_endpoint_auth_methods_supported: CONFIDENTIAL_AUTH_METHODS,
        introspection_endpoint: state.url(INTROSPECT_PATH),
        introspection_endpoint_auth_methods_supported: CONFIDENTIAL_AUTH_METHODS,
        id_token_signing_alg_values_supported: ring.id_token_algorithms(),
        tessera_access_token_signing_alg_values_supported: ring.algorithms(),
        tessera_revocation_feed_endpoint: state.url(FEED_PATH),
    }
}

/// OpenID Connect Discovery: the same document as [`discovery`].
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "meta",
    responses((status = 200, description = "OpenID Connect Discovery metadata", body = ServerMetadata))
)]
pub(crate) async fn openid_configuration(state: State<Arc<AppState>>) -> Response {
    discovery(state).await
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    responses((status = 200, description = "The process is up", body = String, content_type = "text/plain"))
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "meta",
    responses(
        (status = 200, description = "The store answers", body = String, content_type = "text/plain"),
        (status = 503, description = "The store does not answer, or the server is shutting down", body = String, content_type = "text/plain"),
    )
)]
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            metrics::counter!(crate::metrics::STORE_ERRORS).increment(1);
            tracing::warn!(error = %e, "store not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}
