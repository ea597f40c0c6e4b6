//! Passkey steps of the authorization endpoint: registering one from the enrolment page
//! (a pending sign-in whose password was just accepted: the same gate as TOTP
//! enrolment; another one later: [`super::passkey_add`]), and the passwordless sign-in, username first (the login page's "Sign in
//! with a passkey" button names the user; their passkeys are asked for). The WebAuthn
//! checks are [`crate::passkeys`]'s; the throttle and audit [`crate::login::second_factor`]'s.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::login::{context, retry_later};
use super::mfa::{EnrolPage, enrol_page, enrolling_user, expired, offer, start_from};
use super::request::{AuthRequest, Raw};
use super::{consent, login, unavailable};
use crate::audit::audit;
use crate::http::AppState;
use crate::http::browser::{csrf_token, start_session};
use crate::http::pages::{PasskeyForm, PasskeySignIn, render};
use crate::http::peer::Peer;
use crate::login::{Attempt, LoginFailure, Proof, Via};
use crate::passkeys::{Refused, Started};
use crate::store::{Amr, CeremonyKind, UserRecord};

/// The one message for a passkey that was not accepted.
const NOT_ACCEPTED: &str = "The passkey was not accepted. Try again.";
/// Longest passkey label.
const MAX_LABEL: usize = 64;

/// `action=passkey_register`: registers the passkey the enrolment page created; then the
/// session starts (the registration did the user's revoke-all, as a TOTP confirmation
/// does) with `amr` `pwd hwk mfa`.
pub(super) async fn register(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
) -> Response {
    let (pending, user) = match enrolling_user(state, headers, raw, req).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    match finish_from_form(state, raw, req, &user, &pending.hash).await {
        Ok(Ok(())) => {}
        Ok(Err(refused)) => {
            return refused_registration(state, headers, raw, req, &pending.hash, &user, refused)
                .await;
        }
        Err(e) => return unavailable(&e),
    }
    audit(
        state,
        "mfa.enroll",
        Some(&req.client.id),
        Some(&user.id),
        json!({ "factor": "passkey", "via": "browser" }),
    )
    .await;
    let mut out = HeaderMap::new();
    let confirmed = pending.generation.saturating_add(1);
    let amr = Amr::password_and_passkey();
    match start_from(state, req, &pending, confirmed, &user, amr, &mut out).await {
        Ok(Some(session)) => consent::proceed(state, headers, raw, req, &session, out).await,
        Ok(None) => expired(state, headers, raw, req),
        Err(e) => unavailable(&e),
    }
}

/// The enrolment page again (a new ceremony) saying why the passkey was refused.
async fn refused_registration(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    pending: &tessera_token::TokenHash,
    user: &UserRecord,
    refused: Refused,
) -> Response {
    let message = match refused {
        Refused::Duplicate => "That passkey is registered already.",
        Refused::TooMany => "You have the most passkeys allowed; remove one first.",
        Refused::Malformed => "Your browser did not send a passkey. Try again.",
        _ => "The passkey was not registered. Try again.",
    };
    let status = StatusCode::BAD_REQUEST;
    match crate::mfa::under_way(state, user).await {
        Ok(Some(e)) => {
            let pk = offer(state, user, pending, CeremonyKind::Register).await;
            let page = EnrolPage {
                enrolment: &e,
                passkey: pk.as_ref(),
                label: "passkey 1",
            };
            enrol_page(
                state,
                headers,
                raw,
                req,
                &page,
                status,
                Some(message),
                HeaderMap::new(),
            )
        }
        Ok(None) => expired(state, headers, raw, req),
        Err(e) => unavailable(&e),
    }
}

/// The user the login page named, if they stand (enabled) and have a passkey: nobody
/// else has anything to check, so nothing is counted against them.
async fn named_user(
    state: &AppState,
    raw: &Raw,
) -> Result<Option<UserRecord>, crate::oauth::OAuthError> {
    let name = raw.get("username").unwrap_or_default();
    if name.is_empty() || name.len() > 256 {
        return Ok(None);
    }
    let Some(user) = state
        .store
        .user_by_name(name)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(None);
    };
    if state.store.passkeys(&user.id).await?.is_empty() {
        return Ok(None);
    }
    Ok(Some(user))
}

/// The login page's "Sign in with a passkey": begins a ceremony over the named user's
/// passkeys. A name without passkeys (unknown, disabled, or password only) gets the
/// login page back saying so: the button tells whether an account has passkeys (a
/// documented limit of username-first sign-in).
pub(super) async fn start(
    state: &AppState,
    headers: &HeaderMap,
    peer: Peer,
    raw: &Raw,
    req: &AuthRequest,
) -> Response {
    let username = raw.get("username").unwrap_or_default();
    let username = if username.len() > 256 { "" } else { username };
    // Each start writes a ceremony: counted per source network, whoever is named.
    match crate::throttle::count_start(state, peer.0).await {
        Ok(Ok(())) => {}
        Ok(Err(retry_after)) => {
            metrics::counter!(crate::metrics::THROTTLED).increment(1);
            let page = login::page(
                state,
                headers,
                raw,
                req,
                StatusCode::TOO_MANY_REQUESTS,
                username,
                Some("Too many sign-ins from your network. Wait a little and try again."),
            );
            return retry_later(page, retry_after);
        }
        Err(e) => return unavailable(&e),
    }
    let no_passkey = || {
        login::page(
            state,
            headers,
            raw,
            req,
            StatusCode::BAD_REQUEST,
            username,
            Some("There is no passkey for that username. Sign in with your password."),
        )
    };
    let user = match named_user(state, raw).await {
        Ok(Some(u)) => u,
        Ok(None) => return no_passkey(),
        Err(e) => return unavailable(&e),
    };
    let started =
        crate::passkeys::begin_authentication(state, &user, CeremonyKind::FirstFactor, None).await;
    if let Ok(Some(_)) = started {
        let ip = peer.0.map(|ip| ip.to_string());
        audit(
            state,
            "mfa.passkey_start",
            Some(&req.client.id),
            Some(&user.id),
            json!({ "ip": ip, "via": "browser" }),
        )
        .await;
    }
    match started {
        Ok(Some(started)) => signin_page(
            state,
            headers,
            raw,
            req,
            &user,
            &started,
            StatusCode::OK,
            None,
        ),
        Ok(None) => no_passkey(),
        Err(e) => unavailable(&e),
    }
}

