//! The login step of the authorization endpoint: the sign-in page, and the sign-in form
//! checked through the one login check ([`crate::login`], as the password grant does),
//! which starts a browser session, or, for a user with a second factor (or one to
//! enrol), hands over to [`mfa`].

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;
use tessera_token::SecretString;

use super::assurance::UNMET;
use super::request::{AuthRequest, Raw};
use super::{consent, mfa, unavailable};
use crate::audit::{RequestContext, audit};
use crate::config::MfaMode;
use crate::http::AppState;
use crate::http::browser::{csrf_token, start_session};
use crate::http::pages::{Login, render};
use crate::http::peer::Peer;
use crate::login::{self, Attempt, LoginFailure, Via};
use crate::oidc::{ACR_MFA, ACR_PHR, ACR_PWD};
use crate::store::Amr;

/// The one message for every failed sign-in (unknown user, wrong password, disabled).
const BAD_LOGIN: &str = "Wrong username or password.";

/// The login page, with `username` filled in and `error` shown when given.
pub(super) fn page(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Response {
    let mut out = HeaderMap::new();
    let csrf = match csrf_token(state, headers, &mut out) {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let hidden = req.hidden(state, raw);
    render(
        status,
        &Login {
            client_name: &req.client.name,
            csrf: &csrf,
            hidden: &hidden,
            username,
            error,
            offer_enrol: state.config.login.mfa == MfaMode::Optional,
            offer_passkey: crate::passkeys::available(state),
        },
        out,
    )
}

/// The peer and its user agent (truncated), for throttling and audit.
pub(super) fn context(headers: &HeaderMap, peer: Peer) -> RequestContext {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect());
    RequestContext {
        ip: peer.0,
        user_agent,
    }
}

/// Adds `Retry-After` to a page answering 429 or 503.
pub(super) fn retry_later(mut page: Response, retry_after: u64) -> Response {
    page.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    page
}

/// `action=login`: checks the credentials and starts a session; then the consent page or
/// the code. Every failed check shows the same message.
pub(super) async fn sign_in(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    peer: Peer,
    raw: &Raw,
    req: &AuthRequest,
) -> Response {
    let ctx = context(headers, peer);
    let username = raw.get("username").unwrap_or_default();
    let again = |status, error| page(state, headers, raw, req, status, username, Some(error));
    if username.is_empty() || raw.get("password").is_none() {
        return again(StatusCode::BAD_REQUEST, "Enter your username and password.");
    }
    let password = SecretString::new(raw.get("password").unwrap_or_default());
    let attempt = Attempt {
        client_id: &req.client.id,
        ctx: &ctx,
        via: Via::Browser,
    };
    let user = match login::authenticate(&state.core, username, password, &attempt).await {
        Ok(u) => u,
        // 400, not 401: a form sign-in has no HTTP authentication scheme to name in the
        // WWW-Authenticate challenge every 401 must carry (RFC 9110 11.6.1).
        Err(LoginFailure::BadCredentials) => return again(StatusCode::BAD_REQUEST, BAD_LOGIN),
        Err(LoginFailure::Throttled { retry_after }) => {
            return retry_later(
                again(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed attempts. Wait a little and try again.",
                ),
                retry_after,
            );
        }
        Err(LoginFailure::Busy { retry_after }) => {
            return retry_later(
                again(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The sign-in service is busy. Wait a moment and try again.",
                ),
                retry_after,
            );
        }
        Err(LoginFailure::Unavailable(e)) => return unavailable(&e),
    };
    let enrolled = match crate::mfa::enrolled(state, &user.id).await {
        Ok(e) => e,
        Err(e) => return unavailable(&e),
    };
    // A request for more than a password (acr_values, claims) needs the factor: asked
    // for when enrolled, enrolled now where `mfa` allows it, refused otherwise; more than
    // any second factor gives cannot be met at all. `phr` needs a passkey: the user's
    // (the code page offers only it) or, for a user without a factor, one registered on
    // the enrolment page (which offers only that).
    let needs_factor = req.assurance.beyond(ACR_PWD);
    let reachable = match phr_reachable(state, req, &user.id, enrolled).await {
        Ok(r) => r,
        Err(e) => return unavailable(&e),
    };
    if !reachable || (needs_factor && !enrolled && state.config.login.mfa == MfaMode::Off) {
        return req.target.error(state, UNMET, HeaderMap::new());
    }
    let enrol = match state.config.login.mfa {
        MfaMode::Off => false,
        MfaMode::Optional => needs_factor || raw.get("enrol") == Some("1"),
        MfaMode::Required => true,
    };
    if enrolled || enrol {
        // A factor enrolled is always asked for: no session until it is given.
        return mfa::start(state, headers, raw, req, &user, enrolled).await;
    }
    let mut out = HeaderMap::new();
    let session = match start_session(state, &user, Amr::password(), &mut out).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    audit(
        state,
        "session.start",
        Some(&req.client.id),
        Some(&user.id),
        json!({}),
    )
    .await;
    consent::proceed(state, headers, raw, req, &session, out).await
}

/// Whether the level asked can be reached after the password: always below `phr`; for
/// `phr`, with the user's passkey, or (no factor yet) with passkeys available to
/// register one; never beyond `phr`.
async fn phr_reachable(
    state: &AppState,
    req: &AuthRequest,
    user_id: &str,
    enrolled: bool,
) -> Result<bool, crate::oauth::OAuthError> {
    if req.assurance.beyond(ACR_PHR) {
        return Ok(false);
    }
    if !req.assurance.beyond(ACR_MFA) {
        return Ok(true);
    }
    if !crate::passkeys::available(state) {
        return Ok(false);
    }
    if !enrolled {
        return Ok(true);
    }
    Ok(!state.store.passkeys(user_id).await?.is_empty())
}
