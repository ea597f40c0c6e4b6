//! Adding another passkey from the consent page: offered to a sign-in made with a
//! second factor less than [`FRESH_SECS`] ago (the freshness of a pending sign-in, the
//! gate of the first registration); the ceremony is bound to the session, registering
//! does the user's revoke-all, and a new session of the same sign-in (`amr`, `auth_time`)
//! follows.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::request::{AuthRequest, Raw};
use super::{consent, login, unavailable};
use crate::audit::audit;
use crate::http::AppState;
use crate::http::browser::{continue_session, csrf_token};
use crate::http::pages::{PasskeyAdd, PasskeyForm, render};
use crate::oauth::OAuthError;
use crate::passkeys::Started;
use crate::store::{SessionRecord, UserRecord};

/// How recent a sign-in must be to add a passkey from it (as a pending sign-in lasts).
const FRESH_SECS: i64 = 300;

/// Whether `session` may add a passkey: passkeys are available, it was made with a
/// second factor less than [`FRESH_SECS`] ago, and, when its user has a passkey
/// already, with a passkey: otherwise a relayed password and TOTP code would add the
/// phisher's key and reach phr. The consent page offers the button by the same rule.
pub(super) async fn may_add(state: &AppState, session: &SessionRecord) -> Result<bool, OAuthError> {
    let fresh = session.amr.is_mfa()
        && state.clock.now().secs() - session.created_at.secs() < FRESH_SECS
        && crate::passkeys::available(state);
    if !fresh {
        return Ok(false);
    }
    Ok(session.amr.has_passkey() || state.store.passkeys(&session.user_id).await?.is_empty())
}

/// The request's session and its user if they may add a passkey; else the login page.
async fn adding(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
) -> Result<(SessionRecord, UserRecord), Response> {
    let found = async {
        let Some(s) = super::signed_in(state, headers).await? else {
            return Ok::<_, OAuthError>(None);
        };
        if !may_add(state, &s).await? {
            return Ok(None);
        }
        Ok(state.store.user_by_id(&s.user_id).await?.map(|u| (s, u)))
    };
    match found.await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(login::page(
            state,
            headers,
            raw,
            req,
            StatusCode::BAD_REQUEST,
            "",
            Some("Adding a passkey needs a recent sign-in with your second factor. Sign in again."),
        )),
        Err(e) => Err(unavailable(&e)),
    }
}

fn add_page(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    started: &Started,
    status: StatusCode,
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
        &PasskeyAdd {
            csrf: &csrf,
            hidden: &hidden,
            passkey: PasskeyForm {
                id: &started.id,
                options: &started.options,
            },
            label: "another passkey",
            error,
        },
        out,
    )
}

/// `action=passkey_add` (the consent page's "Add a passkey"): the registration page,
/// its ceremony bound to the session.
pub(super) async fn add(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
) -> Response {
    let (session, user) = match adding(state, headers, raw, req).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    match crate::passkeys::begin_registration(state, &user, &session.hash).await {
        Ok(started) => add_page(state, headers, raw, req, &started, StatusCode::OK, None),
        Err(e) => unavailable(&e),
    }
}

/// `action=passkey_register_more`: registers it (the user's revoke-all, in the same
/// transaction, ends this session too) and continues with a new session of the same
/// sign-in (`amr`, `auth_time`, end), stamped with the new generation: adding a passkey
/// is not signing in, so it never makes a session fresher (chaining additions would
/// otherwise keep one sign-in fresh for `max_age` and for adding more).
pub(super) async fn register_more(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
) -> Response {
    let (session, user) = match adding(state, headers, raw, req).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    match super::passkey::finish_from_form(state, raw, req, &user, &session.hash).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            return match crate::passkeys::begin_registration(state, &user, &session.hash).await {
                Ok(s) => add_page(
                    state,
                    headers,
                    raw,
                    req,
                    &s,
                    StatusCode::BAD_REQUEST,
                    Some("The passkey was not registered. Try again."),
                ),
                Err(e) => unavailable(&e),
            };
        }
        Err(e) => return unavailable(&e),
    }
    audit(
        state,
        "mfa.enroll",
        Some(&req.client.id),
        Some(&user.id),
        json!({ "factor": "passkey", "via": "browser", "additional": true }),
    )
    .await;
    let mut out = HeaderMap::new();
    let user = UserRecord {
        generation: session.generation.saturating_add(1),
        ..user
    };
    let fresh = match continue_session(state, &user, &session, &mut out).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    consent::proceed(state, headers, raw, req, &fresh, out).await
}
