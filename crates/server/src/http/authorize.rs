//! The authorization endpoint (RFC 6749 section 4.1.1 with RFC 7636 PKCE and OpenID
//! Connect Core section 3.1.2): `GET /authorize` validates the request and shows the
//! login or consent page; `POST /authorize` receives those forms (CSRF-checked).
//!
//! Until the redirect URI is known to be registered for the client, errors are a page
//! (section 4.1.2.1: never redirect to an unverified URI); after that they go back to the
//! client as `error`, `error_description`, `state` and `iss` (RFC 9207) in the query.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_token::pkce::{self, ChallengeMethod};
use tessera_token::{OpaqueToken, Scope, SecretString, TokenKind};
use zeroize::Zeroizing;

use crate::audit::{RequestContext, audit};
use crate::grants::resolve_scope;
use crate::http::AppState;
use crate::http::browser::{csrf_ok, csrf_token, session, start_session};
use crate::http::form::has_nul;
use crate::http::openapi::{AuthorizeForm, AuthorizeParams};
use crate::http::pages::{Consent, Hidden, Login, error_page, render};
use crate::http::peer::Peer;
use crate::login::{self, Attempt, LoginFailure, Via};
use crate::oauth::OAuthError;
use crate::store::{AuthCodeRecord, ClientRecord, GrantType, SessionRecord};

/// The one message for every failed sign-in (unknown user, wrong password, disabled).
const BAD_LOGIN: &str = "Wrong username or password.";
/// Parameters carried from the request into the forms and back.
const CARRIED: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
];

/// Raw parameters: each name at most once (repeats are remembered, then refused), no
/// NUL byte (the name of the first such parameter is remembered, then refused).
struct Raw {
    map: BTreeMap<String, Zeroizing<String>>,
    repeated: Option<String>,
    nul: Option<String>,
}

