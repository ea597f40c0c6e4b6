//! Second factor (TOTP and recovery codes) at browser sign-in, against the real binary:
//! enrolment under `mfa = "required"` (the key parsed from the page, codes computed here
//! with totp-rs), sign-in with a code and with a recovery code, replay and reuse refused,
//! no way around the code step, throttling that a correct password does not reset, the
//! password grant refused for an enrolled user, `user mfa` and `user mfa-reset`.

use reqwest::StatusCode;
use serde_json::Value;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::authorize::{Browser, Page, authorize_url, exchange, form_of, post_form, setup_with};
use crate::harness::{PASSWORD, Server, jwt_claims, register_secret};

const REQUIRED: &str = "mfa = \"required\"\n";
/// The PKCE verifier of every sign-in here.
pub const VERIFIER: &str = "mfa-e2e-verifier-0123456789-0123456789-abcdefghij";

/// Exchanges the code of `redirect` and returns the token response.
pub async fn tokens(s: &Server, client: &str, redirect: &Page) -> Value {
    assert_eq!(redirect.status, StatusCode::SEE_OTHER, "{}", redirect.body);
    let code = redirect.redirect_params()["code"].clone();
    let r = exchange(s, client, &code, VERIFIER).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json
}

/// `acr`, `amr` and `auth_time` of a token.
pub fn assurance(token: &str) -> (Value, Value, Value) {
    let c = jwt_claims(token);
    (c["acr"].clone(), c["amr"].clone(), c["auth_time"].clone())
}

pub fn between<'a>(body: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(start) {
        rest = &rest[i + start.len()..];
        let j = rest.find(end).unwrap();
        out.push(&rest[..j]);
        rest = &rest[j..];
    }
    out
}

/// The authenticator app: the key from the enrolment page.
pub fn app(enrol: &Page) -> TOTP {
    let key = between(&enrol.body, "id=\"secret\" value=\"", "\"")[0].to_owned();
    register_secret(&key);
    let bytes = Secret::Encoded(key).to_bytes().unwrap();
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, "alice".into()).unwrap()
}

/// The code of the next time step (accepted: one step of skew), so it is never the step
/// a code used a moment ago belongs to.
pub fn next_code(app: &TOTP) -> String {
    app.generate(app.next_step_current().unwrap())
}

/// Starts a sign-in for `client` and posts alice's password: the page after it.
async fn password(s: &Server, b: &mut Browser, client: &str) -> Page {
    let login = b.get(&authorize_url(s, client, VERIFIER, &[])).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let form = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
    post_form(b, &s.url("/authorize"), &form).await
}

/// [`password`] with the "set up a second factor" box ticked.
async fn password_enrolling(s: &Server, b: &mut Browser, client: &str) -> Page {
    let login = b.get(&authorize_url(s, client, VERIFIER, &[])).await;
    let form = form_of(
        &login,
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("enrol", "1"),
        ],
    );
    post_form(b, &s.url("/authorize"), &form).await
}

pub async fn submit(s: &Server, b: &mut Browser, page: &Page, more: &[(&str, &str)]) -> Page {
    post_form(b, &s.url("/authorize"), &form_of(page, more)).await
}

pub fn assert_code_page(p: &Page) {
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("<label for=\"code\">"), "{}", p.body);
    assert!(p.body.contains("name=\"action\" value=\"mfa\""));
}

/// What enrolment leaves: the app, the code that confirmed it, the recovery codes, and
/// the browser, signed in, at the consent page.
struct Enrolled {
    app: TOTP,
    first: String,
    codes: Vec<String>,
    b: Browser,
    consent: Page,
}

