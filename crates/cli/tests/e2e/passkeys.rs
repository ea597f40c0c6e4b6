//! Passkeys at browser sign-in, against the real binary with a software authenticator
//! (1Password's `passkey` crate, through the pages' forms as `/passkey.js` posts them):
//! registration from the enrolment page, a passkey as the second factor and alone
//! (username first), `acr`/`amr` in the tokens, and the abuse cases: a replayed
//! assertion, malformed and oversized responses (400, never 5xx), a disabled user, and
//! `user mfa-reset` removing passkeys and ending what the user held.

use base64::Engine;
use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::aws_lc_rs::AwsLcRsBackend;
use passkey::types::Passkey as Key;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;

use crate::authorize::{Browser, Page, authorize_url, exchange, form_of, post_form, setup_with};
use crate::harness::{PASSWORD, Server, jwt_claims};

/// The issuer the pages and the authenticator agree on: a host name (WebAuthn has no
/// relying party for an IP address). Nothing listens on it; requests go to the server's
/// real address, and the authenticator is told this origin.
pub(crate) const ORIGIN: &str = "http://localhost:1";
/// Enough failures per account for the abuse cases below before the block this test
/// checks at its end.
pub(crate) const CONFIG: &str =
    "mfa = \"required\"\nissuer = \"http://localhost:1\"\nlogin_failures_per_account = 10\n";
pub(crate) const VERIFIER: &str = "passkey-e2e-verifier-0123456789-0123456789-abcdefgh";

pub(crate) struct Verified;

#[async_trait::async_trait]
impl UserValidationMethod for Verified {
    type PasskeyItem = Key;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Key>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence,
            verification,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

pub(crate) type Device =
    Client<Option<Key>, Verified, AwsLcRsBackend, public_suffix::PublicSuffixList, ()>;

pub(crate) fn device() -> Device {
    let mut a = Authenticator::new(Aaguid::new_empty(), None, Verified, AwsLcRsBackend);
    a.set_make_credentials_with_signature_counter(true);
    Client::new(a).allows_insecure_localhost(true)
}

/// Byte strings as base64url, as `/passkey.js` posts them.
fn page_json(v: Value) -> String {
    fn walk(v: Value) -> Value {
        match v {
            Value::Array(items)
                if !items.is_empty()
                    && items.iter().all(|i| i.as_u64().is_some_and(|n| n < 256)) =>
            {
                let bytes: Vec<u8> = items
                    .iter()
                    .filter_map(Value::as_u64)
                    .map(|n| n as u8)
                    .collect();
                Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
            }
            Value::Array(items) => Value::Array(items.into_iter().map(walk).collect()),
            Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, walk(v))).collect()),
            other => other,
        }
    }
    walk(v).to_string()
}

fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#43;", "+")
        .replace("&amp;", "&")
}

/// The page's passkey form (`data-passkey="create"` or `"get"`) as a page of its own,
/// and its options.
pub(crate) fn passkey_form(page: &Page, kind: &str) -> (Page, String) {
    let marker = format!("data-passkey=\"{kind}\"");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {kind} passkey form: {}", page.body));
    let rest = &page.body[start..];
    let form = &rest[..rest.find("</form>").unwrap()];
    let o = form.find("data-options=\"").unwrap() + "data-options=\"".len();
    let options = unescape(&form[o..o + form[o..].find('"').unwrap()]);
    let sub = Page {
        status: page.status,
        location: None,
        set_cookies: Vec::new(),
        body: form.to_owned(),
        retry_after: None,
    };
    (sub, options)
}

pub(crate) async fn create(d: &mut Device, options: &str) -> String {
    let o: CredentialCreationOptions = serde_json::from_str(options).unwrap();
    let c = d
        .register(&Url::parse(ORIGIN).unwrap(), o, DefaultClientData)
        .await
        .unwrap();
    page_json(serde_json::to_value(&c).unwrap())
}

pub(crate) async fn get(d: &mut Device, options: &str) -> String {
    let o: CredentialRequestOptions = serde_json::from_str(options).unwrap();
    let c = d
        .authenticate(&Url::parse(ORIGIN).unwrap(), o, DefaultClientData)
        .await
        .unwrap();
    page_json(serde_json::to_value(&c).unwrap())
}

pub(crate) async fn submit(
    s: &Server,
    b: &mut Browser,
    page: &Page,
    more: &[(&str, &str)],
) -> Page {
    post_form(b, &s.url("/authorize"), &form_of(page, more)).await
}

/// The login page, then alice's password.
pub(crate) async fn password(s: &Server, b: &mut Browser, client: &str) -> Page {
    let login = b.get(&authorize_url(s, client, VERIFIER, &[])).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let form = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
    post_form(b, &s.url("/authorize"), &form).await
}

/// The login page's "Sign in with a passkey" for alice: the passkey page.
pub(crate) async fn passkey_start(s: &Server, b: &mut Browser, client: &str) -> Page {
    let login = b.get(&authorize_url(s, client, VERIFIER, &[])).await;
    assert!(
        login.body.contains("Sign in with a passkey"),
        "{}",
        login.body
    );
    let form = form_of(&login, &[("username", "alice"), ("passkey", "1")]);
    post_form(b, &s.url("/authorize"), &form).await
}

