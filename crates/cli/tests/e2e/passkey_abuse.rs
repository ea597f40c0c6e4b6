//! Passkeys under attack, against the real binary (the review of the first passkey
//! branch): the password alone must not add a factor to an account that has a passkey;
//! failed passwordless sign-ins (no password needed) must not lock the account's
//! password-backed second factor; passwordless starts are throttled per network.

use reqwest::StatusCode;
use serde_json::Value;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::authorize::{Browser, Page, authorize_url, form_of, post_form, setup_with};
use crate::harness::{PASSWORD, Server, register_secret};
use crate::passkeys::{
    CONFIG, VERIFIER, approve, assurance, create, device, get, passkey_form, passkey_start,
    password, submit,
};

fn secret_of(page: &Page) -> Option<String> {
    let marker = "id=\"secret\" value=\"";
    let i = page.body.find(marker)? + marker.len();
    let key = page.body[i..i + page.body[i..].find('"')?].replace(' ', "");
    register_secret(&key);
    Some(key)
}

/// The page's first form (the code, enrolment or login form) as a page of its own: the
/// page's other forms carry the same hidden fields.
fn first_form(page: &Page) -> Page {
    let start = page
        .body
        .find("<form")
        .unwrap_or_else(|| panic!("{}", page.body));
    let rest = &page.body[start..];
    Page {
        status: page.status,
        location: None,
        set_cookies: Vec::new(),
        body: rest[..rest.find("</form>").unwrap()].to_owned(),
        retry_after: None,
    }
}

fn app(key: &str) -> TOTP {
    let bytes = Secret::Encoded(key.to_owned()).to_bytes().unwrap();
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into()).unwrap()
}

fn code_of(key: &str) -> String {
    app(key).generate_current().unwrap()
}

/// The next time step's code (accepted: one step of skew), never the step just used.
fn next_code_of(key: &str) -> String {
    let app = app(key);
    app.generate(app.next_step_current().unwrap())
}

fn factors(s: &Server, name: &str) -> Value {
    serde_json::from_str(&s.cli_ok(&["user", "mfa", name, "--json"], None)).unwrap()
}

/// The login page, then `name`'s password.
async fn password_of(s: &Server, b: &mut Browser, client: &str, name: &str) -> Page {
    let login = b.get(&authorize_url(s, client, VERIFIER, &[])).await;
    let form = form_of(&login, &[("username", name), ("password", PASSWORD)]);
    post_form(b, &s.url("/authorize"), &form).await
}

fn at(c: u8, d: u8) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, c, d])
}