/// Enrols alice (required, or optional with the box ticked).
async fn enrol(s: &Server, client: &str) -> Enrolled {
    let mut b = Browser::new();
    let page = password_enrolling(s, &mut b, client).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<svg"), "an inline SVG QR code");
    assert!(!page.body.contains("<img") && !page.body.contains("<script"));
    assert!(page.body.contains("<label for=\"code\">"));
    let app = app(&page);
    let wrong = submit(s, &mut b, &page, &[("code", "000000")]).await;
    assert_eq!(wrong.status, 400);
    assert!(
        wrong
            .body
            .contains("role=\"alert\" aria-live=\"assertive\">That code is not right")
    );
    let first = app.generate_current().unwrap();
    let codes_page = submit(s, &mut b, &wrong, &[("code", &first)]).await;
    assert_eq!(codes_page.status, 200, "{}", codes_page.body);
    let codes: Vec<String> = between(&codes_page.body, "<code>", "</code>")
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10);
    codes.iter().for_each(|c| register_secret(c));
    let consent = submit(s, &mut b, &codes_page, &[]).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Allow"), "{}", consent.body);
    Enrolled {
        app,
        first,
        codes,
        b,
        consent,
    }
}

#[tokio::test]
async fn enrol_then_sign_in_with_a_code_or_a_recovery_code_once_each() {
    let setup = setup_with(REQUIRED, &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let Enrolled {
        app,
        first,
        codes,
        mut b,
        consent,
    } = enrol(s, spa).await;
    // The session is real: approving gives a code that exchanges for tokens that say
    // how the user signed in, and a refresh keeps it (a refresh is not a sign-in).
    let done = submit(s, &mut b, &consent, &[("action", "approve")]).await;
    let t = tokens(s, spa, &done).await;
    let mfa = (
        Value::from("urn:tessera:acr:mfa"),
        serde_json::json!(["pwd", "otp", "mfa"]),
    );
    let (acr, amr, auth_time) = assurance(t["access_token"].as_str().unwrap());
    assert_eq!((acr, amr), mfa.clone(), "access token");
    assert!(auth_time.is_number());
    let (acr, amr, id_auth_time) = assurance(t["id_token"].as_str().unwrap());
    assert_eq!((acr, amr), mfa.clone(), "ID token");
    assert_eq!(id_auth_time, auth_time);
    let refreshed = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", spa),
                ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ],
            None,
        )
        .await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.json);
    let (acr, amr, refreshed_auth_time) = assurance(&refreshed.str("access_token"));
    assert_eq!((acr, amr), mfa, "a refresh keeps the sign-in's assurance");
    assert_eq!(refreshed_auth_time, auth_time);
    let d = s.get("/.well-known/openid-configuration", None).await;
    assert_eq!(
        d.json["acr_values_supported"],
        serde_json::json!([
            "urn:tessera:acr:pwd",
            "urn:tessera:acr:mfa",
            "urn:tessera:acr:phr"
        ])
    );

    // A new browser: the password alone leads to the code page, not to consent.
    let mut b = Browser::new();
    let page = password(s, &mut b, spa).await;
    assert_code_page(&page);
    assert!(
        !b.has_cookie("tessera_session"),
        "no session before the second factor"
    );
    // Skipping the step: consent, continue and enrol posts find no session.
    for action in ["approve", "continue"] {
        let skipped = submit(s, &mut b, &page, &[("action", action)]).await;
        assert_eq!(skipped.status, 200, "{action}");
        assert!(
            skipped.location.is_none(),
            "{action}: no code without the factor"
        );
        assert!(
            skipped.body.contains("<label for=\"username\">"),
            "{action}: {}",
            skipped.body
        );
    }
    let enrol_again = submit(
        s,
        &mut b,
        &page,
        &[("action", "enrol"), ("code", &next_code(&app))],
    )
    .await;
    assert_eq!(
        enrol_again.status, 400,
        "no enrolment over a confirmed factor"
    );
    // The enrolment's code again: a replay.
    let page = password(s, &mut b, spa).await;
    let replay = submit(s, &mut b, &page, &[("code", &first)]).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    let code = next_code(&app);
    // A copy of this browser's cookies (the pending sign-in's among them).
    let mut twin = b.clone();
    let ok = submit(s, &mut b, &replay, &[("code", &code)]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("Allow"));
    // The pending sign-in is single use: the copy finds it gone (and spends no code).
    let late = submit(s, &mut twin, &replay, &[("code", &codes[1])]).await;
    assert_eq!(late.status, 400);
    assert!(late.body.contains("Your sign-in expired"), "{}", late.body);
    assert!(late.location.is_none());
    let redirect = submit(s, &mut b, &ok, &[("action", "approve")]).await;
    assert_eq!(redirect.status, StatusCode::SEE_OTHER);

    // The same code in another browser: refused.
    let mut other = Browser::new();
    let page = password(s, &mut other, spa).await;
    let again = submit(s, &mut other, &page, &[("code", &code)]).await;
    assert_eq!(again.status, 400);
    // A recovery code works, once.
    let ok = submit(s, &mut other, &again, &[("code", &codes[0].to_uppercase())]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("Allow"));
    // A recovery code is a second factor but not an app's one-time password: `mfa`, no `otp`.
    let done = submit(s, &mut other, &ok, &[("action", "approve")]).await;
    let t = tokens(s, spa, &done).await;
    for token in ["access_token", "id_token"] {
        let (acr, amr, _) = assurance(t[token].as_str().unwrap());
        assert_eq!(acr, "urn:tessera:acr:mfa", "{token}");
        assert_eq!(amr, serde_json::json!(["pwd", "mfa"]), "{token}");
    }
    let mut third = Browser::new();
    let page = password(s, &mut third, spa).await;
    let used = submit(s, &mut third, &page, &[("code", &codes[0])]).await;
    assert_eq!(used.status, 400);

    let listed = s.cli_ok(&["user", "mfa", "alice", "--json"], None);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["totp"], "enrolled");
    assert_eq!(listed["recovery_codes_left"], 9);

    // Audit: the events, and no key or code in them.
    let audit = s.cli_ok(&["audit", "--json", "--limit", "1000"], None);
    for kind in ["mfa.enroll", "mfa.success", "mfa.failure"] {
        assert!(audit.contains(kind), "{kind} audited");
    }
    let key = app.get_secret_base32();
    for secret in codes.iter().chain([&code, &key]) {
        assert!(
            !audit.contains(secret.as_str()),
            "no code or key in the audit log"
        );
    }
}