/// Approves the consent page and exchanges the code: the token response.
pub(crate) async fn approve(s: &Server, b: &mut Browser, client: &str, consent: &Page) -> Value {
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Allow"), "{}", consent.body);
    let done = submit(s, b, consent, &[("action", "approve")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let code = done.redirect_params()["code"].clone();
    let r = exchange(s, client, &code, VERIFIER).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json
}

pub(crate) fn assurance(t: &Value) -> (Value, Value) {
    let c = jwt_claims(t["access_token"].as_str().unwrap());
    let id = jwt_claims(t["id_token"].as_str().unwrap());
    assert_eq!((&c["acr"], &c["amr"]), (&id["acr"], &id["amr"]));
    (c["acr"].clone(), c["amr"].clone())
}

pub(crate) fn assert_refused(p: &Page) {
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("role=\"alert\""), "{}", p.body);
}

#[tokio::test]
async fn register_then_sign_in_with_a_passkey_as_second_factor_and_alone() {
    let setup = setup_with(CONFIG, &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let mut d = device();

    // Registration: the enrolment page after the password offers a passkey next to TOTP.
    let mut b = Browser::new();
    let enrol = password(s, &mut b, spa).await;
    assert_eq!(enrol.status, 200, "{}", enrol.body);
    assert!(enrol.body.contains("<script src=\"/passkey.js\"></script>"));
    assert!(enrol.body.contains("<label for=\"passkey-label\">"));
    let (form, options) = passkey_form(&enrol, "create");
    let response = create(&mut d, &options).await;
    let consent = submit(
        s,
        &mut b,
        &form,
        &[("response", &response), ("label", "laptop")],
    )
    .await;
    let t = approve(s, &mut b, spa, &consent).await;
    let phr = Value::from("urn:tessera:acr:phr");
    assert_eq!(assurance(&t), (phr.clone(), json!(["pwd", "hwk", "mfa"])));
    let listed: Value =
        serde_json::from_str(&s.cli_ok(&["user", "mfa", "alice", "--json"], None)).unwrap();
    assert_eq!(listed["passkeys"][0]["label"], "laptop", "{listed}");

    let mut b2 = Browser::new();
    let code_page = password(s, &mut b2, spa).await;
    assert!(
        code_page.body.contains("<label for=\"code\">"),
        "{}",
        code_page.body
    );

    // Second factor: the code page offers the passkey.
    let (form, options) = passkey_form(&code_page, "get");
    let assertion = get(&mut d, &options).await;
    let consent = submit(s, &mut b2, &form, &[("response", &assertion)]).await;
    // A fresh sign-in with a second factor may add another passkey (from the consent page).
    assert!(consent.body.contains("Add a passkey"), "{}", consent.body);
    // Adding it is not signing in: the session that follows keeps this sign-in's
    // auth_time (a second passes first, so a new one would show).
    let signed_in_by = tessera_token::Clock::now(&tessera_token::SystemClock).secs();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let add = submit(s, &mut b2, &consent, &[("action", "passkey_add")]).await;
    assert_eq!(add.status, 200, "{}", add.body);
    assert!(add.body.contains("<label for=\"passkey-label\">"));
    let (form, options) = passkey_form(&add, "create");
    let mut phone = device();
    let response = create(&mut phone, &options).await;
    let consent = submit(
        s,
        &mut b2,
        &form,
        &[("response", &response), ("label", "phone")],
    )
    .await;
    let t = approve(s, &mut b2, spa, &consent).await;
    let auth_time = jwt_claims(t["access_token"].as_str().unwrap())["auth_time"]
        .as_i64()
        .unwrap();
    assert!(
        auth_time <= signed_in_by,
        "auth_time {auth_time} moved past the sign-in (by {signed_in_by}) when a passkey was added"
    );
    let listed: Value =
        serde_json::from_str(&s.cli_ok(&["user", "mfa", "alice", "--json"], None)).unwrap();
    let labels: Vec<&str> = listed["passkeys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["label"].as_str())
        .collect();
    assert_eq!(labels.len(), 2, "{listed}");
    assert!(
        labels.contains(&"laptop") && labels.contains(&"phone"),
        "{listed}"
    );
    // Without a signed-in session there is nothing to add a passkey to.
    let mut nobody = Browser::new();
    let login = nobody.get(&authorize_url(s, spa, VERIFIER, &[])).await;
    for action in ["passkey_add", "passkey_register_more", "passkey_register"] {
        let p = submit(
            s,
            &mut nobody,
            &login,
            &[("action", action), ("response", "{}")],
        )
        .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{action}: {}", p.body);
        assert!(p.body.contains("<label for=\"username\">"), "{action}");
    }
    assert_eq!(assurance(&t), (phr.clone(), json!(["pwd", "hwk", "mfa"])));

    // A replayed assertion: the used one posted on a new sign-in's form.
    let mut b3 = Browser::new();
    let code_page = password(s, &mut b3, spa).await;
    let (form, _) = passkey_form(&code_page, "get");
    let replayed = submit(s, &mut b3, &form, &[("response", &assertion)]).await;
    assert_refused(&replayed);
    // Malformed and oversized bodies: a clear 400, never a 5xx.
    for bad in ["", "{", "[1,2,3]", &"x".repeat(40_000)] {
        let (form, _) = passkey_form(&replayed, "get");
        let p = submit(s, &mut b3, &form, &[("response", bad)]).await;
        assert_refused(&p);
    }
    // The ceremony of a refused post is gone: its good answer is refused too.
    let (form, options) = passkey_form(&replayed, "get");
    let late = get(&mut d, &options).await;
    let p = submit(s, &mut b3, &form, &[("response", "{")]).await;
    assert_refused(&p);
    let p = submit(s, &mut b3, &form, &[("response", &late)]).await;
    assert_refused(&p);

    // A passkey alone (username first): amr hwk user mfa.
    let mut b4 = Browser::new();
    let page = passkey_start(s, &mut b4, spa).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (form, options) = passkey_form(&page, "get");
    let assertion = get(&mut d, &options).await;
    let consent = submit(s, &mut b4, &form, &[("response", &assertion)]).await;
    let alone = approve(s, &mut b4, spa, &consent).await;
    assert_eq!(assurance(&alone), (phr, json!(["hwk", "user", "mfa"])));
    // The second passkey works too.
    let mut b4b = Browser::new();
    let page = passkey_start(s, &mut b4b, spa).await;
    let (form, options) = passkey_form(&page, "get");
    let assertion = get(&mut phone, &options).await;
    let consent = submit(s, &mut b4b, &form, &[("response", &assertion)]).await;
    approve(s, &mut b4b, spa, &consent).await;
    let audit = s.cli_ok(&["audit", "--json", "--limit", "10000"], None);
    assert!(audit.contains("\"factor\":\"passkey\""), "{audit}");
    assert!(audit.contains("mfa.enroll"), "{audit}");
    assert!(audit.contains("mfa.failure"), "{audit}");

    // A disabled user: no passkey sign-in, and a page from before is refused.
    let mut b5 = Browser::new();
    let before = passkey_start(s, &mut b5, spa).await;
    let (form, options) = passkey_form(&before, "get");
    s.cli_ok(&["user", "disable", "alice"], None);
    let assertion = get(&mut d, &options).await;
    let p = submit(s, &mut b5, &form, &[("response", &assertion)]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.location.is_none(), "no code for a disabled user");
    let p = passkey_start(s, &mut Browser::new(), spa).await;
    assert_refused(&p);
    s.cli_ok(&["user", "enable", "alice"], None);

    // mfa-reset: passkeys removed, the refresh token from a passkey sign-in ends.
    let mut b6 = Browser::new();
    let page = passkey_start(s, &mut b6, spa).await;
    let (form, options) = passkey_form(&page, "get");
    let assertion = get(&mut d, &options).await;
    let consent = submit(s, &mut b6, &form, &[("response", &assertion)]).await;
    let held = approve(s, &mut b6, spa, &consent).await;
    s.cli_ok(&["user", "mfa-reset", "alice"], None);
    let listed: Value =
        serde_json::from_str(&s.cli_ok(&["user", "mfa", "alice", "--json"], None)).unwrap();
    assert_eq!(listed["passkeys"], json!([]), "{listed}");
    let r = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", spa),
                ("refresh_token", held["refresh_token"].as_str().unwrap()),
            ],
            None,
        )
        .await;
    r.assert_error(400, "invalid_grant");
    let p = passkey_start(s, &mut Browser::new(), spa).await;
    assert_refused(&p);

    // Wrong passkeys are throttled like wrong codes (one implementation): register
    // again, then post bad answers until the account is blocked.
    let mut b7 = Browser::new();
    let enrol = password(s, &mut b7, spa).await;
    let (form, options) = passkey_form(&enrol, "create");
    let response = create(&mut d, &options).await;
    let consent = submit(s, &mut b7, &form, &[("response", &response)]).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let mut b8 = Browser::new();
    let mut page = passkey_start(s, &mut b8, spa).await;
    let mut blocked = false;
    for _ in 0..20 {
        let (form, _) = passkey_form(&page, "get");
        page = submit(s, &mut b8, &form, &[("response", "{}")]).await;
        if page.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(page.retry_after.is_some());
            blocked = true;
            break;
        }
        assert_refused(&page);
    }
    assert!(blocked, "wrong passkeys are throttled");
}

#[tokio::test]
async fn a_server_with_an_inconsistent_rp_id_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        "issuer = \"https://auth.example.com\"\npasskey_rp_id = \"other.example\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env_remove("TESSERA_ISSUER")
        .env_remove("TESSERA_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("passkey_rp_id"), "{err}");
}
