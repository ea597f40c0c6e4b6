//! The authorization endpoint (RFC 6749 section 4.1.1 with RFC 7636 PKCE and OpenID
//! Connect Core section 3.1.2): `GET /authorize` validates the request ([`request`]) and
//! shows the login page ([`login`]) or the consent page ([`consent`]); `POST /authorize`
//! receives those forms (CSRF-checked).
//!
//! Until the redirect URI is known to be registered for the client, errors are a page
//! (section 4.1.2.1: never redirect to an unverified URI); after that they go back to the
//! client as `error`, `error_description`, `state` and `iss` (RFC 9207) in the query.

mod consent;
mod login;
mod mfa;
mod passkey;
mod passkey_add;
mod request;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use self::request::{AuthzError, Raw, Refusal, authz_error, validate};
use crate::http::AppState;
use crate::http::browser::{csrf_ok, session};
use crate::http::openapi::{AuthorizeForm, AuthorizeParams};
use crate::http::pages::error_page;
use crate::http::peer::Peer;
use crate::oauth::OAuthError;

/// `prompt=none` without a signed-in user (OpenID Connect Core section 3.1.2.6).
const LOGIN_REQUIRED: AuthzError = authz_error("login_required", "the user is not signed in");

/// Where an answer to the client goes.
#[derive(Clone)]
struct AuthTarget {
    redirect_uri: String,
    state: Option<String>,
}

impl AuthTarget {
    /// `303 See Other` to the redirect URI with `params`, `state` and `iss` added.
    fn redirect(&self, state: &AppState, params: &[(&str, &str)], extra: HeaderMap) -> Response {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(params);
        if let Some(s) = &self.state {
            query.append_pair("state", s);
        }
        query.append_pair("iss", &state.issuer);
        let sep = if self.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let location = format!("{}{sep}{}", self.redirect_uri, query.finish());
        let mut response = StatusCode::SEE_OTHER.into_response();
        let headers = response.headers_mut();
        headers.extend(extra);
        if let Ok(v) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, v);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// The redirect carrying `e` as `error` and `error_description`.
    fn error(&self, state: &AppState, e: AuthzError, extra: HeaderMap) -> Response {
        self.redirect(
            state,
            &[("error", e.error), ("error_description", e.description)],
            extra,
        )
    }
}

fn refused(state: &AppState, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(m) => error_page(StatusCode::BAD_REQUEST, m),
        Refusal::Redirect(target, e) => target.error(state, e, HeaderMap::new()),
    }
}

/// The request's live session if it is strong enough to stand for a sign-in now: one
/// without a second factor does not count for a user who has confirmed one since (or
/// under `mfa = "required"`); they sign in again, with it. The confirmation ends such
/// sessions already (the user's revoke-all); this holds the line should one escape it.
pub(super) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<crate::store::SessionRecord>, OAuthError> {
    let Some(s) = session(state, headers).await? else {
        return Ok(None);
    };
    if s.amr.is_mfa() {
        return Ok(Some(s));
    }
    if state.config.login.mfa == crate::config::MfaMode::Required
        || crate::mfa::enrolled(state, &s.user_id).await?
    {
        return Ok(None);
    }
    Ok(Some(s))
}

fn unavailable(e: &OAuthError) -> Response {
    tracing::error!(error = %e, "authorization endpoint failed");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The sign-in service is temporarily unavailable; try again.",
    )
}