#[tokio::test]
async fn the_password_grant_and_a_reset() {
    let setup = setup_with("", &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let (id, secret) = s.add_client("legacy", "password", "profile", &[]);
    let secret = secret.unwrap();
    let grant = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    // Before enrolment the password grant works (it never enrols), at the password's level.
    let r = s.token(&grant, Some((&id, &secret))).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let (acr, amr, _) = assurance(&r.str("access_token"));
    assert_eq!(acr, "urn:tessera:acr:pwd");
    assert_eq!(amr, serde_json::json!(["pwd"]));

    let Enrolled { mut b, consent, .. } = enrol(s, spa).await;
    let r = s.token(&grant, Some((&id, &secret))).await;
    r.assert_error(400, "invalid_grant");
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("second factor")
    );
    // A wrong password still gets the one answer for every failure.
    let wrong = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "nope nope nope"),
    ];
    let r = s.token(&wrong, Some((&id, &secret))).await;
    assert_eq!(r.json["error_description"], "invalid username or password");

    let out = s.cli_ok(&["user", "mfa-reset", "alice"], None);
    assert!(out.contains("removed the second factors"), "{out}");
    assert!(
        s.cli_ok(&["user", "mfa", "alice"], None)
            .contains("totp: none")
    );
    // The session ended: the consent page's approval finds none.
    let after = submit(s, &mut b, &consent, &[("action", "approve")]).await;
    assert!(after.location.is_none());
    assert!(after.body.contains("<label for=\"username\">"));
    // Reset: the password alone signs in again; the box enrols again, with a new key.
    let page = password(s, &mut Browser::new(), spa).await;
    assert!(page.body.contains("Allow"), "{}", page.body);
    let page = password_enrolling(s, &mut Browser::new(), spa).await;
    assert!(page.body.contains("<svg"));
    let audit = s.cli_ok(&["audit", "--json"], None);
    assert!(audit.contains("mfa.reset"));
}