#[allow(clippy::too_many_arguments)] // the page's parts, each different
fn signin_page(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    user: &UserRecord,
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
        &PasskeySignIn {
            client_name: &req.client.name,
            csrf: &csrf,
            hidden: &hidden,
            username: &user.name,
            passkey: PasskeyForm {
                id: &started.id,
                options: &started.options,
            },
            error,
        },
        out,
    )
}

/// `action=passkey_login`: checks the passkey (throttled and audited as a second factor
/// is) and starts the session with `amr` `hwk user mfa` (the ceremony requires the
/// authenticator's user verification; without it webauthn-rs refuses the assertion).
pub(super) async fn sign_in(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    peer: Peer,
    raw: &Raw,
    req: &AuthRequest,
) -> Response {
    // A name without passkeys (unknown, disabled, password only): the login page saying
    // the passkey was not accepted, with nothing counted (the start tells as much).
    let user = match named_user(state, raw).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            let name = raw.get("username").unwrap_or_default();
            let name = if name.len() > 256 { "" } else { name };
            return login::page(
                state,
                headers,
                raw,
                req,
                StatusCode::BAD_REQUEST,
                name,
                Some(NOT_ACCEPTED),
            );
        }
        Err(e) => return unavailable(&e),
    };
    let ctx = context(headers, peer);
    let attempt = Attempt {
        client_id: &req.client.id,
        ctx: &ctx,
        via: Via::Browser,
    };
    let proof = Proof::Passkey {
        ceremony: raw.get("ceremony").unwrap_or_default().to_owned(),
        response: raw.get("response").unwrap_or_default().to_owned(),
    };
    let user_ref = &user;
    let again = |status, message| async move {
        let user = user_ref;
        match crate::passkeys::begin_authentication(state, user, CeremonyKind::FirstFactor, None)
            .await
        {
            Ok(Some(s)) => signin_page(state, headers, raw, req, user, &s, status, Some(message)),
            // The passkeys went meanwhile: the login page, with the same status.
            Ok(None) => login::page(state, headers, raw, req, status, "", Some(message)),
            Err(e) => unavailable(&e),
        }
    };
    match crate::login::second_factor(&state.core, &user, None, proof, &attempt).await {
        Ok(_) => {}
        Err(LoginFailure::BadCredentials) => {
            return again(StatusCode::BAD_REQUEST, NOT_ACCEPTED).await;
        }
        Err(LoginFailure::Throttled { retry_after } | LoginFailure::Busy { retry_after }) => {
            let page = again(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts. Wait a little and try again.",
            )
            .await;
            return retry_later(page, retry_after);
        }
        Err(LoginFailure::Unavailable(e)) => return unavailable(&e),
    }
    let mut out = HeaderMap::new();
    let session = match start_session(state, &user, Amr::passkey_alone(), &mut out).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    audit(
        state,
        "session.start",
        Some(&req.client.id),
        Some(&user.id),
        json!({ "mfa": true, "factor": "passkey" }),
    )
    .await;
    consent::proceed(state, headers, raw, req, &session, out).await
}

/// The label the form sent, cleaned; "passkey" when empty.
/// Finishes a registration from the posted form (`ceremony`, `response`, `label`),
/// bound to `bound_to` (the pending sign-in or the session), and audits a refusal.
pub(super) async fn finish_from_form(
    state: &AppState,
    raw: &Raw,
    req: &AuthRequest,
    user: &UserRecord,
    bound_to: &tessera_token::TokenHash,
) -> Result<Result<(), Refused>, crate::oauth::OAuthError> {
    let id = raw.get("ceremony").unwrap_or_default();
    let response = raw.get("response").unwrap_or_default();
    let done =
        crate::passkeys::finish_registration(state, user, bound_to, id, response, &label(raw))
            .await?;
    if let Err(refused) = &done {
        audit(
            state,
            "mfa.failure",
            Some(&req.client.id),
            Some(&user.id),
            json!({ "factor": "passkey", "step": "register", "reason": refused.as_str() }),
        )
        .await;
    }
    Ok(done)
}

pub(super) fn label(raw: &Raw) -> String {
    let label: String = raw
        .get("label")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL)
        .collect();
    if label.is_empty() {
        "passkey".to_owned()
    } else {
        label
    }
}
