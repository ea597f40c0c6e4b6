//! `GET /revocations`: the revocation feed, exactly as docs/revocation-feed.md specifies.
//! A page of JSON (pull), or with `Accept: text/event-stream` a push subscription
//! ([`feed_push`](super::feed_push)). HTTP Basic only; any confidential client may read it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::feed::{self, DEFAULT_LIMIT, MAX_LIMIT, Page};
use crate::http::AppState;
use crate::http::client_auth;
use crate::http::error::no_store;
use crate::http::feed_push;
use crate::http::openapi::ClientErrors;
use crate::oauth::OAuthError;

/// One page of the revocation feed (docs/revocation-feed.md).
// The served type is the documented type. Members in alphabetical order: the bytes the
// former `json!` map (sorted) produced.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RevocationFeed {
    /// Opaque cursor for the next `after`.
    cursor: String,
    /// Whether another page follows.
    has_more: bool,
    /// Revoked token ids (`jti`) or grant ids (`sid`) with their expiry.
    revoked: Vec<RevokedEntry>,
}

/// One revoked token (by `jti`) or grant (by `sid`), with the time its tokens expire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum RevokedEntry {
    /// A revoked access token.
    Token { exp: i64, jti: String },
    /// A revoked grant: every token of it.
    Grant { exp: i64, sid: Option<String> },
}

impl From<Page> for RevocationFeed {
    fn from(p: Page) -> Self {
        let revoked = p
            .entries
            .into_iter()
            .map(|e| match e.jti {
                Some(jti) => RevokedEntry::Token {
                    exp: e.exp.secs(),
                    jti,
                },
                None => RevokedEntry::Grant {
                    exp: e.exp.secs(),
                    sid: e.sid,
                },
            })
            .collect();
        RevocationFeed {
            cursor: p.cursor.to_string(),
            has_more: p.has_more,
            revoked,
        }
    }
}

#[utoipa::path(
    get,
    path = "/revocations",
    tag = "oauth",
    params(
        ("after" = Option<String>, Query, description = "Cursor of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 500)"),
        ("Last-Event-ID" = Option<String>, Header, description = "With Accept: text/event-stream, the cursor to resume after (wins over after)"),
    ),
    responses(
        (status = 200, description = "One page of the feed; with Accept: text/event-stream, a push subscription whose `revoked` events carry pages of this shape", body = RevocationFeed),
        ClientErrors
    ),
    security(("client_basic" = []))
)]
pub(crate) async fn feed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut params = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return OAuthError::invalid_request("a query parameter is repeated").into_response();
        }
    }
    if feed_push::wanted(&headers) {
        return match feed_push::subscribe(&state, &headers, &params).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
    }
    match run(&state, &headers, &params).await {
        Ok(v) => {
            let mut r = Json(v).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => e.into_response(),
    }
}

/// Authenticates the feed's reader (HTTP Basic, a confidential client); its id.
pub(super) async fn reader(state: &AppState, headers: &HeaderMap) -> Result<String, OAuthError> {
    let Some((id, secret)) = client_auth::basic_credentials(headers)? else {
        return Err(OAuthError::InvalidClient);
    };
    client_auth::confidential(state, &id, &secret).await?;
    Ok(id)
}

/// The cursor `raw` names (absent: 0, the beginning), if this server issued it.
pub(super) async fn cursor(state: &AppState, raw: Option<&str>) -> Result<i64, OAuthError> {
    let Some(raw) = raw else { return Ok(0) };
    let last = state.store.last_revocation_seq().await?;
    feed::cursor(raw, last)
        .ok_or_else(|| OAuthError::invalid_request("after is not a cursor this server issued"))
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<RevocationFeed, OAuthError> {
    reader(state, headers).await?;
    let after = cursor(state, query.get("after").map(String::as_str)).await?;
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<u64>() {
            Ok(n) if n >= 1 => u32::try_from(n.min(u64::from(MAX_LIMIT))).unwrap_or(MAX_LIMIT),
            _ => {
                return Err(OAuthError::invalid_request(
                    "limit must be a positive integer",
                ));
            }
        },
    };
    let page = feed::page(&*state.store, after, limit, state.clock.now()).await?;
    Ok(page.into())
}