#[tokio::test]
async fn wrong_codes_are_throttled_and_a_correct_password_does_not_reset_them() {
    let setup = setup_with(&format!("{REQUIRED}login_failures_per_account = 3\n"), &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let app = enrol(s, spa).await.app;
    let mut b = Browser::new();
    let mut page = password(s, &mut b, spa).await;
    for _ in 0..3 {
        page = submit(s, &mut b, &page, &[("code", "123456")]).await;
        assert_eq!(page.status, 400, "{}", page.body);
    }
    let blocked = submit(s, &mut b, &page, &[("code", &next_code(&app))]).await;
    assert_eq!(blocked.status, 429, "blocked even with the right code");
    assert!(blocked.retry_after.is_some());
    // Signing in again with the right password does not clear the code's failures.
    let mut b = Browser::new();
    let page = password(s, &mut b, spa).await;
    assert_code_page(&page);
    let still = submit(s, &mut b, &page, &[("code", "654321")]).await;
    assert_eq!(still.status, 429);
}

#[tokio::test]
async fn optional_offers_enrolment_and_off_does_not() {
    let setup = setup_with("", &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let mut b = Browser::new();
    let v = VERIFIER;
    let login = b.get(&authorize_url(s, spa, v, &[])).await;
    assert!(
        login.body.contains("name=\"enrol\""),
        "optional is the default"
    );
    // Without the box: straight to consent, as before, and tokens at the password's level.
    let form = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
    let page = post_form(&mut b, &s.url("/authorize"), &form).await;
    assert!(page.body.contains("Allow"), "{}", page.body);
    let done = submit(s, &mut b, &page, &[("action", "approve")]).await;
    let t = tokens(s, spa, &done).await;
    for token in ["access_token", "id_token"] {
        let (acr, amr, _) = assurance(t[token].as_str().unwrap());
        assert_eq!(acr, "urn:tessera:acr:pwd", "{token}");
        assert_eq!(amr, serde_json::json!(["pwd"]), "{token}");
    }
    // With it: the enrolment page.
    let mut b = Browser::new();
    let login = b.get(&authorize_url(s, spa, v, &[])).await;
    let form = form_of(
        &login,
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("enrol", "1"),
        ],
    );
    let page = post_form(&mut b, &s.url("/authorize"), &form).await;
    assert!(page.body.contains("<svg"), "{}", page.body);
    let _ = app(&page);

    let off = setup_with("mfa = \"off\"\n", &[]);
    let mut b = Browser::new();
    let login = b.get(&authorize_url(&off.s, &off.spa, v, &[])).await;
    assert!(!login.body.contains("name=\"enrol\""));
}

/// The reviewer's repro: a browser signed in with the password alone before the user
/// enrolled (in another browser) gets no code afterwards, even silently (`prompt=none`),
/// and the refresh token it got before is dead; the enrolling browser stays signed in.
#[tokio::test]
async fn enrolling_ends_what_was_had_with_the_password_alone() {
    let setup = setup_with("", &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    // Browser A: password only (optional, no box), tokens, and a consent page kept open.
    let mut a = Browser::new();
    let consent = password(s, &mut a, spa).await;
    assert!(consent.body.contains("Allow"), "{}", consent.body);
    let done = submit(s, &mut a, &consent, &[("action", "approve")]).await;
    let before = tokens(s, spa, &done).await;
    let kept_open = consent_again(s, &mut a, spa).await;
    // Browser B enrols.
    let mut b = Browser::new();
    let login = b.get(&authorize_url(s, spa, VERIFIER, &[])).await;
    let form = form_of(
        &login,
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("enrol", "1"),
        ],
    );
    let page = post_form(&mut b, &s.url("/authorize"), &form).await;
    let app = app(&page);
    let codes_page = submit(
        s,
        &mut b,
        &page,
        &[("code", &app.generate_current().unwrap())],
    )
    .await;
    assert_eq!(codes_page.status, 200, "{}", codes_page.body);
    let b_consent_page = submit(s, &mut b, &codes_page, &[]).await;
    assert!(
        b_consent_page.body.contains("Allow"),
        "the enrolling browser stays signed in: {}",
        b_consent_page.body
    );
    // A, silently: login_required, no code.
    let silent = a
        .get(&authorize_url(s, spa, VERIFIER, &[("prompt", "none")]))
        .await;
    assert_eq!(silent.status, StatusCode::SEE_OTHER, "{}", silent.body);
    let params = silent.redirect_params();
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("login_required")
    );
    assert!(!params.contains_key("code"));
    // A, interactively: the sign-in page, not consent; A's open consent page approves nothing.
    let again = a.get(&authorize_url(s, spa, VERIFIER, &[])).await;
    assert!(
        again.body.contains("<label for=\"username\">"),
        "{}",
        again.body
    );
    let approve = submit(s, &mut a, &kept_open, &[("action", "approve")]).await;
    assert!(
        approve.location.is_none(),
        "no code from a password-only session"
    );
    assert!(approve.body.contains("<label for=\"username\">"));
    // The refresh token had with the password alone is dead.
    let r = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", spa),
                ("refresh_token", before["refresh_token"].as_str().unwrap()),
            ],
            None,
        )
        .await;
    r.assert_error(400, "invalid_grant");
    // B's session gives a code at the second factor's level.
    let done = submit(s, &mut b, &b_consent_page, &[("action", "approve")]).await;
    let t = tokens(s, spa, &done).await;
    let (acr, _, _) = assurance(t["id_token"].as_str().unwrap());
    assert_eq!(acr, "urn:tessera:acr:mfa");
}

