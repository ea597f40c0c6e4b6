//! The second-factor step of the authorization endpoint, between a correct password and
//! the session: the code page (a TOTP code or a recovery code, checked by
//! [`crate::login::second_factor`]), the enrolment page (QR code, key, first code) and the
//! recovery codes shown once. The state in between is a pending sign-in in the store,
//! by the hash of a short-lived cookie ([`crate::http::browser::start_pending`]), taken
//! once by the step that starts the session. Without it no step here does anything.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::login::{context, retry_later};
use super::request::{AuthRequest, Raw};
use super::{consent, login, unavailable};
use crate::audit::audit;
use crate::http::AppState;
use crate::http::browser::{csrf_token, pending, start_pending, start_session, take_pending};
use crate::http::pages::{MfaCode, MfaEnrol, MfaRecovery, render};
use crate::http::peer::Peer;
use crate::login::{Attempt, Factor, LoginFailure, Via};
use crate::mfa::{self as factors, Enrolment};
use crate::oauth::OAuthError;
use crate::store::{Amr, PendingSignIn, UserRecord};

/// The message for a wrong, replayed or used code.
const BAD_CODE: &str =
    "That code is not right, or was used already. Wait for the next code and try again.";
/// The pending sign-in is gone (expired, used, or the user was reset or disabled).
const EXPIRED: &str = "Your sign-in expired. Sign in again.";

/// After a correct password: records the pending sign-in and shows the code page (a
/// factor is enrolled) or the enrolment page.
pub(super) async fn start(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    user: &UserRecord,
    enrolled: bool,
) -> Response {
    let mut out = HeaderMap::new();
    if let Err(e) = start_pending(state, user, &mut out).await {
        return unavailable(&e);
    }
    if enrolled {
        return code_page(state, headers, raw, req, StatusCode::OK, None, out);
    }
    match factors::begin(state, user).await {
        Ok(Some(e)) => enrol_page(state, headers, raw, req, &e, StatusCode::OK, None, out),
        // Confirmed meanwhile (another browser): ask for it.
        Ok(None) => code_page(state, headers, raw, req, StatusCode::OK, None, out),
        Err(e) => unavailable(&e),
    }
}

/// The request's pending sign-in and its user, or the login page saying it expired.
async fn pending_user(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
) -> Result<(PendingSignIn, UserRecord), Response> {
    let found = async {
        let Some(p) = pending(state, headers).await? else {
            return Ok::<_, OAuthError>(None);
        };
        Ok(state.store.user_by_id(&p.user_id).await?.map(|u| (p, u)))
    };
    match found.await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(expired(state, headers, raw, req)),
        Err(e) => Err(unavailable(&e)),
    }
}

fn expired(state: &AppState, headers: &HeaderMap, raw: &Raw, req: &AuthRequest) -> Response {
    login::page(
        state,
        headers,
        raw,
        req,
        StatusCode::BAD_REQUEST,
        "",
        Some(EXPIRED),
    )
}

/// `action=mfa`: checks the code; on success takes the pending sign-in and starts the
/// session, then consent or the code.
pub(super) async fn answer_code(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    peer: Peer,
    raw: &Raw,
    req: &AuthRequest,
) -> Response {
    let (pending, user) = match pending_user(state, headers, raw, req).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let again = |status, error| {
        code_page(
            state,
            headers,
            raw,
            req,
            status,
            Some(error),
            HeaderMap::new(),
        )
    };
    let code = raw.get("code").unwrap_or_default();
    if code.trim().is_empty() {
        return again(StatusCode::BAD_REQUEST, "Enter the code.");
    }
    let ctx = context(headers, peer);
    let attempt = Attempt {
        client_id: &req.client.id,
        ctx: &ctx,
        via: Via::Browser,
    };
    match crate::login::second_factor(&state.core, &user, &pending.hash, code, &attempt).await {
        Ok(factor) => {
            let amr = match factor {
                Factor::Totp => Amr::password_and_otp(),
                Factor::Recovery => Amr::password_and_recovery_code(),
            };
            finish(state, headers, raw, req, &pending, &user, amr).await
        }
        Err(LoginFailure::BadCredentials) => again(StatusCode::BAD_REQUEST, BAD_CODE),
        Err(LoginFailure::Throttled { retry_after } | LoginFailure::Busy { retry_after }) => {
            retry_later(
                again(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed attempts. Wait a little and try again.",
                ),
                retry_after,
            )
        }
        Err(LoginFailure::Unavailable(e)) => unavailable(&e),
    }
}

