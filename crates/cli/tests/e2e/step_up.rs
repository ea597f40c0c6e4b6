//! Assurance requests at `/authorize` against the real binary (OpenID Connect Core
//! 3.1.2.1 `acr_values`, `max_age`, `prompt=login`; 5.5.1.1 `claims`): malformed and
//! unknown values refused, a level the user cannot reach refused after the password, a
//! fresh password asked for even with a live (or stolen) session, the forms carrying the
//! request sealed against tampering, and the step up to `mfa` (enrolment, then the code)
//! whose tokens say so, refreshes included.

use reqwest::StatusCode;
use serde_json::Value;

use crate::authorize::{
    Browser, Page, Setup, authorize_url, exchange, form_of, post_form, setup_with,
};
use crate::harness::PASSWORD;
use crate::mfa_totp::{VERIFIER, app, assert_code_page, assurance, next_code, submit, tokens};

const PWD: &str = "urn:tessera:acr:pwd";
const MFA: &str = "urn:tessera:acr:mfa";

fn error_of(p: &Page) -> String {
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    p.redirect_params()["error"].clone()
}

fn assert_login_page(p: &Page) {
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.location.is_none());
    assert!(p.body.contains("<label for=\"username\">"), "{}", p.body);
}

/// Posts alice's password on a login page.
async fn password_on(s: &crate::harness::Server, b: &mut Browser, login: &Page) -> Page {
    assert_login_page(login);
    let form = form_of(login, &[("username", "alice"), ("password", PASSWORD)]);
    post_form(b, &s.url("/authorize"), &form).await
}

/// The form of `page` with `name` removed, or set to `value`.
fn changed(page: &Page, name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut form: Vec<_> = form_of(page, &[("username", "alice"), ("password", PASSWORD)])
        .into_iter()
        .filter(|(k, _)| k != name)
        .collect();
    if let Some(v) = value {
        form.push((name.to_owned(), v.to_owned()));
    }
    form
}

fn refresh_form<'a>(client: &'a str, token: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("grant_type", "refresh_token"),
        ("client_id", client),
        ("refresh_token", token),
    ]
}

