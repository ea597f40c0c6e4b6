//! The second-factor step of the authorization endpoint, between a correct password and
//! the session: the code page (a TOTP code or a recovery code, checked by
//! [`crate::login::second_factor`]), the enrolment page (QR code, key, first code) and the
//! recovery codes shown once. The state in between is a pending sign-in in the store,
//! by the hash of a short-lived cookie ([`crate::http::browser::start_pending`]), taken
//! once by the step that starts the session. Without it no step here does anything.
//! (Over 400 lines: the code and enrolment pages share these helpers with the passkey
//! steps in [`super::passkey`].)

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
use crate::http::pages::{MfaCode, MfaEnrol, MfaRecovery, PasskeyForm, render};
use crate::http::peer::Peer;
use crate::login::{Attempt, Factor, LoginFailure, Proof, Via};
use crate::mfa::{self as factors, Enrolment};
use crate::oauth::OAuthError;
use crate::passkeys::Started;
use crate::store::{Amr, CeremonyKind, PendingPurpose, PendingSignIn, UserRecord};
use tessera_token::TokenHash;

/// The message for a wrong, replayed or used code.
const BAD_CODE: &str = "That code or passkey was not accepted, or was used already. Try again.";
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
    // An enrolment only for a user without a factor ([`factors::begin`] refuses one over
    // a confirmed TOTP factor; a passkey counts too). Confirmed meanwhile (another
    // browser): the code page.
    let enrolment = if enrolled {
        None
    } else {
        match factors::begin(state, user).await {
            Ok(e) => e,
            Err(e) => return unavailable(&e),
        }
    };
    let purpose = match enrolment {
        Some(_) => PendingPurpose::Enrol,
        None => PendingPurpose::Verify,
    };
    let pending = match start_pending(state, user, purpose, &mut out).await {
        Ok(p) => p,
        Err(e) => return unavailable(&e),
    };
    let Some(e) = enrolment else {
        let pk = offer(state, user, &pending, CeremonyKind::SecondFactor).await;
        let codes = codes_offered(req, purpose);
        let page = CodePage { passkey: pk, codes };
        return code_page(state, headers, raw, req, StatusCode::OK, None, out, page);
    };
    let pk = offer(state, user, &pending, CeremonyKind::Register).await;
    let page = EnrolPage {
        enrolment: &e,
        passkey: pk.as_ref(),
        label: "passkey 1",
    };
    enrol_page(state, headers, raw, req, &page, StatusCode::OK, None, out)
}

/// A step-up from a live session (no password typed now): a pending sign-in of purpose
/// [`PendingPurpose::StepUp`] and the code page offering only the user's passkey; a TOTP
/// or recovery code posted there is refused before it counts ([`answer_code`]).
pub(super) async fn step_up(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    user: &UserRecord,
) -> Response {
    let mut out = HeaderMap::new();
    let pending = match start_pending(state, user, PendingPurpose::StepUp, &mut out).await {
        Ok(p) => p,
        Err(e) => return unavailable(&e),
    };
    let pk = offer(state, user, &pending, CeremonyKind::SecondFactor).await;
    let page = CodePage {
        passkey: pk,
        codes: false,
    };
    code_page(state, headers, raw, req, StatusCode::OK, None, out, page)
}

/// Whether the code page offers the code field: not on a step-up (the passkey only), and
/// not for a request asking `urn:tessera:acr:phr`, which only a passkey reaches.
fn codes_offered(req: &AuthRequest, purpose: PendingPurpose) -> bool {
    purpose.takes_codes() && !req.assurance.beyond(crate::oidc::ACR_MFA)
}

/// The request's pending sign-in and its user if it may enrol a first factor: it began
/// as an enrolment ([`PendingPurpose::Enrol`]) and the user has no factor now (none
/// confirmed in another browser meanwhile). Otherwise the login page saying the sign-in
/// expired: the password alone never adds a factor to an account that has one.
pub(super) async fn enrolling_user(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
) -> Result<(PendingSignIn, UserRecord), Response> {
    let (pending, user) = pending_user(state, headers, raw, req).await?;
    if pending.purpose != PendingPurpose::Enrol {
        return Err(expired(state, headers, raw, req));
    }
    match factors::enrolled(state, &user.id).await {
        Ok(false) => Ok((pending, user)),
        Ok(true) => Err(expired(state, headers, raw, req)),
        Err(e) => Err(unavailable(&e)),
    }
}

/// A passkey ceremony of `kind` for `user` bound to the pending sign-in, for the page to
/// offer; `None` (and the page without it) when passkeys are unavailable, the user has
/// none to sign in with, or the store failed (logged: the code still works).
pub(super) async fn offer(
    state: &AppState,
    user: &UserRecord,
    pending: &TokenHash,
    kind: CeremonyKind,
) -> Option<Started> {
    if !crate::passkeys::available(state) {
        return None;
    }
    let started = match kind {
        CeremonyKind::Register => crate::passkeys::begin_registration(state, user, pending)
            .await
            .map(Some),
        _ => crate::passkeys::begin_authentication(state, user, kind, Some(pending)).await,
    };
    started.unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not start a passkey ceremony");
        None
    })
}

