//! `POST /introspect` (RFC 7662): confidential clients only.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::client_auth::{self, Public};
use crate::http::openapi::{ClientErrors, TokenOperationRequest};
use crate::http::{error::no_store, form};
use crate::oauth::OAuthError;
use crate::tokens::{self, IntrospectionResponse};

#[utoipa::path(
    post,
    path = "/introspect",
    tag = "oauth",
    request_body(content = TokenOperationRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The token's state", body = IntrospectionResponse), ClientErrors),
    security((), ("client_basic" = []))
)]
pub(crate) async fn introspect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&state, &headers, &body).await {
        Ok(v) => {
            let mut r = Json(v).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<IntrospectionResponse, OAuthError> {
    let params = form::parse(headers, body)?;
    let client = client_auth::authenticate(state, headers, &params, Public::Refused).await?;
    let token = params.require("token")?;
    tokens::introspect(state, &client, token).await
}
