//! Cookie mode for a same-site single-page app: the resource server signs the user in
//! (code flow with PKCE, exchanged server-side) and keeps the access token in an
//! HttpOnly cookie, so the page's JavaScript never sees it. Unsafe methods need the
//! double-submit CSRF header the guard checks.
//!
//! `GET /spa-cookie/login` keeps the PKCE verifier and `state` in a short-lived HttpOnly
//! cookie and redirects to the issuer; `GET /spa-cookie/callback` checks `state`,
//! exchanges the code at the issuer's token endpoint and sets the token cookie plus a
//! script-readable CSRF cookie; `GET /spa-cookie/` is the page.

use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tessera_guard::{CookieSource, TokenSources};
use tessera_token::pkce;

/// The HttpOnly cookie carrying the access token.
pub(crate) const TOKEN_COOKIE: &str = "notes_at";
/// The script-readable cookie the page copies into [`CSRF_HEADER`].
pub(crate) const CSRF_COOKIE: &str = "notes_csrf";
/// The header unsafe requests must carry, equal to [`CSRF_COOKIE`].
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The HttpOnly cookie holding `state` and the PKCE verifier during sign-in.
const LOGIN_COOKIE: &str = "notes_login";
const CALLBACK_PATH: &str = "/spa-cookie/callback";

/// The page (static HTML and a few lines of JavaScript that never see the token).
const PAGE: &str = include_str!("../spa/cookie.html");

/// The guard's token sources in cookie mode: the header, or the token cookie with the
/// double-submit CSRF check on unsafe methods.
pub(crate) fn token_sources() -> TokenSources {
    TokenSources::header_only().cookie(CookieSource::double_submit(
        TOKEN_COOKIE,
        CSRF_COOKIE,
        HeaderName::from_static(CSRF_HEADER),
    ))
}

/// What the sign-in routes need.
#[derive(Clone)]
pub(crate) struct CookieMode {
    client_id: String,
    scope: String,
    authorization_endpoint: String,
    token_endpoint: String,
    /// This server's `/spa-cookie/callback`, registered as the client's redirect URI.
    redirect_uri: String,
    /// Cookies get `Secure` when this server is reached over https.
    secure: bool,
    http: reqwest::Client,
}

impl CookieMode {
    /// Reads the issuer's endpoints from its OpenID discovery document.
    pub(crate) async fn discover(
        issuer: &str,
        client_id: &str,
        scope: &str,
        public_base: &str,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let meta: Value = serde_json::from_slice(&body)?;
        let endpoint = |name: &str| {
            meta[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("the issuer publishes no {name}"))
        };
        Ok(CookieMode {
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            redirect_uri: format!("{}{CALLBACK_PATH}", public_base.trim_end_matches('/')),
            secure: public_base.starts_with("https://"),
            http,
        })
    }

    fn cookie(&self, name: &str, value: &str, attrs: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; {attrs}{secure}")
    }
}

/// The page and its two sign-in routes.
pub(crate) fn routes(mode: CookieMode) -> Router {
    Router::new()
        .route("/spa-cookie/", get(|| async { Html(PAGE) }))
        .route("/spa-cookie/login", get(login))
        .route(CALLBACK_PATH, get(callback))
        .with_state(mode)
}

/// 32 random bytes, base64url.
fn random() -> Option<String> {
    pkce::generate_verifier().ok()
}

fn no_randomness() -> Response {
    fail(StatusCode::INTERNAL_SERVER_ERROR, "no randomness")
}

fn fail(status: StatusCode, why: &str) -> Response {
    (
        status,
        [(CACHE_CONTROL, "no-store")],
        Json(json!({ "error": why })),
    )
        .into_response()
}

async fn login(State(mode): State<CookieMode>) -> Response {
    let (Some(state), Some(verifier)) = (random(), random()) else {
        return no_randomness();
    };
    let challenge = pkce::s256_challenge(&verifier);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", mode.client_id.as_str()),
            ("redirect_uri", mode.redirect_uri.as_str()),
            ("scope", mode.scope.as_str()),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    // Lax, not Strict: the issuer's redirect back is a cross-site top-level navigation.
    let login_cookie = mode.cookie(
        LOGIN_COOKIE,
        &format!("{state}.{verifier}"),
        &format!("HttpOnly; SameSite=Lax; Path={CALLBACK_PATH}; Max-Age=600"),
    );
    let location = format!("{}?{query}", mode.authorization_endpoint);
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, location),
            (SET_COOKIE, login_cookie),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
}

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
    expires_in: Option<u64>,
}

/// The value of cookie `name` in the request, if sent exactly once.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v);
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

async fn callback(
    State(mode): State<CookieMode>,
    headers: HeaderMap,
    Query(cb): Query<Callback>,
) -> Response {
    let Some((expected_state, verifier)) =
        cookie(&headers, LOGIN_COOKIE).and_then(|v| v.split_once('.'))
    else {
        return fail(StatusCode::BAD_REQUEST, "no sign-in in progress");
    };
    let (Some(code), Some(state)) = (cb.code, cb.state) else {
        return fail(StatusCode::BAD_REQUEST, "sign-in was not completed");
    };
    if !bool::from(state.as_bytes().ct_eq(expected_state.as_bytes())) {
        return fail(StatusCode::BAD_REQUEST, "state mismatch");
    }
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("client_id", mode.client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", mode.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ])
        .finish();
    let reply = mode
        .http
        .post(&mode.token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await;
    let tokens = match reply {
        Ok(r) if r.status().is_success() => match r.bytes().await {
            Ok(body) => serde_json::from_slice::<Tokens>(&body).ok(),
            Err(_) => None,
        },
        _ => None,
    };
    let Some(tokens) = tokens else {
        // The issuer's error body is not relayed: the page only learns that it failed.
        tracing::warn!("the code exchange failed");
        return fail(StatusCode::BAD_GATEWAY, "the code exchange failed");
    };
    let Some(csrf) = random() else {
        return no_randomness();
    };
    let max_age = tokens.expires_in.unwrap_or(300);
    let session = format!("SameSite=Strict; Path=/; Max-Age={max_age}");
    let cookies = [
        mode.cookie(
            TOKEN_COOKIE,
            &tokens.access_token,
            &format!("HttpOnly; {session}"),
        ),
        mode.cookie(CSRF_COOKIE, &csrf, &session),
        mode.cookie(
            LOGIN_COOKIE,
            "",
            &format!("HttpOnly; Path={CALLBACK_PATH}; Max-Age=0"),
        ),
    ];
    let mut response = (
        StatusCode::SEE_OTHER,
        [(LOCATION, "/spa-cookie/"), (CACHE_CONTROL, "no-store")],
    )
        .into_response();
    for c in cookies {
        if let Ok(value) = HeaderValue::from_str(&c) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}
