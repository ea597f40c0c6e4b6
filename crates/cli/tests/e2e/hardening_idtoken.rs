//! Hardening (issue 14): see docs/security.md, "What was hardened and how it is tested".
//!
//! Item 15: ID tokens are signed with RS256 unless the client registered another
//! `id_token_signed_response_alg`; discovery lists RS256 first; the RS256 key is created,
//! published and rotated like the access-token key.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_token::pkce;

use crate::authorize::{BYE, Browser, REDIRECT, exchange, setup, setup_with, sign_in};
use crate::harness::{Server, jwt_claims};

const FAST_KEYS: &str = "jwks_cache_ttl_secs = 2\nkey_refresh_interval_secs = 1\n";
/// `jwks_cache_ttl_secs` of [`FAST_KEYS`].
const FAST_KEYS_CACHE_TTL: Duration = Duration::from_secs(2);

fn header(token: &str) -> tessera_token::Header {
    tessera_token::decode_unverified(token).unwrap().header
}

fn verifier() -> String {
    pkce::generate_verifier().unwrap()
}

/// Signs alice in to `client` in a fresh browser and redeems the code.
async fn code_flow(s: &Server, client: &str) -> crate::harness::Reply {
    let v = verifier();
    let code = sign_in(s, &mut Browser::new(), client, &v).await;
    let r = exchange(s, client, &code, &v).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r
}

/// A public authorization-code client like the setup's, plus `extra` arguments.
fn add_rp(s: &Server, name: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "--public",
        "--audience",
        "notes-api",
        "--redirect-uri",
        REDIRECT,
        "--post-logout-redirect-uri",
        BYE,
    ];
    args.extend_from_slice(extra);
    s.add_client(
        name,
        "authorization_code,refresh_token",
        "openid profile notes:read",
        &args,
    )
    .0
}

async fn jwks(s: &Server) -> Vec<Value> {
    s.get("/jwks.json", None).await.json["keys"]
        .as_array()
        .unwrap()
        .clone()
}

/// Verifies `id_token` against the JWKS as an ID token for `client`.
async fn verify_id_token(s: &Server, id_token: &str, client: &str) {
    let r = s.get("/jwks.json", None).await;
    let set = tessera_token::JwkSet::from_json(r.json.to_string().as_bytes()).unwrap();
    let keys = tessera_token::KeySet::from_jwks(&set).unwrap();
    let policy = tessera_token::Validation::new(s.base.clone(), client.to_owned());
    let now = tessera_token::Clock::now(&tessera_token::SystemClock);
    keys.verify(id_token, &policy, now)
        .expect("the ID token verifies against the JWKS");
}

fn half_hash(alg: &'static aws_lc_rs::digest::Algorithm, token: &str) -> String {
    let d = aws_lc_rs::digest::digest(alg, token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..d.as_ref().len() / 2])
}