/// Alice registers a passkey from the enrolment page (which also began a TOTP
/// enrolment, never confirmed); then someone with her password alone posts the
/// enrolment steps from the code page: no TOTP secret is shown, nothing is enrolled,
/// and the enrolment page's secret, confirmed with a right code, enrols nothing either.
#[tokio::test]
async fn a_password_alone_cannot_add_a_factor_to_an_account_with_a_passkey() {
    let setup = setup_with(CONFIG, &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let mut d = device();
    let mut victim = Browser::new();
    let enrol = password(s, &mut victim, spa).await;
    let shown = secret_of(&enrol).expect("the enrolment page shows a TOTP key");
    let (form, options) = passkey_form(&enrol, "create");
    let response = create(&mut d, &options).await;
    let consent = submit(s, &mut victim, &form, &[("response", &response)]).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    for more in [
        &[
            ("action", "passkey_register"),
            ("ceremony", "x"),
            ("response", "{}"),
        ][..],
        &[("action", "enrol"), ("code", "000000")][..],
        &[("action", "enrol"), ("code", &code_of(&shown))][..],
    ] {
        let mut attacker = Browser::new();
        let code_page = password(s, &mut attacker, spa).await;
        assert!(
            code_page.body.contains("<label for=\"code\">"),
            "{}",
            code_page.body
        );
        let p = submit(s, &mut attacker, &first_form(&code_page), more).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{more:?}: {}", p.body);
        assert!(secret_of(&p).is_none(), "{more:?}: a TOTP key shown");
        assert!(!p.body.contains("data-passkey=\"create\""), "{more:?}");
        assert!(
            p.location.is_none() && !p.body.contains("Allow"),
            "{more:?}"
        );
    }
    let f = factors(s, "alice");
    assert_eq!(
        f["totp"], "none",
        "the unconfirmed TOTP enrolment ended with the passkey registration: {f}"
    );
    assert_eq!(f["passkeys"].as_array().unwrap().len(), 1, "{f}");
}

/// Failed passwordless sign-ins from many networks (anyone who knows the username can
/// post them) are throttled per network (429) but never block the password-backed
/// second factor: the owner signs in with password and passkey, and a TOTP-only user
/// with password and code. A user without passkeys is refused before anything counts.
#[tokio::test]
async fn passwordless_failures_never_lock_the_password_backed_second_factor() {
    let setup = setup_with(CONFIG, &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    s.add_user("carol", PASSWORD);
    let mut d = device();
    let mut b = Browser::new();
    let enrol = password(s, &mut b, spa).await;
    let (form, options) = passkey_form(&enrol, "create");
    let response = create(&mut d, &options).await;
    assert_eq!(
        submit(s, &mut b, &form, &[("response", &response)])
            .await
            .status,
        200
    );
    let mut c = Browser::new();
    let enrol = password_of(s, &mut c, spa, "carol").await;
    let key = secret_of(&enrol).unwrap();
    let done = submit(
        s,
        &mut c,
        &first_form(&enrol),
        &[("action", "enrol"), ("code", &code_of(&key))],
    )
    .await;
    assert_eq!(done.status, 200, "{:?} {}", done.location, done.body);

    for net in 1..=3 {
        let mut x = Browser::new();
        x.move_to(at(2, net));
        let login = x.get(&authorize_url(s, spa, VERIFIER, &[])).await;
        let mut last = None;
        for _ in 0..12 {
            let p = submit(
                s,
                &mut x,
                &first_form(&login),
                &[
                    ("action", "passkey_login"),
                    ("username", "alice"),
                    ("ceremony", "x"),
                    ("response", "{}"),
                ],
            )
            .await;
            assert!(
                p.status == StatusCode::BAD_REQUEST || p.status == StatusCode::TOO_MANY_REQUESTS,
                "{}",
                p.body
            );
            assert!(!p.body.contains("expired"), "{}", p.body);
            last = Some(p);
        }
        let last = last.unwrap();
        assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "{}", last.body);
        assert!(last.retry_after.is_some());
        // A user without passkeys: refused as a wrong passkey is, nothing counted.
        for _ in 0..12 {
            let p = submit(
                s,
                &mut x,
                &first_form(&login),
                &[
                    ("action", "passkey_login"),
                    ("username", "carol"),
                    ("ceremony", "x"),
                    ("response", "x"),
                ],
            )
            .await;
            assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
            assert!(p.body.contains("role=\"alert\""), "{}", p.body);
        }
    }

    let mut owner = Browser::new();
    owner.move_to(at(3, 1));
    let code_page = password(s, &mut owner, spa).await;
    let (form, options) = passkey_form(&code_page, "get");
    let assertion = get(&mut d, &options).await;
    let consent = submit(s, &mut owner, &form, &[("response", &assertion)]).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Allow"), "{}", consent.body);

    let mut carol = Browser::new();
    carol.move_to(at(3, 2));
    let code_page = password_of(s, &mut carol, spa, "carol").await;
    let consent = submit(
        s,
        &mut carol,
        &first_form(&code_page),
        &[("action", "mfa"), ("code", &next_code_of(&key))],
    )
    .await;
    assert!(
        consent.status == 200 && consent.body.contains("Allow"),
        "{}: {}",
        consent.status,
        consent.body
    );
    let audit = s.cli_ok(&["audit", "--json", "--limit", "10000"], None);
    let carol_failures = audit
        .lines()
        .filter(|l| l.contains("mfa.failure") && l.contains("\"passkey\""))
        .count();
    assert!(carol_failures <= 36, "only alice's failures are counted");
}

/// The passwordless start (a username is enough) goes through the per-network limiter:
/// a flood from one network meets 429 with `Retry-After`, another network still starts,
/// and each start is audited.
#[tokio::test]
async fn passwordless_starts_are_throttled_per_network_and_audited() {
    let setup = setup_with(CONFIG, &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let mut d = device();
    let mut b = Browser::new();
    let enrol = password(s, &mut b, spa).await;
    let (form, options) = passkey_form(&enrol, "create");
    let response = create(&mut d, &options).await;
    assert_eq!(
        submit(s, &mut b, &form, &[("response", &response)])
            .await
            .status,
        200
    );

    let mut x = Browser::new();
    x.move_to(at(4, 1));
    let login = x.get(&authorize_url(s, spa, VERIFIER, &[])).await;
    let mut throttled = None;
    for n in 0..100 {
        let p = submit(
            s,
            &mut x,
            &first_form(&login),
            &[("action", "login"), ("username", "alice"), ("passkey", "1")],
        )
        .await;
        if p.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some((n, p));
            break;
        }
        assert_eq!(p.status, 200, "{}", p.body);
    }
    let (n, p) = throttled.expect("a flood of passwordless starts is throttled");
    assert!(n >= 5, "a few starts are allowed");
    assert!(p.retry_after.is_some());
    assert!(p.body.contains("role=\"alert\""), "{}", p.body);
    // Another network starts, and the ceremony works.
    let mut y = Browser::new();
    y.move_to(at(4, 2));
    let page = passkey_start(s, &mut y, spa).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (form, options) = passkey_form(&page, "get");
    let assertion = get(&mut d, &options).await;
    let consent = submit(s, &mut y, &form, &[("response", &assertion)]).await;
    assert!(consent.body.contains("Allow"), "{}", consent.body);
    let audit = s.cli_ok(&["audit", "--json", "--limit", "10000"], None);
    assert!(audit.contains("mfa.passkey_start"), "{audit}");
}

/// A step-up to `urn:tessera:acr:phr` from a live TOTP session (alice has TOTP and a
/// passkey): the code page offering only the passkey, never a code from the session
/// cookie alone; a bad assertion or an enrolment post gets nothing, a TOTP code is
/// refused (no new session: no password was typed), and the passkey does.
#[tokio::test]
async fn a_step_up_to_phr_from_a_live_session_needs_the_passkey() {
    let setup = setup_with(CONFIG, &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let phr = [("acr_values", "urn:tessera:acr:phr")];
    let mut d = device();
    let mut b = Browser::new();
    let enrol = password(s, &mut b, spa).await;
    let key = secret_of(&enrol).unwrap();
    let codes = submit(
        s,
        &mut b,
        &first_form(&enrol),
        &[("action", "enrol"), ("code", &code_of(&key))],
    )
    .await;
    assert_eq!(codes.status, 200, "{}", codes.body);
    let consent = submit(s, &mut b, &first_form(&codes), &[("action", "continue")]).await;
    assert!(consent.body.contains("Add a passkey"), "{}", consent.body);
    let add = submit(s, &mut b, &consent, &[("action", "passkey_add")]).await;
    let (form, options) = passkey_form(&add, "create");
    let response = create(&mut d, &options).await;
    let consent = submit(s, &mut b, &form, &[("response", &response)]).await;
    let t = approve(s, &mut b, spa, &consent).await;
    assert_eq!(
        assurance(&t).0,
        "urn:tessera:acr:mfa",
        "the TOTP sign-in's session"
    );

    // The session (mfa) is below phr: the code page, no code.
    let page = b.get(&authorize_url(s, spa, VERIFIER, &phr)).await;
    assert_eq!(page.status, 200, "{:?} {}", page.location, page.body);
    assert!(page.location.is_none());
    assert!(page.body.contains("data-passkey=\"get\""), "{}", page.body);
    assert!(!page.body.contains("Allow"), "{}", page.body);
    // A bogus assertion, and the enrolment posts: nothing.
    for more in [
        &[("action", "passkey"), ("response", "{}")][..],
        &[
            ("action", "passkey_register"),
            ("ceremony", "x"),
            ("response", "{}"),
        ][..],
        &[("action", "enrol"), ("code", "000000")][..],
    ] {
        let (form, _) = passkey_form(&page, "get");
        let p = submit(s, &mut b, &form, more).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{more:?}: {}", p.body);
        assert!(p.location.is_none(), "{more:?}");
        assert!(
            secret_of(&p).is_none() && !p.body.contains("Allow"),
            "{more:?}"
        );
    }
    // The page offers only the passkey; a TOTP code posted there (no password was typed)
    // is refused before it counts: no new session, no "Add a passkey", no code.
    let page = b.get(&authorize_url(s, spa, VERIFIER, &phr)).await;
    assert!(!page.body.contains("name=\"code\""), "{}", page.body);
    let starts = |s: &Server| {
        s.cli_ok(&["audit", "--json", "--limit", "10000"], None)
            .matches("session.start")
            .count()
    };
    let before = starts(s);
    let (form, _) = passkey_form(&page, "get");
    let p = submit(
        s,
        &mut b,
        &form,
        &[("action", "mfa"), ("code", &next_code_of(&key))],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.location.is_none(), "{:?}", p.location);
    assert!(
        !p.set_cookies
            .iter()
            .any(|c| c.starts_with("tessera_session=")),
        "{:?}",
        p.set_cookies
    );
    assert!(
        !p.body.contains("Allow") && !p.body.contains("Add a passkey"),
        "{}",
        p.body
    );
    assert!(p.body.contains("data-passkey=\"get\""), "{}", p.body);
    assert_eq!(starts(s), before, "no session started");
    // The passkey reaches phr.
    let page = b.get(&authorize_url(s, spa, VERIFIER, &phr)).await;
    let (form, options) = passkey_form(&page, "get");
    let assertion = get(&mut d, &options).await;
    let consent = submit(s, &mut b, &form, &[("response", &assertion)]).await;
    let t = approve(s, &mut b, spa, &consent).await;
    assert_eq!(assurance(&t).0, "urn:tessera:acr:phr");

    // A relayed password and TOTP code (a fresh mfa sign-in in a phisher's browser) never
    // adds a passkey to an account that has one: only a passkey sign-in may, or the
    // phisher's key would reach phr.
    let mut p2 = Browser::new();
    let page = password(s, &mut p2, spa).await;
    let (form, _) = passkey_form(&page, "get");
    let consent = submit(
        s,
        &mut p2,
        &form,
        &[("action", "mfa"), ("code", &next_code_of(&key))],
    )
    .await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(
        !consent.body.contains("Add a passkey"),
        "not offered where it would be refused: {}",
        consent.body
    );
    let add = submit(s, &mut p2, &consent, &[("action", "passkey_add")]).await;
    assert_eq!(add.status, StatusCode::BAD_REQUEST, "{}", add.body);
    assert!(
        !add.body.contains("data-passkey=\"create\""),
        "{}",
        add.body
    );
}

/// A `urn:tessera:acr:phr` request through the password form (no session, or
/// `prompt=login`): a user with a passkey gets the code page offering only the passkey,
/// and the passkey reaches `phr`; a user without a factor gets the enrolment page
/// offering only passkey registration.
#[tokio::test]
async fn a_phr_request_through_the_password_form_asks_for_the_passkey() {
    let setup = setup_with(CONFIG, &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let phr = [("acr_values", "urn:tessera:acr:phr")];
    // No factor yet: the enrolment page offers only passkey registration.
    let mut b = Browser::new();
    let login = b.get(&authorize_url(s, spa, VERIFIER, &phr)).await;
    let form = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
    let enrol = post_form(&mut b, &s.url("/authorize"), &form).await;
    assert_eq!(enrol.status, 200, "{:?} {}", enrol.location, enrol.body);
    assert!(
        secret_of(&enrol).is_none(),
        "no TOTP offered: {}",
        enrol.body
    );
    assert!(
        enrol.body.contains("data-passkey=\"create\""),
        "{}",
        enrol.body
    );

    // alice enrols TOTP and adds a passkey.
    let mut d = device();
    let mut b = Browser::new();
    let enrol = password(s, &mut b, spa).await;
    let key = secret_of(&enrol).unwrap();
    let codes = submit(
        s,
        &mut b,
        &first_form(&enrol),
        &[("action", "enrol"), ("code", &code_of(&key))],
    )
    .await;
    let consent = submit(s, &mut b, &first_form(&codes), &[("action", "continue")]).await;
    let add = submit(s, &mut b, &consent, &[("action", "passkey_add")]).await;
    let (form, options) = passkey_form(&add, "create");
    let response = create(&mut d, &options).await;
    let consent = submit(s, &mut b, &form, &[("response", &response)]).await;
    assert!(consent.body.contains("Allow"), "{}", consent.body);

    // A new browser, and the same one with prompt=login: password, then the passkey only.
    let prompt = [phr[0], ("prompt", "login")];
    for (mut b, extra) in [(Browser::new(), &phr[..]), (b, &prompt[..])] {
        let login = b.get(&authorize_url(s, spa, VERIFIER, extra)).await;
        let form = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
        let page = post_form(&mut b, &s.url("/authorize"), &form).await;
        assert_eq!(
            page.status, 200,
            "{extra:?}: {:?} {}",
            page.location, page.body
        );
        assert!(!page.body.contains("name=\"code\""), "{}", page.body);
        let (form, options) = passkey_form(&page, "get");
        let assertion = get(&mut d, &options).await;
        let consent = submit(s, &mut b, &form, &[("response", &assertion)]).await;
        let t = approve(s, &mut b, spa, &consent).await;
        assert_eq!(assurance(&t).0, "urn:tessera:acr:phr", "{extra:?}");
    }
    // A TOTP code posted there anyway is refused before it counts (only the passkey
    // reaches phr, and an mfa session from it could add a phisher's passkey): the same
    // page again, no consent, and the passkey still reaches phr.
    let mut b = Browser::new();
    let login = b.get(&authorize_url(s, spa, VERIFIER, &phr)).await;
    let form = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
    let page = post_form(&mut b, &s.url("/authorize"), &form).await;
    let (form, _) = passkey_form(&page, "get");
    let short = submit(
        s,
        &mut b,
        &form,
        &[("action", "mfa"), ("code", &next_code_of(&key))],
    )
    .await;
    assert_eq!(short.status, 400, "{:?} {}", short.location, short.body);
    assert!(!short.body.contains("Allow"), "{}", short.body);
    assert!(!short.body.contains("name=\"code\""), "{}", short.body);
    let (form, options) = passkey_form(&short, "get");
    let assertion = get(&mut d, &options).await;
    let consent = submit(s, &mut b, &form, &[("response", &assertion)]).await;
    let t = approve(s, &mut b, spa, &consent).await;
    assert_eq!(assurance(&t).0, "urn:tessera:acr:phr");
}