#[tokio::test]
async fn malformed_unknown_and_unreachable_assurance_requests_are_refused() {
    let Setup { s, first, .. } = setup_with("mfa = \"off\"\n", &[]);
    let mut b = Browser::new();
    let oversized = format!("{MFA} {}", "x".repeat(1100));
    let repeated = format!("{MFA} {MFA}");
    let eleven = ["a"; 11].join(" ");
    let cases: &[(&str, &str, &str)] = &[
        (
            "acr_values",
            "urn:example:gold",
            "unmet_authentication_requirements",
        ),
        ("acr_values", &oversized, "invalid_request"),
        ("acr_values", &repeated, "invalid_request"),
        ("acr_values", &eleven, "invalid_request"),
        ("max_age", "-1", "invalid_request"),
        ("max_age", "abc", "invalid_request"),
        ("max_age", "1e3", "invalid_request"),
        ("max_age", "99999999999", "invalid_request"),
        ("claims", "{", "invalid_request"),
        (
            "claims",
            r#"{"id_token":{"acr":{"essential":"yes"}}}"#,
            "invalid_request",
        ),
        (
            "claims",
            r#"{"id_token":{"acr":{"essential":true,"values":["urn:example:gold"]}}}"#,
            "unmet_authentication_requirements",
        ),
        ("prompt", "none login", "invalid_request"),
    ];
    for (name, value, expected) in cases {
        let p = b
            .get(&authorize_url(&s, &first, VERIFIER, &[(name, value)]))
            .await;
        assert_eq!(error_of(&p), *expected, "{name}={value}");
        assert_eq!(p.redirect_params()["state"], "st-123");
    }
    // Blank (only spaces): omitted, as a parameter without a value is (RFC 6749 3.1).
    let blank = b
        .get(&authorize_url(
            &s,
            &first,
            VERIFIER,
            &[("acr_values", "  ")],
        ))
        .await;
    assert_login_page(&blank);
    // The parameter twice: refused like any repeated parameter.
    let twice = authorize_url(&s, &first, VERIFIER, &[("acr_values", PWD)]) + "&acr_values=" + PWD;
    assert_eq!(error_of(&b.get(&twice).await), "invalid_request");

    // mfa = "off" and no factor: MFA cannot be reached; refused after the password,
    // with no session started.
    let login = b
        .get(&authorize_url(&s, &first, VERIFIER, &[("acr_values", MFA)]))
        .await;
    let p = password_on(&s, &mut b, &login).await;
    assert_eq!(error_of(&p), "unmet_authentication_requirements");
    assert!(!b.has_cookie("tessera_session"));
    let essential = format!(r#"{{"id_token":{{"acr":{{"essential":true,"value":"{MFA}"}}}}}}"#);
    let login = b
        .get(&authorize_url(
            &s,
            &first,
            VERIFIER,
            &[("claims", &essential)],
        ))
        .await;
    let p = password_on(&s, &mut b, &login).await;
    assert_eq!(error_of(&p), "unmet_authentication_requirements");

    // What the password reaches is fine, and the tokens say what was reached.
    let login = b
        .get(&authorize_url(&s, &first, VERIFIER, &[("acr_values", PWD)]))
        .await;
    let t = tokens(&s, &first, &password_on(&s, &mut b, &login).await).await;
    for token in ["access_token", "id_token"] {
        let (acr, _, auth_time) = assurance(t[token].as_str().unwrap());
        assert_eq!(acr, PWD, "{token}");
        assert!(auth_time.is_number());
    }
    // A live password session asked for MFA: prompt=none cannot interact; otherwise
    // still unreachable.
    let none = [("acr_values", MFA), ("prompt", "none")];
    let p = b.get(&authorize_url(&s, &first, VERIFIER, &none)).await;
    assert_eq!(error_of(&p), "interaction_required");
    let p = b
        .get(&authorize_url(&s, &first, VERIFIER, &[("acr_values", MFA)]))
        .await;
    assert_eq!(error_of(&p), "unmet_authentication_requirements");

    let d = s.get("/.well-known/openid-configuration", None).await;
    assert_eq!(d.json["claims_parameter_supported"], true);
    // The ladder, lowest first (a higher rung may follow).
    let ladder = d.json["acr_values_supported"].as_array().unwrap();
    assert_eq!(ladder[..2], [Value::from(PWD), Value::from(MFA)]);
    assert_eq!(
        d.json["prompt_values_supported"],
        serde_json::json!(["none", "login"])
    );
}

#[tokio::test]
async fn max_age_and_prompt_login_ask_for_the_password_even_with_a_live_or_stolen_session() {
    let Setup { s, first, .. } = setup_with("", &[]);
    let mut b = Browser::new();
    let login = b.get(&authorize_url(&s, &first, VERIFIER, &[])).await;
    let t0 = tokens(&s, &first, &password_on(&s, &mut b, &login).await).await;
    let (_, _, t0_auth) = assurance(t0["id_token"].as_str().unwrap());

    // Recent enough: the session stands, and the ID token carries auth_time.
    let p = b
        .get(&authorize_url(&s, &first, VERIFIER, &[("max_age", "3600")]))
        .await;
    let t = tokens(&s, &first, &p).await;
    assert_eq!(assurance(t["id_token"].as_str().unwrap()).2, t0_auth);

    // A copy of the cookies (a stolen session): prompt=login shows the login page, and
    // its form posted without the password gives no code, whatever the action.
    let mut thief = b.clone();
    let login = thief
        .get(&authorize_url(&s, &first, VERIFIER, &[("prompt", "login")]))
        .await;
    assert_login_page(&login);
    for action in ["continue", "approve"] {
        let p = submit(&s, &mut thief, &login, &[("action", action)]).await;
        assert_login_page(&p);
    }
    // Dropping the field that names the stale session: the form is refused.
    let unnamed: Vec<_> = form_of(&login, &[("action", "continue")])
        .into_iter()
        .filter(|(k, _)| k != "stale")
        .collect();
    let p = post_form(&mut thief, &s.url("/authorize"), &unnamed).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.location.is_none());
    // The owner types the password: a new sign-in.
    let p = password_on(&s, &mut b, &login).await;
    let t = tokens(&s, &first, &p).await;
    let (_, _, fresh_auth) = assurance(t["id_token"].as_str().unwrap());
    assert!(fresh_auth.as_i64() >= t0_auth.as_i64());

    let none = [("max_age", "0"), ("prompt", "none")];
    let p = b.get(&authorize_url(&s, &first, VERIFIER, &none)).await;
    assert_eq!(error_of(&p), "login_required");
    let p = b
        .get(&authorize_url(&s, &first, VERIFIER, &[("max_age", "0")]))
        .await;
    assert_login_page(&p);

    // Older than max_age: the login page; prompt=none cannot show it.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let old = b
        .get(&authorize_url(&s, &first, VERIFIER, &[("max_age", "1")]))
        .await;
    assert_login_page(&old);
    let none = [("max_age", "1"), ("prompt", "none")];
    let p = b.get(&authorize_url(&s, &first, VERIFIER, &none)).await;
    assert_eq!(error_of(&p), "login_required");
    // The oldest sign-in accepted travels sealed: moved back, or dropped, or the MAC
    // gone, the form is refused before the password is even checked.
    for form in [
        changed(&old, "auth_after", Some("0")),
        changed(&old, "auth_after", None),
        changed(&old, "authz_mac", None),
        changed(&old, "scope", Some("openid")),
    ] {
        let p = post_form(&mut b, &s.url("/authorize"), &form).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
        assert!(p.body.contains("This form was changed"), "{}", p.body);
    }
    let t = tokens(&s, &first, &password_on(&s, &mut b, &old).await).await;
    let (_, _, newest) = assurance(t["id_token"].as_str().unwrap());
    assert!(newest.as_i64() > t0_auth.as_i64());
}