async fn wait_for<F: AsyncFnMut() -> bool>(what: &str, mut f: F) {
    let start = Instant::now();
    for _ in 0..300 {
        if f().await {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("gave up: {what}");
}

#[tokio::test]
async fn hardening_idtoken_rs256_by_default_with_a_published_kid_access_tokens_keep_theirs() {
    let setup = setup();
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let r = code_flow(s, spa).await;
    let id = r.str("id_token");
    let access = r.str("access_token");
    // The ID token is RS256 and its kid names the RS256 key of the JWKS.
    let h = header(&id);
    assert_eq!(h.alg, "RS256");
    assert_eq!(h.typ.as_deref(), Some("JWT"));
    let kid = h.kid.unwrap();
    let keys = jwks(s).await;
    let key = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    assert_eq!((&key["kty"], &key["alg"]), (&"RSA".into(), &"RS256".into()));
    verify_id_token(s, &id, spa).await;
    // at_hash with RS256's hash, SHA-256.
    assert_eq!(
        jwt_claims(&id)["at_hash"],
        half_hash(&aws_lc_rs::digest::SHA256, &access)
    );
    // The access token keeps the server's algorithm (EdDSA) and its own key.
    let ah = header(&access);
    assert_eq!(ah.alg, "EdDSA");
    assert_ne!(ah.kid.unwrap(), kid);
    // The ID token is no access token: its typ (JWT) alone makes an at+jwt policy refuse
    // it. The policy accepts it in every other respect (issuer, audience = client_id, a
    // published key), so only a working typ check gives WrongType here.
    let r = s.get("/jwks.json", None).await;
    let set = tessera_token::JwkSet::from_json(r.json.to_string().as_bytes()).unwrap();
    let keyset = tessera_token::KeySet::from_jwks(&set).unwrap();
    let now = tessera_token::Clock::now(&tessera_token::SystemClock);
    let policy = tessera_token::Validation::new(s.base.clone(), spa.to_owned());
    assert!(keyset.verify(&id, &policy, now).is_ok());
    let at_jwt = policy.require_typ("at+jwt");
    assert!(matches!(
        keyset.verify(&id, &at_jwt, now),
        Err(tessera_token::Error::WrongType)
    ));
    // And /userinfo refuses it as a bearer token (typ, aud, client_id and jti all differ).
    let ui = s
        .http
        .get(s.url("/userinfo"))
        .bearer_auth(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 401);

    // Discovery: RS256 first for ID tokens, the others after; never none or HS256.
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let d = s.get(path, None).await.json;
        let algs = &d["id_token_signing_alg_values_supported"];
        assert_eq!(algs[0], "RS256", "{path}: {algs}");
        assert!(algs.as_array().unwrap().iter().any(|a| a == "EdDSA"));
        let text = algs.to_string().to_lowercase();
        assert!(!text.contains("none") && !text.contains("hs256"), "{text}");
    }
}

#[tokio::test]
async fn hardening_idtoken_clients_choose_their_id_token_alg_but_never_none_or_hs256() {
    let setup = setup();
    let s = &setup.s;
    // A client asking for EdDSA ID tokens gets EdDSA, from the EdDSA key.
    let ed = add_rp(s, "ed-rp", &["--id-token-alg", "EdDSA"]);
    let r = code_flow(s, &ed).await;
    let id = r.str("id_token");
    let h = header(&id);
    assert_eq!(h.alg, "EdDSA");
    let keys = jwks(s).await;
    let key = keys
        .iter()
        .find(|k| k["kid"] == h.kid.as_deref().unwrap())
        .unwrap();
    assert_eq!(key["alg"], "EdDSA");
    verify_id_token(s, &id, &ed).await;
    assert_eq!(
        jwt_claims(&id)["at_hash"],
        half_hash(&aws_lc_rs::digest::SHA512, &r.str("access_token"))
    );

    // Unsigned or shared-secret ID tokens are refused at registration; nothing is stored.
    for alg in ["none", "None", "HS256", "hs256", "RS384", ""] {
        let out = s.cli(
            &[
                "client",
                "add",
                "bad-rp",
                "--grant-types",
                "authorization_code",
                "--redirect-uri",
                REDIRECT,
                "--public",
                "--id-token-alg",
                alg,
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{alg:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("use EdDSA, ES256 or RS256"), "{alg:?}: {err}");
    }
    // `client list` shows each client's ID-token algorithm (RS256 when it chose none).
    let list: Value = serde_json::from_str(&s.cli_ok(&["client", "list", "--json"], None)).unwrap();
    let list = list.as_array().unwrap();
    assert!(!list.iter().any(|c| c["name"] == "bad-rp"));
    let alg_of = |name: &str| {
        list.iter().find(|c| c["name"] == name).unwrap()["id_token_alg"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(alg_of("spa"), "RS256");
    assert_eq!(alg_of("ed-rp"), "EdDSA");
    let table = s.cli_ok(&["client", "list"], None);
    assert!(table.contains("ID_TOKEN"), "{table}");
    let row = table.lines().find(|l| l.starts_with("ed-rp ")).unwrap();
    assert!(row.contains(" EdDSA "), "{row}");
}

#[tokio::test]
async fn hardening_idtoken_a_missing_id_token_key_leaves_the_code_redeemable() {
    let setup = setup_with(
        &format!("{FAST_KEYS}authorization_code_ttl_secs = 600\n"),
        &[],
    );
    let s = &setup.s;
    // ES256 ID tokens, but no ES256 key yet: registration says so.
    let out = s.cli(
        &[
            "client",
            "add",
            "es-rp",
            "--grant-types",
            "authorization_code",
            "--scope",
            "openid profile notes:read",
            "--audience",
            "notes-api",
            "--redirect-uri",
            REDIRECT,
            "--public",
            "--id-token-alg",
            "ES256",
            "--json",
        ],
        None,
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no ES256 signing key yet"), "{err}");
    let es: Value = serde_json::from_slice(&out.stdout).unwrap();
    let es = es["client_id"].as_str().unwrap().to_owned();
    let v = verifier();
    let code = sign_in(s, &mut Browser::new(), &es, &v).await;
    // 503 temporarily_unavailable with Retry-After, and the code is not spent.
    let r = exchange(s, &es, &code, &v).await;
    r.assert_error(503, "temporarily_unavailable");
    assert!(r.headers.contains_key("retry-after"));
    assert!(!r.json.to_string().contains("ES256"), "{:?}", r.json);
    s.cli_ok(&["keys", "rotate", "--alg", "ES256"], None);
    let mut id = None;
    wait_for("the ES256 key signs", async || {
        let r = exchange(s, &es, &code, &v).await;
        if r.status == 200 {
            id = Some(r.str("id_token"));
            return true;
        }
        r.assert_error(503, "temporarily_unavailable");
        false
    })
    .await;
    let id = id.unwrap();
    assert_eq!(header(&id).alg, "ES256");
    verify_id_token(s, &id, &es).await;
}

#[tokio::test]
async fn hardening_idtoken_keys_rotate_rotates_both_and_publishes_rs256_before_it_signs() {
    let setup = setup_with(FAST_KEYS, &[]);
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let first = code_flow(s, spa).await;
    let old_rs = header(&first.str("id_token")).kid.unwrap();
    let old_ed = header(&first.str("access_token")).kid.unwrap();

    // Without --alg: one new key per algorithm in use (EdDSA and RS256).
    let out = s.cli_ok(&["keys", "rotate"], None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().any(|l| l.contains("(EdDSA)")), "{out}");
    assert!(lines.iter().any(|l| l.contains("(RS256)")), "{out}");
    let list: Value = serde_json::from_str(&s.cli_ok(&["keys", "list", "--json"], None)).unwrap();
    let new_rs = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["alg"] == "RS256" && k["kid"] != old_rs.as_str())
        .unwrap()
        .clone();
    // Published, signing only once every server has loaded it (within the refresh
    // interval, 1 s) and published it for a JWKS cache lifetime (2 s), plus a second.
    assert_ne!(new_rs["state"], "retired");
    let (created, from) = (
        new_rs["created_at"].as_i64().unwrap(),
        new_rs["activate_after"].as_i64().unwrap(),
    );
    assert_eq!(from - created, 2 + 1 + 1, "{new_rs}");
    let new_rs = new_rs["kid"].as_str().unwrap().to_owned();

    // Every ID token's kid is in a JWKS fetched (just before the code is redeemed) less
    // than one JWKS cache lifetime before the token arrived: however late the server's
    // key reload ran, it signs with a key only once it has itself published the key for
    // that long. (A JWKS older than that may be refetched, so it proves nothing: such a
    // round, which only a very slow machine makes, is not counted.) The new key takes
    // over ID tokens, the new EdDSA key access tokens.
    let mut seen_new_in_jwks = false;
    wait_for("the new RS256 key signs ID tokens", async || {
        let v = verifier();
        let code = sign_in(s, &mut Browser::new(), spa, &v).await;
        let fetched = Instant::now();
        let before: Vec<String> = jwks(s)
            .await
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        seen_new_in_jwks |= before.contains(&new_rs);
        let r = exchange(s, spa, &code, &v).await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        let cached = fetched.elapsed() < FAST_KEYS_CACHE_TTL;
        let id = r.str("id_token");
        let kid = header(&id).kid.unwrap();
        if !cached && !before.contains(&kid) {
            return false;
        }
        assert!(before.contains(&kid), "unknown kid {kid}: {before:?}");
        assert_eq!(header(&id).alg, "RS256");
        verify_id_token(s, &id, spa).await;
        kid == new_rs
    })
    .await;
    assert!(seen_new_in_jwks);
    let access = code_flow(s, spa).await.str("access_token");
    assert_ne!(header(&access).kid.unwrap(), old_ed);
    assert_eq!(header(&access).alg, "EdDSA");
    // The old RS256 key stays published (retired) while its tokens may live.
    let kids: Vec<Value> = jwks(s).await.iter().map(|k| k["kid"].clone()).collect();
    assert!(kids.contains(&Value::from(old_rs.as_str())), "{kids:?}");
}

#[tokio::test]
async fn hardening_idtoken_an_rp_with_default_settings_verifies_rs256_with_pyjwt() {
    let Some(python) = crate::interop::pyjwt_python() else {
        return;
    };
    let setup = setup();
    let (s, spa) = (&setup.s, setup.spa.as_str());
    let id = code_flow(s, spa).await.str("id_token");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/pyjwt_verify_id_token.py"
    );
    let mut child = std::process::Command::new(&python)
        .args([script, &s.base, spa, "n-456"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(id.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["aud"], spa);
    assert_eq!(claims["nonce"], "n-456");
}

/// Kills the process when dropped (a failed assertion must not leave a server behind).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn hardening_idtoken_a_store_from_before_rs256_gets_its_key_at_the_next_start() {
    use std::io::BufRead;
    let s = Server::start();
    let before = jwks(&s).await;
    let ed_kid = before.iter().find(|k| k["alg"] == "EdDSA").unwrap()["kid"].clone();
    let dir = s.stop();
    let data = dir.path().join("data");
    // Yesterday's store: no RS256 key (removed with Python's sqlite3, as a bad day would).
    let db = data.join("tessera.db");
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute(\"DELETE FROM signing_keys WHERE alg = 'RS256'\")\nc.commit()\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // doctor warns (the next start fixes it); it is not the access-token key's failure.
    let out = crate::harness::run_cli(&data, &["doctor", "--offline"], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("[warn] no active RS256 signing key (ID tokens)"),
        "{text}"
    );
    assert!(
        text.contains("[ok  ] newest EdDSA signing key is 0 days old"),
        "{text}"
    );

    // The next start creates the RS256 key and keeps the EdDSA one.
    let mut child = std::process::Command::new(crate::harness::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let http = reqwest::Client::new();
    let keys: Value = http
        .get(format!("{base}/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k["kid"] == ed_kid));
    assert!(keys.iter().any(|k| k["alg"] == "RS256"));
    let d: Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["id_token_signing_alg_values_supported"][0], "RS256");
}

#[tokio::test]
async fn hardening_idtoken_client_update_changes_the_id_token_alg_in_place() {
    let setup = setup_with("client_cache_ttl_secs = 1\n", &[]);
    let s = &setup.s;
    // An upgraded client: it chose nothing, so its ID tokens are now RS256.
    let rp = add_rp(s, "legacy-rp", &[]);
    let before = code_flow(s, &rp).await;
    assert_eq!(header(&before.str("id_token")).alg, "RS256");

    // The operator puts it back on EdDSA, by name; client_id, secret and sessions stay.
    let out = s.cli(
        &["client", "update", "legacy-rp", "--id-token-alg", "EdDSA"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&rp) && said.contains("EdDSA"), "{said}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client_cache_ttl_secs (1s)"), "{err}");
    // Applied once the client cache entry expires (bounded wait, no timing asserted).
    wait_for(
        "the server signs legacy-rp's ID tokens with EdDSA",
        async || header(&code_flow(s, &rp).await.str("id_token")).alg == "EdDSA",
    )
    .await;
    let r = code_flow(s, &rp).await;
    verify_id_token(s, &r.str("id_token"), &rp).await;
    // The session from before the update still refreshes: nothing was invalidated.
    let again = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &rp),
                ("refresh_token", &before.str("refresh_token")),
            ],
            None,
        )
        .await;
    assert_eq!(again.status, 200, "{:?}", again.json);
    let list: Value = serde_json::from_str(&s.cli_ok(&["client", "list", "--json"], None)).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "legacy-rp")
        .unwrap()
        .clone();
    assert_eq!(
        (&row["client_id"], &row["id_token_alg"]),
        (&rp.as_str().into(), &"EdDSA".into())
    );
    // Audited, with both algorithms (and no secret).
    let events: Value = serde_json::from_str(&s.cli_ok(&["audit", "--json"], None)).unwrap();
    let ev = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "client.update")
        .expect("a client.update audit event");
    assert_eq!(ev["client_id"], rp.as_str());
    assert_eq!(ev["detail"]["id_token_alg"]["from"], "RS256");
    assert_eq!(ev["detail"]["id_token_alg"]["to"], "EdDSA");

    // And back to RS256, by client_id.
    s.cli_ok(&["client", "update", &rp, "--id-token-alg", "RS256"], None);
    wait_for(
        "the server signs legacy-rp's ID tokens with RS256 again",
        async || header(&code_flow(s, &rp).await.str("id_token")).alg == "RS256",
    )
    .await;

    // Refused: unsigned or shared-secret algorithms, no algorithm, an unknown client.
    for alg in ["none", "HS256", "hs256", "RS384", ""] {
        let out = s.cli(&["client", "update", &rp, "--id-token-alg", alg], None);
        assert_eq!(out.status.code(), Some(2), "{alg:?}");
    }
    assert_eq!(
        s.cli(&["client", "update", &rp], None).status.code(),
        Some(2)
    );
    let out = s.cli(
        &["client", "update", "nobody", "--id-token-alg", "RS256"],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no client"));
    let list: Value = serde_json::from_str(&s.cli_ok(&["client", "list", "--json"], None)).unwrap();
    let rs = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "legacy-rp")
        .unwrap()["id_token_alg"]
        .clone();
    assert_eq!(rs, "RS256", "a refused update changes nothing");
    let events: Value = serde_json::from_str(&s.cli_ok(&["audit", "--json"], None)).unwrap();
    let updates = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "client.update")
        .count();
    assert_eq!(updates, 2, "refused updates are not audited as changes");
}

#[tokio::test]
async fn hardening_idtoken_a_key_clients_chose_is_age_checked_and_rotated_too() {
    let s = Server::start_with(FAST_KEYS, &[]);
    // An ES256 key for clients that chose ES256 (access or ID tokens).
    let out = s.cli_ok(&["keys", "rotate", "--alg", "ES256"], None);
    assert_eq!(out.lines().count(), 1, "{out}");
    wait_for("the ES256 key is active", async || {
        let list: Value =
            serde_json::from_str(&s.cli_ok(&["keys", "list", "--json"], None)).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .any(|k| k["alg"] == "ES256" && k["state"] == "active")
    })
    .await;
    // doctor checks its age like the others'.
    let out = s.cli(&["doctor", "--offline"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[ok  ] newest ES256 signing key (chosen by clients) is 0 days old"),
        "{text}"
    );
    // `keys rotate` publishes one key of each algorithm in use, one line each.
    let out = s.cli_ok(&["keys", "rotate"], None);
    let algs: Vec<&str> = out
        .lines()
        .map(|l| l.split(['(', ')']).nth(1).unwrap())
        .collect();
    assert_eq!(algs, ["EdDSA", "RS256", "ES256"], "{out}");
}