/// The request's pending sign-in and its user, or the login page saying it expired.
pub(super) async fn pending_user(
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

pub(super) fn expired(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
) -> Response {
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
    if !codes_offered(req, pending.purpose) {
        // A step-up (no password was typed, so a code never stands for a sign-in here) or
        // a phr request (only the passkey reaches it): refused before it is checked or
        // counted, whatever the page showed.
        return again(
            state,
            headers,
            raw,
            req,
            &pending,
            &user,
            StatusCode::BAD_REQUEST,
            "Use your passkey to continue.",
        )
        .await;
    }
    let code = raw.get("code").unwrap_or_default();
    if code.trim().is_empty() {
        return again(
            state,
            headers,
            raw,
            req,
            &pending,
            &user,
            StatusCode::BAD_REQUEST,
            "Enter the code.",
        )
        .await;
    }
    answer(
        state,
        headers,
        peer,
        raw,
        req,
        (pending, user),
        Proof::Code(code.to_owned()),
    )
    .await
}

/// `action=passkey`: the user's passkey as the second factor (the ceremony the code page
/// began, bound to this pending sign-in).
pub(super) async fn answer_passkey(
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
    let proof = Proof::Passkey {
        ceremony: raw.get("ceremony").unwrap_or_default().to_owned(),
        response: raw.get("response").unwrap_or_default().to_owned(),
    };
    answer(state, headers, peer, raw, req, (pending, user), proof).await
}

/// The code page again with `error`, offering a new passkey ceremony.
#[allow(clippy::too_many_arguments)] // the page's parts, each different
async fn again(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    pending: &PendingSignIn,
    user: &UserRecord,
    status: StatusCode,
    error: &str,
) -> Response {
    let pk = offer(state, user, &pending.hash, CeremonyKind::SecondFactor).await;
    let page = CodePage {
        passkey: pk,
        codes: codes_offered(req, pending.purpose),
    };
    code_page(
        state,
        headers,
        raw,
        req,
        status,
        Some(error),
        HeaderMap::new(),
        page,
    )
}

/// Checks the second factor `proof` and finishes the sign-in, or shows the code page
/// again.
async fn answer(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    peer: Peer,
    raw: &Raw,
    req: &AuthRequest,
    (pending, user): (PendingSignIn, UserRecord),
    proof: Proof,
) -> Response {
    let ctx = context(headers, peer);
    let attempt = Attempt {
        client_id: &req.client.id,
        ctx: &ctx,
        via: Via::Browser,
    };
    match crate::login::second_factor(&state.core, &user, Some(&pending.hash), proof, &attempt)
        .await
    {
        Ok(factor) => {
            let amr = match factor {
                Factor::Totp => Amr::password_and_otp(),
                Factor::Recovery => Amr::password_and_recovery_code(),
                Factor::Passkey => Amr::password_and_passkey(),
            };
            finish(state, headers, raw, req, &pending, &user, amr).await
        }
        Err(LoginFailure::BadCredentials) => {
            again(
                state,
                headers,
                raw,
                req,
                &pending,
                &user,
                StatusCode::BAD_REQUEST,
                BAD_CODE,
            )
            .await
        }
        Err(LoginFailure::Throttled { retry_after } | LoginFailure::Busy { retry_after }) => {
            let page = again(
                state,
                headers,
                raw,
                req,
                &pending,
                &user,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts. Wait a little and try again.",
            )
            .await;
            retry_later(page, retry_after)
        }
        Err(LoginFailure::Unavailable(e)) => unavailable(&e),
    }
}

/// Takes the pending sign-in (once: a second browser tab posting the same step finds it
/// gone) and starts the session stamped with `generation`: the one read with the password,
/// or the one after it when this sign-in confirmed the factor (which did the user's
/// revoke-all; any other revoke-all meanwhile leaves the session dead, never alive).
pub(super) async fn start_from(
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
    let (pending, user) = match enrolling_user(state, headers, raw, req).await {
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
            Ok(Some(e)) => {
                let pk = offer(state, &user, &pending.hash, CeremonyKind::Register).await;
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
                    StatusCode::BAD_REQUEST,
                    Some("That code is not right. Enter the code your app shows now."),
                    HeaderMap::new(),
                )
            }
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

/// What the code page offers: the user's passkey ceremony, and the code field or not.
struct CodePage {
    passkey: Option<Started>,
    codes: bool,
}

#[allow(clippy::too_many_arguments)] // the page's parts, each different
fn code_page(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    status: StatusCode,
    error: Option<&str>,
    mut out: HeaderMap,
    page: CodePage,
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
            passkey: page.passkey.as_ref().map(form),
            codes: page.codes,
        },
        out,
    )
}

fn form(s: &Started) -> PasskeyForm<'_> {
    PasskeyForm {
        id: &s.id,
        options: &s.options,
    }
}

/// What the enrolment page shows: the TOTP enrolment and the passkey registration.
pub(super) struct EnrolPage<'a> {
    pub(super) enrolment: &'a Enrolment,
    pub(super) passkey: Option<&'a Started>,
    pub(super) label: &'a str,
}

#[allow(clippy::too_many_arguments)] // the page's parts, each different
pub(super) fn enrol_page(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    page: &EnrolPage<'_>,
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
            qr_svg: &page.enrolment.qr_svg,
            secret: &page.enrolment.secret,
            csrf: &csrf,
            hidden: &hidden,
            error,
            passkey: page.passkey.map(form),
            label: page.label,
            // `phr` is reached only by registering a passkey: no TOTP offered.
            totp: !req.assurance.beyond(crate::oidc::ACR_MFA),
        },
        out,
    )
}