/// The consent page of a signed-in browser (the authorize page goes straight to it).
async fn consent_again(s: &Server, a: &mut Browser, client: &str) -> Page {
    let p = a.get(&authorize_url(s, client, VERIFIER, &[])).await;
    assert!(p.body.contains("Allow"), "{}", p.body);
    p
}

/// The reviewer's spread: code guesses from many source networks. A pending sign-in ends
/// after five wrong codes in all (the right code then finds it gone), and once the
/// account's wrong codes from all networks reach the alarm (2 × the per-account
/// threshold) the alarm is raised and the second factor is blocked from every network,
/// even for the right code.
#[tokio::test]
async fn code_guesses_spread_over_networks_end_the_sign_in_and_then_block_the_account() {
    let setup = setup_with(&format!("{REQUIRED}login_failures_per_account = 3\n"), &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let app = enrol(s, spa).await.app;
    let at = |c: u8, d: u8| std::net::IpAddr::from([127, 0, c, d]);
    let mut b = Browser::new();
    b.move_to(at(1, 1));
    let mut page = password(s, &mut b, spa).await;
    assert_code_page(&page);
    for n in 0..5 {
        b.move_to(at(1, 2 + n));
        page = submit(s, &mut b, &page, &[("code", "123456")]).await;
        assert_eq!(page.status, 400, "guess {n}: {}", page.body);
    }
    b.move_to(at(1, 9));
    let gone = submit(s, &mut b, &page, &[("code", &next_code(&app))]).await;
    assert!(gone.location.is_none());
    assert!(gone.body.contains("Your sign-in expired"), "{}", gone.body);
    // A new sign-in (a new password check), one more wrong code: the sixth in all.
    let mut b = Browser::new();
    b.move_to(at(2, 1));
    let page = password(s, &mut b, spa).await;
    assert_code_page(&page);
    b.move_to(at(2, 2));
    let page = submit(s, &mut b, &page, &[("code", "123456")]).await;
    assert_eq!(page.status, 400, "{}", page.body);
    b.move_to(at(2, 3));
    let blocked = submit(s, &mut b, &page, &[("code", &next_code(&app))]).await;
    assert_eq!(
        blocked.status, 429,
        "blocked from a fresh network, right code or not"
    );
    assert!(blocked.retry_after.is_some());
    let audit = s.cli_ok(&["audit", "--json"], None);
    assert!(
        audit.contains("login.account_targeted"),
        "the alarm is raised"
    );
}

/// Under `mfa = "required"` the password grant is refused for every user, with or without
/// a factor, before the password is checked (a wrong one gets the same answer).
#[tokio::test]
async fn required_refuses_the_password_grant_for_everyone() {
    let setup = setup_with(REQUIRED, &[]);
    let s = &setup.s;
    let (id, secret) = s.add_client("legacy", "password", "profile", &[]);
    let secret = secret.unwrap();
    for password in [PASSWORD, "nope nope nope"] {
        let grant = [
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", password),
        ];
        let r = s.token(&grant, Some((&id, &secret))).await;
        r.assert_error(400, "invalid_grant");
        assert!(
            r.json["error_description"]
                .as_str()
                .unwrap()
                .contains("requires a second factor"),
            "{:?}",
            r.json
        );
    }
}