#[tokio::test]
async fn a_password_session_steps_up_to_mfa_and_its_tokens_keep_the_level() {
    let Setup { s, first, spa } = setup_with("mfa = \"optional\"\n", &[]);
    let mut b = Browser::new();
    let login = b.get(&authorize_url(&s, &first, VERIFIER, &[])).await;
    let t = tokens(&s, &first, &password_on(&s, &mut b, &login).await).await;
    assert_eq!(assurance(t["access_token"].as_str().unwrap()).0, PWD);

    let none = [("acr_values", MFA), ("prompt", "none")];
    let p = b.get(&authorize_url(&s, &first, VERIFIER, &none)).await;
    assert_eq!(error_of(&p), "interaction_required");
    // Enrolling needs the password: a session cookie alone (perhaps a stolen one) only
    // gets the login page, never the enrolment page.
    let login = b
        .get(&authorize_url(&s, &first, VERIFIER, &[("acr_values", MFA)]))
        .await;
    assert_login_page(&login);
    assert!(!login.body.contains("<svg"));
    // The level asked travels sealed: dropped or lowered in the form, refused.
    for form in [
        changed(&login, "acr", None),
        changed(&login, "acr", Some(PWD)),
    ] {
        let p = post_form(&mut b, &s.url("/authorize"), &form).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
        assert!(p.location.is_none(), "no code for a changed form");
    }
    // With the password, the enrolment (asked for, the box unticked), then the code.
    let enrol = password_on(&s, &mut b, &login).await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.body);
    assert!(enrol.body.contains("<svg"), "{}", enrol.body);
    let totp = app(&enrol);
    let codes = submit(
        &s,
        &mut b,
        &enrol,
        &[("code", &totp.generate_current().unwrap())],
    )
    .await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.body);
    let done = submit(&s, &mut b, &codes, &[]).await;
    let t = tokens(&s, &first, &done).await;
    let (acr, amr, auth_time) = assurance(t["access_token"].as_str().unwrap());
    assert_eq!(acr, MFA);
    assert!(
        amr.as_array().unwrap().contains(&Value::from("otp")),
        "{amr}"
    );
    assert_eq!(assurance(t["id_token"].as_str().unwrap()).0, MFA);

    // A refresh is not a new sign-in: the level and auth_time stay; another client
    // cannot use the refresh token.
    let rt = t["refresh_token"].as_str().unwrap();
    let other = s.token(&refresh_form(&spa, rt), None).await;
    other.assert_error(400, "invalid_grant");
    let refreshed = s.token(&refresh_form(&first, rt), None).await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.json);
    let (acr, _, refreshed_auth) = assurance(&refreshed.str("access_token"));
    assert_eq!((acr, refreshed_auth), (Value::from(MFA), auth_time.clone()));

    // The MFA session now stands for MFA at once; its code is the client's only.
    let p = b
        .get(&authorize_url(&s, &first, VERIFIER, &[("acr_values", MFA)]))
        .await;
    let code = p.redirect_params()["code"].clone();
    exchange(&s, &spa, &code, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");

    // Too old for max_age while asking for MFA: the password, then the code page (the
    // factor enrolled), then a code whose tokens are MFA again.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let extra = [("acr_values", MFA), ("max_age", "1")];
    let login = b.get(&authorize_url(&s, &first, VERIFIER, &extra)).await;
    let code_page = password_on(&s, &mut b, &login).await;
    assert_code_page(&code_page);
    let done = submit(&s, &mut b, &code_page, &[("code", &next_code(&totp))]).await;
    let t = tokens(&s, &first, &done).await;
    let (acr, _, newer) = assurance(t["id_token"].as_str().unwrap());
    assert_eq!(acr, MFA);
    assert!(newer.as_i64() > auth_time.as_i64());
}

