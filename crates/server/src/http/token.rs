//! `POST /token` (RFC 6749 section 3.2): parse the form, authenticate the client, run the
//! grant, answer with `Cache-Control: no-store`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::audit::RequestContext;
use crate::grants::{self, TokenResponse};
use crate::http::AppState;
use crate::http::client_auth::{self, Public};
use crate::http::openapi::{ClientErrors, TokenRequest};
use crate::http::peer::Peer;
use crate::http::{error::no_store, form};
use crate::oauth::OAuthError;

#[utoipa::path(
    post,
    path = "/token",
    tag = "oauth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
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
    match run(&state, &headers, &body, ctx).await {
        Ok(ok) => {
            let mut response = Json(ok).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(e) => {
            tracing::info!(error = e.code(), "token request refused");
            e.into_response()
        }
    }
}

async fn run(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: &[u8],
    ctx: RequestContext,
) -> Result<TokenResponse, OAuthError> {
    let params = form::parse(headers, body)?;
    grants::grant_type(&params)?;
    let client = client_auth::authenticate(state, headers, &params, Public::Allowed).await?;
    grants::exchange(&state.core, &client, &params, ctx).await
}
