//! The consent step of the authorization endpoint: with a signed-in user, the consent
//! page (or, for a first-party client, the code at once); the answer to that page; and
//! the redirect carrying the code, issued by [`crate::grants::authorization_code::issue`].

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::assurance::{Shortfall, UNMET};
use super::request::{AuthRequest, AuthzError, Raw, authz_error};
use super::{login, seal, unavailable};
use crate::grants::authorization_code::{self, Issued};
use crate::http::AppState;
use crate::http::browser::csrf_token;
use crate::http::pages::{Consent, render};
use crate::oauth::OAuthError;
use crate::store::SessionRecord;

/// `prompt=none` where the user would be asked (OpenID Connect Core section 3.1.2.6).
const CONSENT_REQUIRED: AuthzError = authz_error("consent_required", "the user must consent");
/// The user pressed "deny".
const DENIED: AuthzError = authz_error("access_denied", "the user denied the request");
/// The session's user was moved on (revoke-all, disable, remove) after it was read.
const REVOKED: AuthzError = authz_error("access_denied", "the sign-in was revoked");

/// With a signed-in user: the consent page, or (first-party client) the code at once.
pub(super) async fn proceed(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    session: &SessionRecord,
    mut out: HeaderMap,
) -> Response {
    // A session just started short of the level asked (a code given where a passkey is
    // needed): no consent page to approve in vain; the step-up page at once.
    if req
        .assurance
        .shortfall(session, &seal::session_tag(state, session))
        == Shortfall::Level
        && !req.prompt_none
    {
        let mut page = super::step_up(state, headers, raw, req, session).await;
        // This step's cookies first (the pending sign-in's removal), then the page's (a
        // new pending sign-in): the later `Set-Cookie` of a name wins.
        let later = std::mem::replace(page.headers_mut(), out);
        for (name, value) in later.iter() {
            page.headers_mut().append(name.clone(), value.clone());
        }
        return page;
    }
    if req.client.first_party {
        return issue_code(state, headers, raw, req, session, out).await;
    }
    if req.prompt_none {
        return req.target.error(state, CONSENT_REQUIRED, out);
    }
    let csrf = match csrf_token(state, headers, &mut out) {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let username = match user_name(state, &session.user_id).await {
        Ok(n) => n,
        Err(e) => return unavailable(&e),
    };
    let offer_passkey = match super::passkey_add::may_add(state, session).await {
        Ok(may) => may,
        Err(e) => return unavailable(&e),
    };
    let hidden = req.hidden(state, raw);
    render(
        StatusCode::OK,
        &Consent {
            client_name: &req.client.name,
            username: &username,
            scopes: req.scope.iter().collect(),
            csrf: &csrf,
            hidden: &hidden,
            offer_passkey,
        },
        out,
    )
}

/// `action=approve` or `deny` from the consent page; without a session (it ended
/// meanwhile), the login page. An approval needs a session that stands for the request
/// ([`super::assured`]): the form cannot stand in for a fresh or stronger sign-in.
pub(super) async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    approved: bool,
) -> Response {
    if approved {
        return match super::assured(state, headers, raw, req).await {
            Ok(s) => issue_code(state, headers, raw, req, &s, HeaderMap::new()).await,
            Err(response) => response,
        };
    }
    match super::signed_in(state, headers).await {
        Ok(None) => login::page(state, headers, raw, req, StatusCode::OK, "", None),
        Ok(Some(_)) => req.target.error(state, DENIED, HeaderMap::new()),
        Err(e) => unavailable(&e),
    }
}

async fn user_name(state: &AppState, user_id: &str) -> Result<String, OAuthError> {
    Ok(state
        .store
        .user_by_id(user_id)
        .await?
        .map(|u| u.name)
        .unwrap_or_default())
}

/// Issues a code bound to the client, redirect URI, challenge, user and nonce, and
/// redirects to the client with it. The last line of defence: never for a session that
/// falls short of what the request asked (every path here checked it already). A session
/// found too old here (a sign-in stamped by a replica whose clock is further behind than
/// `authorize_clock_leeway_secs`) sends the user to the login page, as
/// [`super::assured`] would: the user can meet that, the client cannot.
async fn issue_code(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    session: &SessionRecord,
    out: HeaderMap,
) -> Response {
    let tag = seal::session_tag(state, session);
    match req.assurance.shortfall(session, &tag) {
        Shortfall::None => {}
        Shortfall::Fresh if req.prompt_none => {
            return req.target.error(state, super::LOGIN_REQUIRED, out);
        }
        Shortfall::Fresh => {
            tracing::warn!("code refused: the sign-in is older than the request asks; login page");
            return login::page(state, headers, raw, req, StatusCode::OK, "", None);
        }
        Shortfall::Level => {
            tracing::warn!("code refused: the session falls short of the request's assurance");
            return req.target.error(state, UNMET, out);
        }
    }
    match authorization_code::issue(state, &req.code_request(), session).await {
        Ok(Issued::Code(code)) => req.target.redirect(state, &[("code", code.expose())], out),
        Ok(Issued::SessionRevoked) => req.target.error(state, REVOKED, out),
        Err(e) => unavailable(&e),
    }
}
