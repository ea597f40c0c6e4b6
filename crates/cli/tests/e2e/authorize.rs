//! Browser sign-in over HTTP: every authorization-endpoint error (pages before the
//! redirect URI is trusted, redirects with `state` after), the login and consent forms
//! with their CSRF tokens and cookies, the code exchange with PKCE and its errors, the
//! ID token and userinfo, logout, and `sessions revoke` ending browser sessions.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use tessera_token::pkce;

use crate::harness::{PASSWORD, Server, jwt_claims};

pub const REDIRECT: &str = "http://127.0.0.1:9/cb";
pub const BYE: &str = "http://127.0.0.1:9/bye";

/// A server with user alice, a public third-party SPA client and a first-party one.
pub struct Setup {
    pub s: Server,
    pub spa: String,
    pub first: String,
}

pub fn setup_with(config: &str, env: &[(&str, &str)]) -> Setup {
    let s = Server::start_with(config, env);
    s.add_user("alice", PASSWORD);
    let common = [
        "--public",
        "--audience",
        "notes-api",
        "--redirect-uri",
        REDIRECT,
        "--post-logout-redirect-uri",
        BYE,
    ];
    let (spa, _) = s.add_client(
        "spa",
        "authorization_code,refresh_token",
        "openid profile notes:read",
        &common,
    );
    let mut first_args = common.to_vec();
    first_args.push("--first-party");
    let (first, _) = s.add_client(
        "first",
        "authorization_code,refresh_token",
        "openid profile notes:read",
        &first_args,
    );
    Setup { s, spa, first }
}

pub fn setup() -> Setup {
    setup_with("", &[])
}

/// A cookie jar and a client that does not follow redirects.
#[derive(Clone)]
pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// A page or redirect.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Page {
    /// The query parameters of the redirect.
    pub fn redirect_params(&self) -> BTreeMap<String, String> {
        let loc = self.location.as_deref().expect("a redirect");
        let query = loc.split_once('?').map(|(_, q)| q).unwrap_or_default();
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    /// From now on, sends from the loopback address `ip` (its cookies kept): one browser
    /// moving between source networks.
    pub fn move_to(&mut self, ip: std::net::IpAddr) {
        self.http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip)
            .build()
            .unwrap();
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.text().await.unwrap();
        Page {
            status,
            location,
            set_cookies,
            body,
            retry_after,
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let resp = self
            .http
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .http
            .post(url)
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }
}

/// An authorization request URL with PKCE S256 for `verifier`, plus `extra`.
pub fn authorize_url(
    s: &Server,
    client_id: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> String {
    let challenge = pkce::s256_challenge(verifier);
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile notes:read"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let base: Vec<(String, String)> = form_urlencoded::parse(q.finish().as_bytes())
        .into_owned()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(base);
    q.extend_pairs(extra.iter().filter(|(_, v)| !v.is_empty()));
    s.url(&format!("/authorize?{}", q.finish()))
}

/// The hidden fields of a form page plus `more`, as owned pairs.
pub fn form_of(page: &Page, more: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = page.body.as_str();
    while let Some(i) = rest.find("type=\"hidden\" name=\"") {
        rest = &rest[i + 20..];
        let name = &rest[..rest.find('"').unwrap()];
        let marker = "value=\"";
        let v0 = rest.find(marker).unwrap() + marker.len();
        let v1 = rest[v0..].find('"').unwrap() + v0;
        let value = rest[v0..v1].replace("&#43;", "+");
        if !more.iter().any(|(k, _)| *k == name) {
            out.push((name.to_owned(), value));
        }
    }
    out.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    out
}

pub async fn post_form(b: &mut Browser, url: &str, form: &[(String, String)]) -> Page {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    b.post(url, &pairs).await
}

/// Signs alice in through the login and consent pages; returns the code.
pub async fn sign_in(s: &Server, b: &mut Browser, client_id: &str, verifier: &str) -> String {
    let login = b.get(&authorize_url(s, client_id, verifier, &[])).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.body.contains("<label for=\"username\">"));
    let form = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
    let mut page = post_form(b, &s.url("/authorize"), &form).await;
    if page.status == StatusCode::OK {
        assert!(page.body.contains("Allow"), "consent page: {}", page.body);
        let form = form_of(&page, &[("action", "approve")]);
        page = post_form(b, &s.url("/authorize"), &form).await;
    }
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let params = page.redirect_params();
    assert!(page.location.as_deref().unwrap().starts_with(REDIRECT));
    assert_eq!(params["state"], "st-123");
    assert_eq!(params["iss"], s.base);
    params["code"].clone()
}