/// Takes the pending sign-in (once: a second browser tab posting the same step finds it
/// gone) and starts the session stamped with `generation`: the one read with the password,
/// or the one after it when this sign-in confirmed the factor (which did the user's
/// revoke-all; any other revoke-all meanwhile leaves the session dead, never alive).
async fn start_from(
    state: &AppState,
    req: &AuthRequest,
    pending: &PendingSignIn,
    generation: i64,
    user: &UserRecord,
    amr: Amr,
    out: &mut HeaderMap,
) -> Result<Option<crate::store::SessionRecord>, OAuthError> {
    if !take_pending(state, pending, out).await? {
        return Ok(None);
    }
    let user = UserRecord {
        generation,
        ..user.clone()
    };
    let session = start_session(state, &user, amr, out).await?;
    audit(
        state,
        "session.start",
        Some(&req.client.id),
        Some(&user.id),
        json!({ "mfa": true }),
    )
    .await;
    Ok(Some(session))
}

async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    pending: &PendingSignIn,
    user: &UserRecord,
    amr: Amr,
) -> Response {
    let mut out = HeaderMap::new();
    match start_from(state, req, pending, pending.generation, user, amr, &mut out).await {
        Ok(Some(session)) => consent::proceed(state, headers, raw, req, &session, out).await,
        Ok(None) => expired(state, headers, raw, req),
        Err(e) => unavailable(&e),
    }
}

/// `action=enrol`: confirms the enrolment with its first code; then the session starts
/// and the recovery codes are shown, once.
pub(super) async fn answer_enrol(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
) -> Response {
    let (pending, user) = match pending_user(state, headers, raw, req).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let code = raw.get("code").unwrap_or_default();
    let codes = match factors::confirm(state, &user.id, code).await {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let Some(codes) = codes else {
        let under_way = match factors::under_way(state, &user).await {
            Ok(Some(e)) => match wrong_enrolment_code(state, req, &pending, &user).await {
                Ok(false) => Ok(Some(e)),
                // The sign-in ended: as if nothing were under way.
                Ok(true) => Ok(None),
                Err(e) => Err(e),
            },
            other => other,
        };
        return match under_way {
            Ok(Some(e)) => enrol_page(
                state,
                headers,
                raw,
                req,
                &e,
                StatusCode::BAD_REQUEST,
                Some("That code is not right. Enter the code your app shows now."),
                HeaderMap::new(),
            ),
            // Too many wrong codes, or confirmed or reset meanwhile: sign in again.
            Ok(None) => expired(state, headers, raw, req),
            Err(e) => unavailable(&e),
        };
    };
    audit(
        state,
        "mfa.enroll",
        Some(&req.client.id),
        Some(&user.id),
        json!({ "factor": "totp", "via": "browser", "recovery_codes": codes.len() }),
    )
    .await;
    let mut out = HeaderMap::new();
    let confirmed = pending.generation.saturating_add(1);
    let amr = Amr::password_and_otp();
    match start_from(state, req, &pending, confirmed, &user, amr, &mut out).await {
        Ok(Some(_)) => {}
        Ok(None) => return expired(state, headers, raw, req),
        Err(e) => return unavailable(&e),
    }
    let csrf = match csrf_token(state, headers, &mut out) {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let hidden = req.hidden(state, raw);
    render(
        StatusCode::OK,
        &MfaRecovery {
            codes: codes.iter().map(|c| c.as_str()).collect(),
            csrf: &csrf,
            hidden: &hidden,
        },
        out,
    )
}

/// Counts a wrong enrolment code like a wrong code on the code page (audit
/// `mfa.failure`, the pending sign-in's count): true when the sign-in ended.
async fn wrong_enrolment_code(
    state: &AppState,
    req: &AuthRequest,
    pending: &PendingSignIn,
    user: &UserRecord,
) -> Result<bool, OAuthError> {
    audit(
        state,
        "mfa.failure",
        Some(&req.client.id),
        Some(&user.id),
        json!({ "reason": "wrong_enrolment_code", "via": "browser" }),
    )
    .await;
    crate::login::count_wrong_code(state, &pending.hash).await
}

fn code_page(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    status: StatusCode,
    error: Option<&str>,
    mut out: HeaderMap,
) -> Response {
    let csrf = match csrf_token(state, headers, &mut out) {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let hidden = req.hidden(state, raw);
    render(
        status,
        &MfaCode {
            client_name: &req.client.name,
            csrf: &csrf,
            hidden: &hidden,
            error,
        },
        out,
    )
}

#[allow(clippy::too_many_arguments)] // the page's parts, each different
fn enrol_page(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    enrolment: &Enrolment,
    status: StatusCode,
    error: Option<&str>,
    mut out: HeaderMap,
) -> Response {
    let csrf = match csrf_token(state, headers, &mut out) {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let hidden = req.hidden(state, raw);
    render(
        status,
        &MfaEnrol {
            qr_svg: &enrolment.qr_svg,
            secret: &enrolment.secret,
            csrf: &csrf,
            hidden: &hidden,
            error,
        },
        out,
    )
}