impl Raw {
    fn parse(bytes: &[u8]) -> Self {
        let mut map = BTreeMap::new();
        let mut repeated = None;
        let mut nul = None;
        for (k, v) in form_urlencoded::parse(bytes) {
            if map.contains_key(k.as_ref()) {
                repeated.get_or_insert_with(|| k.clone().into_owned());
            }
            if has_nul(&k) || has_nul(&v) {
                nul.get_or_insert_with(|| k.clone().into_owned());
            }
            map.insert(k.into_owned(), Zeroizing::new(v.into_owned()));
        }
        Raw { map, repeated, nul }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .map(|v| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// A validated authorization request.
struct AuthRequest {
    client: ClientRecord,
    redirect_uri: String,
    state: Option<String>,
    scope: Scope,
    code_challenge: String,
    nonce: Option<String>,
    prompt_none: bool,
}

impl AuthRequest {
    /// The parameters to carry through the login and consent forms.
    fn hidden(&self, raw: &Raw) -> Hidden {
        CARRIED
            .iter()
            .filter_map(|&n| raw.get(n).map(|v| (n, v.to_owned())))
            .collect()
    }
}

/// Why a request was refused.
enum Refusal {
    /// Shown as a page: the redirect URI cannot be trusted.
    Page(&'static str),
    /// Sent back to the client's redirect URI.
    Redirect {
        error: &'static str,
        description: &'static str,
    },
}

fn redirect_error(error: &'static str, description: &'static str) -> Refusal {
    Refusal::Redirect { error, description }
}

/// Validates the request; `Page` refusals come first (section 4.1.2.1).
async fn validate(
    state: &AppState,
    raw: &Raw,
) -> Result<AuthRequest, (Refusal, Option<AuthTarget>)> {
    let page = |m| (Refusal::Page(m), None);
    if matches!(raw.repeated.as_deref(), Some("client_id" | "redirect_uri")) {
        return Err(page("The request repeats client_id or redirect_uri."));
    }
    if matches!(raw.nul.as_deref(), Some("client_id" | "redirect_uri")) {
        return Err(page(
            "The request has a NUL byte in client_id or redirect_uri.",
        ));
    }
    let Some(client_id) = raw.get("client_id") else {
        return Err(page("The request has no client_id."));
    };
    let client = state
        .store
        .client(client_id)
        .await
        .map_err(|_| page("The sign-in service is temporarily unavailable; try again."))?
        .ok_or_else(|| page("The application is not registered here (unknown client_id)."))?;
    let redirect_uri = match raw.get("redirect_uri") {
        Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_owned(),
        Some(_) => {
            return Err(page(
                "The redirect URI is not registered for this application; nothing was sent to it.",
            ));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(page("The request has no redirect_uri.")),
    };
    let target = AuthTarget {
        redirect_uri: redirect_uri.clone(),
        state: raw.get("state").map(str::to_owned),
    };
    let refuse = |r| Err((r, Some(target.clone())));
    if raw.repeated.is_some() {
        return refuse(redirect_error("invalid_request", "a parameter is repeated"));
    }
    if raw.nul.is_some() {
        return refuse(redirect_error(
            "invalid_request",
            "a parameter has a NUL byte",
        ));
    }
    match raw.get("response_type") {
        None => {
            return refuse(redirect_error(
                "invalid_request",
                "response_type is missing",
            ));
        }
        Some("code") => {}
        Some(_) => {
            return refuse(redirect_error(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return refuse(redirect_error(
            "unauthorized_client",
            "this client is not registered for the authorization code flow",
        ));
    }
    let scope = match resolve_scope(raw.get("scope"), &client.scope) {
        Ok(s) => s,
        Err(_) => {
            return refuse(redirect_error(
                "invalid_scope",
                "scope is malformed or not allowed for this client",
            ));
        }
    };
    let Some(challenge) = raw.get("code_challenge") else {
        return refuse(redirect_error(
            "invalid_request",
            "code_challenge is required (PKCE with S256)",
        ));
    };
    match raw.get("code_challenge_method") {
        Some("S256") => {}
        None | Some("plain") => {
            return refuse(redirect_error(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        Some(_) => {
            return refuse(redirect_error(
                "invalid_request",
                "code_challenge_method is unknown; use S256",
            ));
        }
    }
    if pkce::check_challenge(ChallengeMethod::S256, challenge).is_err() {
        return refuse(redirect_error(
            "invalid_request",
            "code_challenge must be 43 base64url characters (S256)",
        ));
    }
    if raw.get("request").is_some() || raw.get("request_uri").is_some() {
        return refuse(redirect_error(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if raw.get("nonce").is_some_and(|n| n.len() > 255)
        || raw.get("state").is_some_and(|s| s.len() > 1024)
    {
        return refuse(redirect_error(
            "invalid_request",
            "nonce or state is too long",
        ));
    }
    Ok(AuthRequest {
        client,
        redirect_uri,
        state: target.state,
        scope,
        code_challenge: challenge.to_owned(),
        nonce: raw.get("nonce").map(str::to_owned),
        prompt_none: raw.get("prompt") == Some("none"),
    })
}

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
}

fn refused(state: &AppState, refusal: Refusal, target: Option<AuthTarget>) -> Response {
    match (refusal, target) {
        (Refusal::Redirect { error, description }, Some(t)) => t.redirect(
            state,
            &[("error", error), ("error_description", description)],
            HeaderMap::new(),
        ),
        (Refusal::Page(m), _) => error_page(StatusCode::BAD_REQUEST, m),
        (Refusal::Redirect { description, .. }, None) => {
            error_page(StatusCode::BAD_REQUEST, description)
        }
    }
}

/// Adds `Retry-After` to a page answering 429 or 503.
fn retry_later(mut page: Response, retry_after: u64) -> Response {
    page.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    page
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
        Err((refusal, target)) => return refused(&state, refusal, target),
    };
    tracing::Span::current().record("client_id", req.client.id.as_str());
    match session(&state, &headers).await {
        Ok(Some(s)) => proceed(&state, &headers, &raw, &req, &s, HeaderMap::new()).await,
        Ok(None) if req.prompt_none => target_of(&req).redirect(
            &state,
            &[
                ("error", "login_required"),
                ("error_description", "the user is not signed in"),
            ],
            HeaderMap::new(),
        ),
        Ok(None) => login_page(&state, &headers, &raw, &req, StatusCode::OK, "", None),
        Err(e) => unavailable(&e),
    }
}

fn target_of(req: &AuthRequest) -> AuthTarget {
    AuthTarget {
        redirect_uri: req.redirect_uri.clone(),
        state: req.state.clone(),
    }
}

fn login_page(
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
    let hidden = req.hidden(raw);
    render(
        status,
        &Login {
            client_name: &req.client.name,
            csrf: &csrf,
            hidden: &hidden,
            username,
            error,
        },
        out,
    )
}

/// With a signed-in user: the consent page, or (first-party client) the code at once.
async fn proceed(
    state: &AppState,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    session: &SessionRecord,
    out: HeaderMap,
) -> Response {
    if req.client.first_party {
        return issue_code(state, req, session, out).await;
    }
    if req.prompt_none {
        return target_of(req).redirect(
            state,
            &[
                ("error", "consent_required"),
                ("error_description", "the user must consent"),
            ],
            out,
        );
    }
    let mut out = out;
    let csrf = match csrf_token(state, headers, &mut out) {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let username = match user_name(state, &session.user_id).await {
        Ok(n) => n,
        Err(e) => return unavailable(&e),
    };
    let hidden = req.hidden(raw);
    render(
        StatusCode::OK,
        &Consent {
            client_name: &req.client.name,
            username: &username,
            scopes: req.scope.iter().collect(),
            csrf: &csrf,
            hidden: &hidden,
        },
        out,
    )
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
/// redirects to the client with it.
async fn issue_code(
    state: &AppState,
    req: &AuthRequest,
    session: &SessionRecord,
    out: HeaderMap,
) -> Response {
    let code = match OpaqueToken::generate(TokenKind::AuthorizationCode) {
        Ok(c) => c,
        Err(e) => return unavailable(&OAuthError::Server(e.to_string())),
    };
    let now = state.clock.now();
    let record = AuthCodeRecord {
        hash: code.hash(),
        client_id: req.client.id.clone(),
        user_id: session.user_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        scope: req.scope.clone(),
        nonce: req.nonce.clone(),
        auth_time: session.created_at,
        created_at: now,
        expires_at: now.saturating_add(state.config.authorization_code_ttl),
        used_at: None,
        grant_id: None,
        generation: session.generation,
    };
    match state.store.insert_auth_code(&record).await {
        Ok(true) => {}
        // The session was live when read, but a revoke-all (or disable, or remove) has
        // moved its user on since: no code outlives that.
        Ok(false) => {
            return target_of(req).redirect(
                state,
                &[
                    ("error", "access_denied"),
                    ("error_description", "the sign-in was revoked"),
                ],
                out,
            );
        }
        Err(e) => return unavailable(&e.into()),
    }
    tracing::info!(client_id = %req.client.id, "authorization code issued");
    target_of(req).redirect(state, &[("code", code.expose())], out)
}

/// `POST /authorize`: the login form (`action=login`) and the consent form
/// (`action=approve` or `deny`). Every post must carry the CSRF token.
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
        Err((refusal, target)) => return refused(&state, refusal, target),
    };
    tracing::Span::current().record("client_id", req.client.id.as_str());
    match raw.get("action") {
        Some("login") => {
            let user_agent = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(200).collect());
            let ctx = RequestContext {
                ip: peer.0,
                user_agent,
            };
            login(&state, &headers, &raw, &req, ctx).await
        }
        Some(action @ ("approve" | "deny")) => match session(&state, &headers).await {
            Ok(None) => login_page(&state, &headers, &raw, &req, StatusCode::OK, "", None),
            Ok(Some(_)) if action == "deny" => target_of(&req).redirect(
                &state,
                &[
                    ("error", "access_denied"),
                    ("error_description", "the user denied the request"),
                ],
                HeaderMap::new(),
            ),
            Ok(Some(s)) => issue_code(&state, &req, &s, HeaderMap::new()).await,
            Err(e) => unavailable(&e),
        },
        _ => error_page(StatusCode::BAD_REQUEST, "The form is incomplete."),
    }
}

/// Checks the credentials through the one login check ([`crate::login`], as the password
/// grant does) and starts a session; then the consent page or the code. Every failed
/// check shows the same message.
async fn login(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    raw: &Raw,
    req: &AuthRequest,
    ctx: RequestContext,
) -> Response {
    let username = raw.get("username").unwrap_or_default();
    let again = |status, error| login_page(state, headers, raw, req, status, username, Some(error));
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
    let mut out = HeaderMap::new();
    let session = match start_session(state, &user, &mut out).await {
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
    proceed(state, headers, raw, req, &session, out).await
}