pub async fn exchange(
    s: &Server,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> crate::harness::Reply {
    s.token(
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await
}

fn verifier() -> String {
    pkce::generate_verifier().unwrap()
}

#[tokio::test]
async fn errors_before_the_redirect_uri_is_trusted_are_pages_never_redirects() {
    let Setup { s, spa, .. } = setup();
    let mut b = Browser::new();
    let v = verifier();
    let cases = [
        (
            "missing client_id",
            authorize_url(&s, &spa, &v, &[("client_id", "")]),
        ),
        (
            "unknown client_id",
            authorize_url(&s, &spa, &v, &[("client_id", "nope")]),
        ),
        (
            "unregistered redirect_uri",
            authorize_url(&s, &spa, &v, &[("redirect_uri", "http://127.0.0.1:9/evil")]),
        ),
        (
            "redirect_uri with a different path",
            authorize_url(&s, &spa, &v, &[("redirect_uri", "http://127.0.0.1:9/cb/x")]),
        ),
        (
            "repeated redirect_uri",
            format!(
                "{}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
                authorize_url(&s, &spa, &v, &[])
            ),
        ),
    ];
    for (what, url) in cases {
        let p = b.get(&url).await;
        assert_eq!(p.status, 400, "{what}");
        assert!(p.location.is_none(), "{what}: must not redirect");
        assert!(p.body.contains("role=\"alert\""), "{what}");
        assert!(!p.body.contains("127.0.0.1:9/evil"), "{what}");
    }
}

#[tokio::test]
async fn errors_after_the_redirect_uri_is_trusted_redirect_with_state() {
    let Setup { s, spa, .. } = setup();
    let (cc, _) = s.add_client(
        "machine-with-redirect",
        "client_credentials",
        "",
        &["--redirect-uri", REDIRECT],
    );
    let mut b = Browser::new();
    let v = verifier();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing response_type",
            authorize_url(&s, &spa, &v, &[("response_type", "")]),
            "invalid_request",
        ),
        (
            "response_type=token",
            authorize_url(&s, &spa, &v, &[("response_type", "token")]),
            "unsupported_response_type",
        ),
        (
            "response_type=code id_token",
            authorize_url(&s, &spa, &v, &[("response_type", "code id_token")]),
            "unsupported_response_type",
        ),
        (
            "missing code_challenge",
            authorize_url(&s, &spa, &v, &[("code_challenge", "")]),
            "invalid_request",
        ),
        (
            "missing code_challenge_method",
            authorize_url(&s, &spa, &v, &[("code_challenge_method", "")]),
            "invalid_request",
        ),
        (
            "plain",
            authorize_url(&s, &spa, &v, &[("code_challenge_method", "plain")]),
            "invalid_request",
        ),
        (
            "unknown method",
            authorize_url(&s, &spa, &v, &[("code_challenge_method", "S512")]),
            "invalid_request",
        ),
        (
            "malformed challenge",
            authorize_url(&s, &spa, &v, &[("code_challenge", "short")]),
            "invalid_request",
        ),
        (
            "scope not allowed",
            authorize_url(&s, &spa, &v, &[("scope", "openid admin")]),
            "invalid_scope",
        ),
        (
            "malformed scope",
            authorize_url(&s, &spa, &v, &[("scope", "a\"b")]),
            "invalid_scope",
        ),
        (
            "repeated state",
            format!("{}&state=again", authorize_url(&s, &spa, &v, &[])),
            "invalid_request",
        ),
        (
            "client without the grant",
            authorize_url(&s, &cc, &v, &[]),
            "unauthorized_client",
        ),
        (
            "request object",
            authorize_url(&s, &spa, &v, &[("request", "eyJ.x.y")]),
            "request_not_supported",
        ),
        (
            "prompt=none without a session",
            authorize_url(&s, &spa, &v, &[("prompt", "none")]),
            "login_required",
        ),
    ];
    for (what, url, code) in cases {
        let p = b.get(&url).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{what}: {}", p.body);
        assert!(
            p.location
                .as_deref()
                .unwrap()
                .starts_with(&format!("{REDIRECT}?")),
            "{what}"
        );
        let q = p.redirect_params();
        assert_eq!(q["error"], code, "{what}");
        assert!(q.contains_key("error_description"), "{what}");
        assert!(!q.contains_key("code"), "{what}");
        if what != "repeated state" {
            assert_eq!(q["state"], "st-123", "{what}: state echoed");
        }
        assert_eq!(q["iss"], s.base, "{what}");
    }
    // Without a state parameter, none comes back.
    let p = b
        .get(&authorize_url(
            &s,
            &spa,
            &v,
            &[("state", ""), ("response_type", "token")],
        ))
        .await;
    assert!(!p.redirect_params().contains_key("state"));
}

