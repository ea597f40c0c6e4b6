//! The authorization endpoint (RFC 6749 section 4.1.1 with RFC 7636 PKCE and OpenID
//! Connect Core section 3.1.2): `GET /authorize` validates the request ([`request`]) and
//! shows the login page ([`login`]) or the consent page ([`consent`]); `POST /authorize`
//! receives those forms (CSRF-checked).
//!
//! Until the redirect URI is known to be registered for the client, errors are a page
//! (section 4.1.2.1: never redirect to an unverified URI); after that they go back to the
//! client as `error`, `error_description`, `state` and `iss` (RFC 9207) in the query.

mod assurance;
mod consent;
mod login;
mod mfa;
mod passkey;
mod passkey_add;
mod request;
mod seal;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use self::assurance::{Shortfall, UNMET};
use self::request::{AuthRequest, AuthzError, Raw, Refusal, Source, authz_error, validate};
use crate::http::AppState;
use crate::http::browser::{csrf_ok, session};
use crate::http::openapi::{AuthorizeForm, AuthorizeParams};
use crate::http::pages::error_page;
use crate::http::peer::Peer;
use crate::oauth::OAuthError;

/// `prompt=none` without a signed-in user (OpenID Connect Core section 3.1.2.6).
const LOGIN_REQUIRED: AuthzError = authz_error("login_required", "the user is not signed in");
/// `prompt=none` where the signed-in user would have to give a (further) factor.
const INTERACTION_REQUIRED: AuthzError =
    authz_error("interaction_required", "the user must authenticate further");

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

/// The live session if it stands for this request: signed in ([`signed_in`]), recently
/// enough, and high enough on the ladder. Otherwise the response that gets there: the
/// login page (no session, too old, or `prompt=login`), the second-factor page (a
/// missing factor, from a live session), or an error for the client (`prompt=none`, or a
/// level the user cannot reach).
async fn assured(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
) -> Result<crate::store::SessionRecord, Response> {
    let again = || {
        if req.prompt_none {
            req.target.error(state, LOGIN_REQUIRED, HeaderMap::new())
        } else {
            login::page(state, headers, raw, req, StatusCode::OK, "", None)
        }
    };
    let session = match signed_in(state, headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(again()),
        Err(e) => return Err(unavailable(&e)),
    };
    match req
        .assurance
        .shortfall(&session, &seal::session_tag(state, &session))
    {
        Shortfall::None => Ok(session),
        Shortfall::Fresh => Err(again()),
        Shortfall::Level => Err(step_up(state, headers, raw, req, &session).await),
    }
}