/// Issue 17's MFA note: enrolment codes were not throttled. Wrong ones now count with
/// the code page's against the pending sign-in, which ends at the fifth; the password
/// (throttled) comes first again.
#[tokio::test]
async fn wrong_enrolment_codes_end_the_sign_in_at_the_fifth() {
    let Setup { s, first, .. } = setup_with("mfa = \"required\"\n", &[]);
    let mut b = Browser::new();
    let login = b.get(&authorize_url(&s, &first, VERIFIER, &[])).await;
    let mut page = password_on(&s, &mut b, &login).await;
    assert!(page.body.contains("<svg"), "{}", page.body);
    let totp = app(&page);
    for _ in 0..4 {
        page = submit(&s, &mut b, &page, &[("code", "000000")]).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(
            page.body.contains("That code is not right"),
            "{}",
            page.body
        );
    }
    let enrol_form = page;
    let ended = submit(&s, &mut b, &enrol_form, &[("code", "000000")]).await;
    assert_eq!(ended.status, StatusCode::BAD_REQUEST);
    assert!(
        ended.body.contains("Your sign-in expired"),
        "{}",
        ended.body
    );
    // The right code on the old page finds the sign-in gone.
    let right = totp.generate_current().unwrap();
    let late = submit(&s, &mut b, &enrol_form, &[("code", &right)]).await;
    assert!(late.body.contains("Your sign-in expired"), "{}", late.body);
    assert!(late.location.is_none() && !b.has_cookie("tessera_session"));
    // The password again, then the enrolment completes.
    let login = b.get(&authorize_url(&s, &first, VERIFIER, &[])).await;
    let page = password_on(&s, &mut b, &login).await;
    let code = app(&page).generate_current().unwrap();
    let codes = submit(&s, &mut b, &page, &[("code", &code)]).await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.body);
    assert!(codes.body.contains("<code>"), "recovery codes shown");
}

