//! `POST /token` (RFC 6749 section 3.2): parse the form, authenticate the client, run the
//! grant (with the DPoP proof, if any, checked first: RFC 9449 section 5), answer with
//! `Cache-Control: no-store`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::audit::RequestContext;
use crate::dpop;
use crate::grants::{self, TokenResponse};
use crate::http::client_auth::{self, Public};
use crate::http::error::{DPOP_NONCE, no_store};
use crate::http::form;
use crate::http::openapi::{ClientErrors, TokenRequest};
use crate::http::peer::Peer;
use crate::http::{AppState, TOKEN_PATH};
use crate::oauth::OAuthError;

/// The `DPoP` request header (RFC 9449 section 4.1).
const DPOP: HeaderName = HeaderName::from_static("dpop");

#[utoipa::path(
    post,
    path = "/token",
    tag = "oauth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof JWT (RFC 9449): the access token is then bound to its key")),
    responses((status = 200, description = "Tokens issued", body = TokenResponse), ClientErrors),
    security((), ("client_basic" = []))
)]
pub(crate) async fn token(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect());
    let ctx = RequestContext {
        ip: peer.0,
        user_agent,
    };
    let mut response = match run(&state, &headers, &body, ctx).await {
        Ok(ok) => {
            let mut response = Json(ok).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(e) => {
            tracing::info!(error = e.code(), "token request refused");
            e.into_response()
        }
    };
    // RFC 9449 section 8.2: when nonces are required, every answer carries the current
    // one, so the client's next proof can include it.
    if let Some(nonce) = dpop::nonce_to_send(&state)
        && !response.headers().contains_key(DPOP_NONCE)
        && let Ok(v) = HeaderValue::from_str(&nonce)
    {
        response.headers_mut().insert(DPOP_NONCE, v);
    }
    response
}

async fn run(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: &[u8],
    ctx: RequestContext,
) -> Result<TokenResponse, OAuthError> {
    let params = form::parse(headers, body)?;
    grants::grant_type(&params)?;
    let proofs = headers
        .get_all(DPOP)
        .iter()
        .map(|v| v.to_str())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| OAuthError::InvalidDpopProof("the DPoP header is not ASCII"))?;
    let proof = dpop::check(state, &proofs, "POST", &state.url(TOKEN_PATH))?;
    let client = client_auth::authenticate(state, headers, &params, Public::Allowed).await?;
    grants::exchange(&state.core, &client, &params, ctx, proof.as_ref()).await
}