#[tokio::test]
async fn the_code_flow_issues_tokens_an_id_token_and_userinfo() {
    let Setup { s, spa, .. } = setup();
    let mut b = Browser::new();
    let v = verifier();
    let code = sign_in(&s, &mut b, &spa, &v).await;
    assert!(code.starts_with("tsr_ac_"));
    let r = exchange(&s, &spa, &code, &v).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.headers["cache-control"], "no-store");
    let access = r.str("access_token");
    assert_eq!(r.str("scope"), "openid profile notes:read");
    let claims = crate::harness::verify(&s, &access, "notes-api").await;
    assert_eq!(claims.client_id.as_deref(), Some(spa.as_str()));
    assert!(claims.auth_time.is_some());

    // The ID token: signed by the JWKS, aud = client_id, nonce echoed, at_hash of the
    // access token with the signing alg's hash (RS256 by default: SHA-256, left half).
    let id = r.str("id_token");
    let c = jwt_claims(&id);
    assert_eq!(c["iss"], s.base);
    assert_eq!(c["aud"], spa.as_str());
    assert_eq!(c["nonce"], "n-456");
    assert_eq!(c["sub"], claims.sub.clone().unwrap());
    assert!(c["auth_time"].as_i64().unwrap() <= c["iat"].as_i64().unwrap());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    assert_eq!(c["at_hash"], URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
    let jwks = s.get("/jwks.json", None).await;
    let set = tessera_token::JwkSet::from_json(jwks.json.to_string().as_bytes()).unwrap();
    let keys = tessera_token::KeySet::from_jwks(&set).unwrap();
    let policy = tessera_token::Validation::new(s.base.clone(), spa.clone());
    keys.verify(
        &id,
        &policy,
        tessera_token::Clock::now(&tessera_token::SystemClock),
    )
    .expect("the ID token verifies against the JWKS");

    // Userinfo, behind the guard: the token works, nothing else does.
    let http = reqwest::Client::new();
    let ui = http
        .get(s.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    let body: Value = ui.json().await.unwrap();
    assert_eq!(body["sub"], claims.sub.clone().unwrap());
    assert_eq!(body["preferred_username"], "alice");
    let none = http.get(s.url("/userinfo")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(
        none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let bad = http
        .get(s.url("/userinfo"))
        .bearer_auth("x.y.z")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    // Refresh works and rotates.
    let rt = r.str("refresh_token");
    let r2 = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &spa),
                ("refresh_token", &rt),
            ],
            None,
        )
        .await;
    assert_eq!(r2.status, 200, "{:?}", r2.json);
    assert_ne!(r2.str("refresh_token"), rt);
}