/// `GET /authorize`.
#[utoipa::path(
    get,
    path = "/authorize",
    tag = "browser",
    params(AuthorizeParams),
    responses(
        (status = 200, description = "Login or consent page", content_type = "text/html", body = String),
        (status = 303, description = "Back to the client's redirect URI with `code` or `error`", headers(("Location" = String))),
        (status = 400, description = "Error page (unknown client or unregistered redirect URI)", content_type = "text/html", body = String),
        (status = 503, description = "Error page: the store is unreachable", content_type = "text/html", body = String),
    )
)]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = Raw::parse(query.unwrap_or_default().as_bytes());
    let req = match validate(&state, &raw).await {
        Ok(r) => r,
        Err(refusal) => return refused(&state, refusal),
    };
    tracing::Span::current().record("client_id", req.client.id.as_str());
    match signed_in(&state, &headers).await {
        Ok(Some(s)) => consent::proceed(&state, &headers, &raw, &req, &s, HeaderMap::new()).await,
        Ok(None) if req.prompt_none => req.target.error(&state, LOGIN_REQUIRED, HeaderMap::new()),
        Ok(None) => login::page(&state, &headers, &raw, &req, StatusCode::OK, "", None),
        Err(e) => unavailable(&e),
    }
}

/// `POST /authorize`: the login form (`action=login`), the second-factor forms
/// (`action=mfa`, `enrol`, `continue`, `passkey`, `passkey_register`), the passkey
/// sign-in (`login` with `passkey=1`, then `passkey_login`) and the consent form (`action=approve` or `deny`). Every post must carry the CSRF token.
#[utoipa::path(
    post,
    path = "/authorize",
    tag = "browser",
    request_body(content = AuthorizeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Login or consent page (again)", content_type = "text/html", body = String),
        (status = 303, description = "Back to the client's redirect URI with `code` or `error`", headers(("Location" = String))),
        (status = 400, description = "Error page, or the login page again after a failed sign-in (one message for every cause)", content_type = "text/html", body = String),
        (status = 403, description = "Missing or wrong CSRF token", content_type = "text/html", body = String),
        (status = 429, description = "Login page again: too many failed attempts from this network", content_type = "text/html", body = String, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Error page: the store is unreachable; or the login page again: too many password checks waiting (`password_hash_queue`, with `Retry-After`)", content_type = "text/html", body = String),
    )
)]
pub(crate) async fn post(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = Raw::parse(&body);
    if !csrf_ok(&state, &headers, raw.get("csrf")) {
        tracing::info!("form post without a valid CSRF token refused");
        return error_page(
            StatusCode::FORBIDDEN,
            "This form expired or was sent from another site. Go back, reload the page and try again.",
        );
    }
    let req = match validate(&state, &raw).await {
        Ok(r) => r,
        Err(refusal) => return refused(&state, refusal),
    };
    tracing::Span::current().record("client_id", req.client.id.as_str());
    match raw.get("action") {
        Some("login") if raw.get("passkey") == Some("1") => {
            passkey::start(&state, &headers, peer, &raw, &req).await
        }
        Some("login") => login::sign_in(&state, &headers, peer, &raw, &req).await,
        Some("mfa") => mfa::answer_code(&state, &headers, peer, &raw, &req).await,
        Some("passkey") => mfa::answer_passkey(&state, &headers, peer, &raw, &req).await,
        Some("passkey_register") => passkey::register(&state, &headers, &raw, &req).await,
        Some("passkey_add") => passkey_add::add(&state, &headers, &raw, &req).await,
        Some("passkey_register_more") => {
            passkey_add::register_more(&state, &headers, &raw, &req).await
        }
        Some("passkey_login") => passkey::sign_in(&state, &headers, peer, &raw, &req).await,
        Some("enrol") => mfa::answer_enrol(&state, &headers, &raw, &req).await,
        Some("continue") => match signed_in(&state, &headers).await {
            Ok(Some(s)) => {
                consent::proceed(&state, &headers, &raw, &req, &s, HeaderMap::new()).await
            }
            Ok(None) => login::page(&state, &headers, &raw, &req, StatusCode::OK, "", None),
            Err(e) => unavailable(&e),
        },
        Some(action @ ("approve" | "deny")) => {
            consent::answer(&state, &headers, &raw, &req, action == "approve").await
        }
        _ => error_page(StatusCode::BAD_REQUEST, "The form is incomplete."),
    }
}