/// `DELETE /notes/{id}` at the example resource server: the status and its
/// `WWW-Authenticate` challenges.
async fn delete_note(rs: &str, token: &str) -> (StatusCode, Vec<String>) {
    let r = reqwest::Client::new()
        .delete(format!("{rs}/notes/0"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let challenges = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (r.status(), challenges)
}

const WRITE: &str = "openid profile notes:read notes:write";

/// The example resource server is built, or the test is skipped (outside CI).
fn example_api_built() -> bool {
    if std::path::Path::new(&crate::browser::resource_server_bin()).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the example resource server is not built"
    );
    eprintln!("skipping: build it with cargo build -p tessera-guard --example resource_server");
    false
}

/// A first-party public client allowed `notes:write` (the example's `DELETE` needs it).
fn writer(s: &crate::harness::Server) -> String {
    let (id, _) = s.add_client(
        "writer",
        "authorization_code,refresh_token",
        WRITE,
        &[
            "--public",
            "--first-party",
            "--audience",
            "notes-api",
            "--redirect-uri",
            crate::authorize::REDIRECT,
        ],
    );
    id
}

/// alice's password-only sign-in at `client` asking for `scope`: its tokens.
async fn password_tokens(s: &crate::harness::Server, client: &str, scope: &str) -> Value {
    let mut b = Browser::new();
    let login = b
        .get(&authorize_url(s, client, VERIFIER, &[("scope", scope)]))
        .await;
    tokens(s, client, &password_on(s, &mut b, &login).await).await
}

/// alice's step up as the example's challenge asks (`acr_values`, `max_age`): the
/// password, then the enrolment with a TOTP code and the recovery codes (the app kept in
/// `factor`), or the code page once enrolled; its tokens.
async fn stepped_up_tokens(
    s: &crate::harness::Server,
    client: &str,
    scope: &str,
    factor: &mut Option<totp_rs::TOTP>,
) -> Value {
    let mut b = Browser::new();
    let extra = [("acr_values", MFA), ("max_age", "300"), ("scope", scope)];
    let login = b.get(&authorize_url(s, client, VERIFIER, &extra)).await;
    let page = password_on(s, &mut b, &login).await;
    let done = match factor {
        Some(totp) => {
            assert_code_page(&page);
            submit(s, &mut b, &page, &[("code", &next_code(totp))]).await
        }
        None => {
            let totp = factor.insert(app(&page));
            let code = totp.generate_current().unwrap();
            let codes = submit(s, &mut b, &page, &[("code", &code)]).await;
            submit(s, &mut b, &codes, &[]).await
        }
    };
    tokens(s, client, &done).await
}

fn assert_step_up_challenge(status: StatusCode, challenges: &[String]) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenges:?}");
    let bearer = challenges
        .iter()
        .find(|c| c.starts_with("Bearer "))
        .unwrap();
    assert!(
        bearer.contains(r#"error="insufficient_user_authentication""#)
            && bearer.contains(&format!(r#"acr_values="{MFA}""#))
            && bearer.contains("max_age=300")
            && bearer.contains("resource_metadata="),
        "{bearer}"
    );
}

/// Review finding 1: the example API checking tokens by introspection (RFC 7662) learns
/// `acr` and `auth_time` from the answer (RFC 9470 section 6.1); they used to be missing,
/// so no token ever met the step-up there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_api_under_introspection_takes_a_fresh_mfa_token_and_challenges_a_password_one()
{
    if !example_api_built() {
        return;
    }
    let Setup { s, .. } = setup_with("mfa = \"optional\"\n", &[]);
    let writer = writer(&s);
    let (rs_client, rs_secret) = s.add_client(
        "notes-api",
        "client_credentials",
        "notes:read",
        &["--audience", "notes-api"],
    );
    let rs_secret = rs_secret.unwrap();
    let port = crate::browser::free_port();
    let rs = format!("http://127.0.0.1:{port}");
    let _api = crate::browser::start_resource_server(
        &s.base,
        port,
        &[
            "--introspection-client-id",
            &rs_client,
            "--introspection-client-secret",
            &rs_secret,
        ],
    );
    let t = password_tokens(&s, &writer, WRITE).await;
    let password_token = t["access_token"].as_str().unwrap();
    // What introspection says of it: the level and the time of the sign-in.
    let r = s
        .http
        .post(s.url("/introspect"))
        .basic_auth(&rs_client, Some(&rs_secret))
        .form(&[("token", password_token)])
        .send()
        .await
        .unwrap();
    let answer: Value = r.json().await.unwrap();
    let (acr, amr, auth_time) = assurance(password_token);
    assert_eq!(
        (&answer["acr"], &answer["amr"], &answer["auth_time"]),
        (&acr, &amr, &auth_time),
        "{answer}"
    );
    let (status, challenges) = delete_note(&rs, password_token).await;
    assert_step_up_challenge(status, &challenges);

    let t = stepped_up_tokens(&s, &writer, WRITE, &mut None).await;
    let (status, challenges) = delete_note(&rs, t["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{challenges:?}");
}

/// RFC 9470 end to end without a browser: the real server and the example API. A
/// password token and a minted one (no `acr`, no `auth_time`) get the step-up challenge;
/// the token of the stepped-up sign-in is taken if it may write (review finding 2: the
/// route checked no scope); a token without `notes:write` is refused 403 before any step
/// up is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_api_challenges_a_password_token_and_takes_the_stepped_up_one() {
    if !example_api_built() {
        return;
    }
    let Setup { s, first, .. } = setup_with("mfa = \"optional\"\n", &[]);
    let writer = writer(&s);
    s.add_client(
        "svc",
        "client_credentials",
        "notes:read notes:write",
        &["--audience", "notes-api"],
    );
    let port = crate::browser::free_port();
    let rs = format!("http://127.0.0.1:{port}");
    let _api = crate::browser::start_resource_server(&s.base, port, &[]);

    let t = password_tokens(&s, &writer, WRITE).await;
    let (status, challenges) = delete_note(&rs, t["access_token"].as_str().unwrap()).await;
    assert_step_up_challenge(status, &challenges);
    let minted = s.cli_ok(
        &[
            "token",
            "mint",
            "--issuer",
            &s.base,
            "--client",
            "svc",
            "--scope",
            "notes:write",
        ],
        None,
    );
    crate::harness::register_secret(minted.trim());
    let (status, challenges) = delete_note(&rs, minted.trim()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenges
            .iter()
            .any(|c| c.contains("insufficient_user_authentication"))
    );
    // No notes:write: 403 insufficient_scope, with a password token or a stepped-up one.
    let t = password_tokens(&s, &first, "openid profile notes:read").await;
    let (status, challenges) = delete_note(&rs, t["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{challenges:?}");
    assert!(challenges.iter().any(|c| c.contains("insufficient_scope")));
    let mut factor = None;
    let t = stepped_up_tokens(&s, &first, "openid profile notes:read", &mut factor).await;
    assert_eq!(assurance(t["access_token"].as_str().unwrap()).0, MFA);
    let (status, challenges) = delete_note(&rs, t["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{challenges:?}");

    // The step up the challenge asks for, with notes:write: taken.
    let t = stepped_up_tokens(&s, &writer, WRITE, &mut factor).await;
    let (status, _) = delete_note(&rs, t["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// A client secret is random and may start with `-` (the flake that found this: one run
/// in 64 of the test above): the example API takes it as the flag's value, not as
/// another flag.
#[tokio::test]
async fn the_example_api_takes_a_secret_that_starts_with_a_hyphen() {
    if !example_api_built() {
        return;
    }
    let Setup { s, .. } = setup_with("", &[]);
    let port = crate::browser::free_port();
    let _api = crate::browser::start_resource_server(
        &s.base,
        port,
        &[
            "--introspection-client-id",
            "notes-api",
            "--introspection-client-secret",
            "-m_RsW3cret-that-starts-with-a-hyphen",
            "--feed-client-id",
            "notes-api",
            "--feed-client-secret",
            "-also-a-hyphen",
        ],
    );
}