#[tokio::test]
async fn code_exchange_errors() {
    let Setup { s, spa, first } = setup();
    let mut b = Browser::new();
    let v = verifier();
    let code = sign_in(&s, &mut b, &spa, &v).await;

    // Wrong verifier, malformed verifier, missing verifier, other client, other redirect.
    exchange(&s, &spa, &code, &verifier())
        .await
        .assert_error(400, "invalid_grant");
    exchange(&s, &spa, &code, "short")
        .await
        .assert_error(400, "invalid_request");
    let no_verifier = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &spa),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
            None,
        )
        .await;
    no_verifier.assert_error(400, "invalid_request");
    exchange(&s, &first, &code, &v)
        .await
        .assert_error(400, "invalid_grant");
    let other_redirect = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &spa),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", &v),
            ],
            None,
        )
        .await;
    other_redirect.assert_error(400, "invalid_grant");
    exchange(&s, &spa, "tsr_ac_garbage", &v)
        .await
        .assert_error(400, "invalid_grant");

    // None of those used the code up: the right exchange still works, once.
    let ok = exchange(&s, &spa, &code, &v).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    let rt = ok.str("refresh_token");
    let access = ok.str("access_token");

    // A reused code is refused and revokes what the first exchange issued.
    exchange(&s, &spa, &code, &v)
        .await
        .assert_error(400, "invalid_grant");
    s.token(
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &spa),
            ("refresh_token", &rt),
        ],
        None,
    )
    .await
    .assert_error(400, "invalid_grant");
    let ui = reqwest::Client::new()
        .get(s.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ui.status(),
        401,
        "the grant's access tokens are revoked too"
    );
    assert!(s.log().contains("authorization code reuse"));
    assert!(!s.log().contains(&code), "codes never reach the log");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let Setup { s, spa, .. } = setup_with("authorization_code_ttl_secs = 1\n", &[]);
    let mut b = Browser::new();
    let v = verifier();
    let code = sign_in(&s, &mut b, &spa, &v).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    exchange(&s, &spa, &code, &v)
        .await
        .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn forms_need_their_csrf_token_and_wrong_passwords_get_one_message() {
    let Setup { s, spa, .. } = setup();
    let mut b = Browser::new();
    let v = verifier();
    let login = b.get(&authorize_url(&s, &spa, &v, &[])).await;
    let good = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
    let without: Vec<_> = good.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let p = post_form(&mut b, &s.url("/authorize"), &without).await;
    assert_eq!(p.status, 403);
    assert!(
        p.set_cookies
            .iter()
            .all(|c| !c.starts_with("tessera_session"))
    );
    let forged = form_of(
        &login,
        &[
            ("csrf", "AAAA"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(
        post_form(&mut b, &s.url("/authorize"), &forged)
            .await
            .status,
        403
    );
    // The right token with another browser's (missing) cookie is refused too.
    let mut other = Browser::new();
    assert_eq!(
        post_form(&mut other, &s.url("/authorize"), &good)
            .await
            .status,
        403
    );

    // Wrong password and unknown user: the same generic message, announced, no session.
    let mut bodies = Vec::new();
    for (user, pw) in [("alice", "wrong password!"), ("nobody", PASSWORD)] {
        let form = form_of(&login, &[("username", user), ("password", pw)]);
        let p = post_form(&mut b, &s.url("/authorize"), &form).await;
        assert_eq!(
            p.status, 400,
            "a failed sign-in is 400 (a 401 would need a challenge)"
        );
        assert!(p.body.contains("role=\"alert\""));
        assert!(p.body.contains("Wrong username or password."));
        assert!(p.body.contains("aria-invalid=\"true\""));
        assert!(!b.has_cookie("tessera_session"));
        bodies.push(p.body.replace(user, "USER"));
    }
    assert!(
        !bodies[0].contains("wrong password!"),
        "the password is never echoed"
    );

    // The right credentials still work, and set the session cookie as specified.
    let p = post_form(&mut b, &s.url("/authorize"), &good).await;
    assert_eq!(p.status, 200);
    let cookie = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("tessera_session="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "loopback http: no Secure");
    assert_eq!(p.status, 200);
    // The consent form is CSRF-protected as well.
    let consent: Vec<_> = form_of(&p, &[("action", "approve")])
        .into_iter()
        .filter(|(k, _)| k != "csrf")
        .collect();
    assert_eq!(
        post_form(&mut b, &s.url("/authorize"), &consent)
            .await
            .status,
        403
    );
    // Deny goes back with access_denied.
    let deny = form_of(&p, &[("action", "deny")]);
    let d = post_form(&mut b, &s.url("/authorize"), &deny).await;
    assert_eq!(d.redirect_params()["error"], "access_denied");
}

#[tokio::test]
async fn https_issuers_get_host_prefixed_secure_cookies() {
    let Setup { s, spa, .. } = setup_with("", &[("TESSERA_ISSUER", "https://auth.example.test")]);
    let mut b = Browser::new();
    let p = b.get(&authorize_url(&s, &spa, &verifier(), &[])).await;
    assert_eq!(p.status, 200);
    let c = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-tessera_csrf="))
        .unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(c.contains(attr), "{c}");
    }
    assert!(!c.contains("Domain"));
}

#[tokio::test]
async fn first_party_clients_skip_consent_and_sessions_are_reused_until_revoked() {
    let Setup { s, first, spa } = setup();
    let mut b = Browser::new();
    let v = verifier();
    // First party: login goes straight to the redirect.
    let code = sign_in(&s, &mut b, &first, &v).await;
    assert_eq!(exchange(&s, &first, &code, &v).await.status, 200);
    // Signed in: a second request needs no login (consent page for the third party).
    let p = b.get(&authorize_url(&s, &spa, &v, &[])).await;
    assert!(p.body.contains("Allow"), "{}", p.body);
    let p = b
        .get(&authorize_url(&s, &first, &v, &[("prompt", "none")]))
        .await;
    assert!(p.redirect_params().contains_key("code"));

    // `tessera sessions revoke --user alice` ends the browser session too.
    s.cli_ok(&["sessions", "revoke", "--user", "alice"], None);
    let p = b.get(&authorize_url(&s, &first, &v, &[])).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Sign in"), "login again: {}", p.body);
}

#[tokio::test]
async fn logout_ends_the_session_and_returns_to_registered_uris_only() {
    let Setup { s, first, .. } = setup();
    let mut b = Browser::new();
    let v = verifier();
    let code = sign_in(&s, &mut b, &first, &v).await;
    let id_token = exchange(&s, &first, &code, &v).await.str("id_token");

    // Unregistered targets are refused with a page.
    let q = |uri: &str| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", uri),
                ("state", "bye-1"),
            ])
            .finish()
    };
    let p = b
        .get(&s.url(&format!("/logout?{}", q("http://127.0.0.1:9/evil"))))
        .await;
    assert_eq!(p.status, 400);
    assert!(p.location.is_none());

    // The confirmation page, then the CSRF-checked post.
    let page = b.get(&s.url(&format!("/logout?{}", q(BYE)))).await;
    assert_eq!(page.status, 200);
    let without: Vec<_> = form_of(&page, &[])
        .into_iter()
        .filter(|(k, _)| k != "csrf")
        .collect();
    assert_eq!(
        post_form(&mut b, &s.url("/logout"), &without).await.status,
        403
    );
    let done = post_form(&mut b, &s.url("/logout"), &form_of(&page, &[])).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("{BYE}?state=bye-1").as_str())
    );
    assert!(
        done.set_cookies
            .iter()
            .any(|c| c.starts_with("tessera_session=;") && c.contains("Max-Age=0"))
    );

    // Signed out: the next authorization request shows the login page again.
    let p = b
        .get(&authorize_url(&s, &first, &v, &[("prompt", "none")]))
        .await;
    assert_eq!(p.redirect_params()["error"], "login_required");
}

#[tokio::test]
async fn discovery_lists_the_browser_and_openid_endpoints() {
    let s = Server::start();
    let d = s.get("/.well-known/openid-configuration", None).await;
    assert_eq!(d.json["authorization_endpoint"], s.url("/authorize"));
    assert_eq!(d.json["userinfo_endpoint"], s.url("/userinfo"));
    assert_eq!(d.json["end_session_endpoint"], s.url("/logout"));
    assert_eq!(
        d.json["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        d.json["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(
        d.json["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "openid")
    );
    assert!(
        d.json["claims_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "nonce")
    );
    assert!(
        d.json["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "authorization_code")
    );
    assert!(d.json["subject_types_supported"].is_array());
    assert!(d.json["id_token_signing_alg_values_supported"].is_array());
}