/// A live, recent session below the `acr` asked. A user with a passkey gives it: the
/// code page offering only the passkey, no password again, bound to a new pending
/// sign-in of purpose `step_up` (it can never enrol or register anything, and refuses a
/// TOTP or recovery code: no password was typed), whose passkey ceremony needs the
/// user's authenticator; a session cookie alone reaches nothing. An enrolled user
/// without a passkey signs in again (password and code) below `phr`, and gets
/// `unmet_authentication_requirements` for `phr`. A user without a factor signs in
/// with the password before enrolling (a session cookie alone never enrols a factor)
/// where `mfa` allows enrolment; otherwise the client gets
/// `unmet_authentication_requirements`.
async fn step_up(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    session: &crate::store::SessionRecord,
) -> Response {
    if req.prompt_none {
        return req
            .target
            .error(state, INTERACTION_REQUIRED, HeaderMap::new());
    }
    if req.assurance.beyond(crate::oidc::ACR_PHR) {
        return req.target.error(state, UNMET, HeaderMap::new());
    }
    let phr = req.assurance.beyond(crate::oidc::ACR_MFA);
    let found = async {
        let user = state.store.user_by_id(&session.user_id).await?;
        let enrolled = crate::mfa::enrolled(state, &session.user_id).await?;
        let passkey = !state.store.passkeys(&session.user_id).await?.is_empty()
            && crate::passkeys::available(state);
        Ok::<_, OAuthError>((user, enrolled, passkey))
    };
    let enrol_allowed = state.config.login.mfa != crate::config::MfaMode::Off;
    match found.await {
        // An enrolled user's live session is at least `mfa` (`signed_in`): this is a
        // request for `phr` from a TOTP sign-in, and the user has a passkey to give (only
        // the passkey: no password is typed here, so no code stands for a sign-in).
        Ok((Some(user), true, true)) => mfa::step_up(state, headers, raw, req, &user).await,
        // No passkey: below `phr` the password and a code again; `phr` is out of reach.
        Ok((Some(_), true, false)) if !phr => {
            login::page(state, headers, raw, req, StatusCode::OK, "", None)
        }
        Ok((Some(_), true, false)) => req.target.error(state, UNMET, HeaderMap::new()),
        Ok((Some(_), false, _)) if enrol_allowed && (!phr || crate::passkeys::available(state)) => {
            login::page(state, headers, raw, req, StatusCode::OK, "", None)
        }
        Ok((Some(_), false, _)) => req.target.error(state, UNMET, HeaderMap::new()),
        Ok((None, _, _)) => login::page(state, headers, raw, req, StatusCode::OK, "", None),
        Err(e) => unavailable(&e),
    }
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
    let mut req = match validate(&state, &raw, Source::Query).await {
        Ok(r) => r,
        Err(refusal) => return refused(&state, refusal),
    };
    tracing::Span::current().record("client_id", req.client.id.as_str());
    if req.assurance.fresh {
        // The session this request found never stands for it (prompt=login, max_age=0),
        // however close its sign-in time is to now.
        match session(&state, &headers).await {
            Ok(s) => req.assurance.stale = s.map(|s| seal::session_tag(&state, &s)),
            Err(e) => return unavailable(&e),
        }
    }
    match assured(&state, &headers, &raw, &req).await {
        Ok(s) => consent::proceed(&state, &headers, &raw, &req, &s, HeaderMap::new()).await,
        Err(response) => response,
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
    let req = match validate(&state, &raw, Source::Form).await {
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
        Some("continue") => match assured(&state, &headers, &raw, &req).await {
            Ok(s) => consent::proceed(&state, &headers, &raw, &req, &s, HeaderMap::new()).await,
            Err(response) => response,
        },
        Some(action @ ("approve" | "deny")) => {
            consent::answer(&state, &headers, &raw, &req, action == "approve").await
        }
        _ => error_page(StatusCode::BAD_REQUEST, "The form is incomplete."),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use totp_rs::{Algorithm, Secret, TOTP};

    use super::*;
    use crate::http::browser::start_session;
    use crate::store::{Amr, UserRecord};

    /// Starts a session for `user` signed in with `amr`; the request headers carrying it.
    async fn with_session(state: &AppState, user: &UserRecord, amr: Amr) -> HeaderMap {
        let mut out = HeaderMap::new();
        start_session(state, user, amr, &mut out).await.unwrap();
        let set = out.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        let pair = set.split(';').next().unwrap().to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        headers
    }

    async fn user(state: &AppState) -> UserRecord {
        let user = UserRecord {
            id: "u_alice".into(),
            name: "alice".into(),
            password_hash: "$argon2id$unused".into(),
            disabled: false,
            created_at: state.clock.now(),
            generation: 0,
        };
        state.store.insert_user(&user).await.unwrap();
        user
    }

    /// Issue 17's MFA note: "a session without mfa counts as none for an enrolled user",
    /// on its own. A password-only session that escaped the confirmation's revoke-all
    /// (stamped with the new generation, so live in the store) is still no sign-in.
    #[tokio::test]
    async fn a_session_without_the_factor_is_no_session_for_an_enrolled_user() {
        let (state, _dir) = crate::http::tests::state().await;
        let alice = user(&state).await;
        let before = with_session(&state, &alice, Amr::password()).await;
        assert!(signed_in(&state, &before).await.unwrap().is_some());

        let enrolment = crate::mfa::begin(&state, &alice).await.unwrap().unwrap();
        let key = Secret::Encoded(enrolment.secret.to_string())
            .to_bytes()
            .unwrap();
        let app = TOTP::new(Algorithm::SHA1, 6, 1, 30, key, None, "alice".into()).unwrap();
        let now = u64::try_from(state.clock.now().secs()).unwrap();
        let code = app.generate(now);
        assert!(
            crate::mfa::confirm(&state, &alice.id, &code)
                .await
                .unwrap()
                .is_some()
        );
        assert!(session(&state, &before).await.unwrap().is_none(), "revoked");

        let alice = state.store.user_by_id(&alice.id).await.unwrap().unwrap();
        let escaped = with_session(&state, &alice, Amr::password()).await;
        assert!(
            session(&state, &escaped).await.unwrap().is_some(),
            "live in the store"
        );
        assert!(signed_in(&state, &escaped).await.unwrap().is_none());
        let with_factor = with_session(&state, &alice, Amr::password_and_otp()).await;
        assert!(signed_in(&state, &with_factor).await.unwrap().is_some());
    }

    /// Review finding 6: a session the code's last check finds too old for the request
    /// (signed in on a replica whose clock is further behind than the leeway) sends the
    /// user to the login page; it used to send `unmet_authentication_requirements` to the
    /// client, which no step-up could answer. `prompt=none` gets `login_required`.
    #[tokio::test]
    async fn a_session_the_last_check_finds_too_old_gets_the_login_page() {
        use crate::store::{ClientRecord, GrantType};
        let (state, _dir, clock) = crate::http::tests::state_with_clock().await;
        let alice = user(&state).await;
        let client = ClientRecord {
            id: "first".into(),
            name: "first".into(),
            secret_hash: None,
            grant_types: vec![GrantType::AuthorizationCode],
            scope: "openid".parse().unwrap(),
            audience: vec!["api".into()],
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: vec![],
            first_party: true,
            signing_alg: None,
            id_token_alg: None,
            dpop_bound_access_tokens: false,
            created_at: state.clock.now(),
        };
        state.store.insert_client(&client).await.unwrap();
        let query = |extra: &str| {
            Raw::parse(
                format!(
                    "response_type=code&client_id=first&redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
                     &scope=openid&state=st&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWBzbbJ0J3aNo\
                     &code_challenge_method=S256{extra}"
                )
                .as_bytes(),
            )
        };
        // The request arrived (on a replica) at now; the session was stamped by a clock
        // a minute behind.
        let headers = with_session(&state, &alice, Amr::password()).await;
        let session = session(&state, &headers).await.unwrap().unwrap();
        clock.advance(std::time::Duration::from_secs(60));
        for (extra, expected) in [
            ("&prompt=login", None),
            ("&max_age=0&prompt=none", Some("login_required")),
        ] {
            let raw = query(extra);
            let Ok(req) = request::validate(&state, &raw, request::Source::Query).await else {
                panic!("a valid request");
            };
            let response =
                consent::proceed(&state, &headers, &raw, &req, &session, HeaderMap::new()).await;
            let status = response.status();
            let location = response
                .headers()
                .get(header::LOCATION)
                .map(|l| l.to_str().unwrap().to_owned());
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = String::from_utf8_lossy(&body);
            match expected {
                None => {
                    assert_eq!(status, StatusCode::OK, "{location:?}");
                    assert!(body.contains("<label for=\"username\">"), "{body}");
                }
                Some(error) => {
                    let location = location.unwrap();
                    assert!(location.contains(&format!("error={error}")), "{location}");
                }
            }
        }
    }
}
