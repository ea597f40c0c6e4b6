//! `POST /revoke` (RFC 7009): client-authenticated; 200 for unknown tokens, 400
//! `unauthorized_client` for a token issued to another client, 429 when a revocation that
//! would write is past the client's rate ([`crate::tokens::revoke`] charges it).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::client_auth::{self, Public};
use crate::http::openapi::{ClientErrors, TokenOperationRequest};
use crate::http::{error::no_store, form};
use crate::oauth::OAuthError;
use crate::tokens;

#[utoipa::path(
    post,
    path = "/revoke",
    tag = "oauth",
    request_body(content = TokenOperationRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked, or the token was unknown"), ClientErrors),
    security((), ("client_basic" = []))
)]
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&state, &headers, &body).await {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn run(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
    let params = form::parse(headers, body)?;
    let client = client_auth::authenticate(state, headers, &params, Public::Allowed).await?;
    let token = params.require("token")?;
    tokens::revoke(state, &client, token).await
}
