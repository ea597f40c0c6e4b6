//! DPoP (RFC 9449) at the authorization server, on the real binary: bound access tokens
//! (`cnf.jkt`, `token_type: DPoP`, introspection), public clients' bound refresh tokens,
//! every refusal of a proof (replayed, for another URL or method, stale, by another key),
//! nonces (asked for, retried, shared by replicas), and `dpop_bound_access_tokens`.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use serde_json::{Value, json};
use tessera_token::dpop::sign_proof;
use tessera_token::{Algorithm, Clock, SigningKey};

use crate::harness::{PASSWORD, Reply, Server, basic_header, jwt_claims, register_secret};

/// The issuer the servers are started with: the public URL behind a (pretend) proxy, not
/// the address they listen on; proofs must name it.
const ISSUER: &str = "http://localhost:8080";
const TOKEN_URL: &str = "http://localhost:8080/token";

/// Now, by the clock the binary reads too.
fn now() -> i64 {
    tessera_token::SystemClock.now().secs()
}

/// A proof by `key` for `htm htu`, issued `age` seconds ago, with `nonce` if given.
fn proof_at(key: &SigningKey, htm: &str, htu: &str, age: i64, nonce: Option<&str>) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let jti = format!(
        "e2e-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let mut claims = json!({"jti": jti, "htm": htm, "htu": htu, "iat": now() - age});
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    let proof = sign_proof(key, &claims).unwrap();
    // A proof must never reach the server log (checked when the server stops).
    register_secret(&proof);
    proof
}

fn proof(key: &SigningKey) -> String {
    proof_at(key, "POST", TOKEN_URL, 0, None)
}

fn thumbprint(key: &SigningKey) -> String {
    key.public_jwk().unwrap().thumbprint().unwrap()
}

fn es256() -> SigningKey {
    SigningKey::generate(Algorithm::Es256).unwrap()
}

fn start(extra: &str) -> Server {
    Server::start_with(&format!("issuer = \"{ISSUER}\"\n{extra}"), &[])
}

/// POSTs `form` to /token with these `DPoP` headers (each one a header line).
async fn token(
    s: &Server,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    proofs: &[&str],
) -> Reply {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut req = s
        .http
        .post(s.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        req = req.header("authorization", basic_header(id, secret));
    }
    for p in proofs {
        req = req.header("dpop", *p);
    }
    Reply::from(req.send().await.unwrap()).await
}

const CC: &[(&str, &str)] = &[("grant_type", "client_credentials")];

fn service(s: &Server, extra: &[&str]) -> (String, String) {
    let (id, secret) = s.add_client("svc", "client_credentials", "a", extra);
    (id, secret.unwrap())
}

#[tokio::test]
async fn a_proof_binds_the_access_token_and_introspection_shows_the_binding() {
    let s = start("");
    let (id, secret) = service(&s, &[]);
    let key = es256();
    let r = token(&s, CC, Some((&id, &secret)), &[&proof(&key)]).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.str("token_type"), "DPoP");
    let at = r.str("access_token");
    assert_eq!(jwt_claims(&at)["cnf"], json!({ "jkt": thumbprint(&key) }));
    let seen = s
        .post_form("/introspect", &[("token", &at)], Some((&id, &secret)))
        .await;
    assert_eq!(seen.json["active"], true);
    assert_eq!(seen.json["token_type"], "DPoP");
    assert_eq!(seen.json["cnf"], json!({ "jkt": thumbprint(&key) }));

    // Without a proof, as before: a bearer token with no cnf.
    let plain = token(&s, CC, Some((&id, &secret)), &[]).await;
    assert_eq!(plain.str("token_type"), "Bearer");
    assert!(jwt_claims(&plain.str("access_token")).get("cnf").is_none());
    let seen = s
        .post_form(
            "/introspect",
            &[("token", &plain.str("access_token"))],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(seen.json["token_type"], "Bearer");
    assert!(seen.json.get("cnf").is_none());

    let meta = s.get("/.well-known/oauth-authorization-server", None).await;
    assert_eq!(
        meta.json["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "ES256", "RS256", "PS256"])
    );
}

#[tokio::test]
async fn replayed_misdirected_stale_and_doubled_proofs_are_refused() {
    let s = start("");
    let (id, secret) = service(&s, &[]);
    let c = Some((id.as_str(), secret.as_str()));
    let key = es256();

    let once = proof(&key);
    assert_eq!(token(&s, CC, c, &[&once]).await.status, 200);
    token(&s, CC, c, &[&once])
        .await
        .assert_error(400, "invalid_dpop_proof");

    // The URL the server listens on is not its public URL: a proof must name the issuer's.
    let direct = s.url("/token");
    let cases = [
        ("another URL", proof_at(&key, "POST", &direct, 0, None)),
        (
            "another endpoint",
            proof_at(&key, "POST", &format!("{ISSUER}/revoke"), 0, None),
        ),
        ("another method", proof_at(&key, "GET", TOKEN_URL, 0, None)),
        ("stale iat", proof_at(&key, "POST", TOKEN_URL, 120, None)),
        ("future iat", proof_at(&key, "POST", TOKEN_URL, -120, None)),
        ("garbage", "not-a-proof".to_owned()),
        ("oversized", format!("{}.e30.c2ln", "a".repeat(9 * 1024))),
    ];
    for (what, p) in &cases {
        let r = token(&s, CC, c, &[p]).await;
        assert_eq!(r.error(), "invalid_dpop_proof", "{what}: {:?}", r.json);
        assert_eq!(r.status, 400, "{what}");
    }
    // A header that is not ASCII.
    let raw = s
        .http
        .post(s.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic_header(&id, &secret))
        .header(
            "dpop",
            reqwest::header::HeaderValue::from_bytes(b"ey\xff\xfe.x.y").unwrap(),
        )
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    Reply::from(raw)
        .await
        .assert_error(400, "invalid_dpop_proof");
    // Two DPoP headers, even two good proofs.
    let (p1, p2) = (proof(&key), proof(&key));
    token(&s, CC, c, &[&p1, &p2])
        .await
        .assert_error(400, "invalid_dpop_proof");
    // Neither was recorded by the refusal: each still works on its own.
    assert_eq!(token(&s, CC, c, &[&p1]).await.status, 200);
    // A proof refused for the client's credentials is not spent either.
    let p3 = proof(&key);
    token(&s, CC, Some((&id, "tsr_cs_wrong")), &[&p3])
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(token(&s, CC, c, &[&p3]).await.status, 200);

    // Two simultaneous requests with one proof: exactly one is answered with a token.
    let same = proof(&key);
    let both = [same.as_str()];
    let (a, b) = tokio::join!(token(&s, CC, c, &both), token(&s, CC, c, &both));
    let ok = [&a, &b].iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "{:?} / {:?}", a.json, b.json);
    let loser = if a.status == 200 { &b } else { &a };
    loser.assert_error(400, "invalid_dpop_proof");
}

/// Logs `alice` in with the password grant, with these proofs.
async fn login(s: &Server, client: (&str, Option<&str>), proofs: &[&str]) -> Reply {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let basic = match client.1 {
        Some(secret) => Some((client.0, secret)),
        None => {
            form.push(("client_id", client.0));
            None
        }
    };
    token(s, &form, basic, proofs).await
}

async fn refresh(s: &Server, client: (&str, Option<&str>), rt: &str, proofs: &[&str]) -> Reply {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    let basic = match client.1 {
        Some(secret) => Some((client.0, secret)),
        None => {
            form.push(("client_id", client.0));
            None
        }
    };
    token(s, &form, basic, proofs).await
}

#[tokio::test]
async fn a_public_clients_refresh_token_is_bound_to_the_proof_key() {
    let s = start("");
    let (spa, _) = s.add_client("spa", "password,refresh_token", "a", &["--public"]);
    s.add_user("alice", PASSWORD);
    let (key, other) = (es256(), SigningKey::generate(Algorithm::EdDsa).unwrap());
    let spa = (spa.as_str(), None);

    let first = login(&s, spa, &[&proof(&key)]).await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    assert_eq!(first.str("token_type"), "DPoP");
    let rt = first.str("refresh_token");

    // Without a proof, or with a proof by another key: refused, and the token unspent.
    refresh(&s, spa, &rt, &[])
        .await
        .assert_error(400, "invalid_dpop_proof");
    refresh(&s, spa, &rt, &[&proof(&other)])
        .await
        .assert_error(400, "invalid_dpop_proof");
    let next = refresh(&s, spa, &rt, &[&proof(&key)]).await;
    assert_eq!(next.status, 200, "{:?}", next.json);
    assert_eq!(next.str("token_type"), "DPoP");
    assert_eq!(
        jwt_claims(&next.str("access_token"))["cnf"]["jkt"],
        thumbprint(&key)
    );
    // The successor keeps the binding.
    let rt2 = next.str("refresh_token");
    refresh(&s, spa, &rt2, &[&proof(&other)])
        .await
        .assert_error(400, "invalid_dpop_proof");
    assert_eq!(refresh(&s, spa, &rt2, &[&proof(&key)]).await.status, 200);
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_stays_unbound() {
    let s = start("");
    let (web, secret) = s.add_client("web", "password,refresh_token", "a", &[]);
    s.add_user("alice", PASSWORD);
    let web = (web.as_str(), secret.as_deref());
    let key = es256();
    let first = login(&s, web, &[&proof(&key)]).await;
    assert_eq!(first.str("token_type"), "DPoP");
    // Its client authentication protects it: a refresh without a proof gets a bearer token.
    let next = refresh(&s, web, &first.str("refresh_token"), &[]).await;
    assert_eq!(next.status, 200, "{:?}", next.json);
    assert_eq!(next.str("token_type"), "Bearer");
    assert!(jwt_claims(&next.str("access_token")).get("cnf").is_none());
}

#[tokio::test]
async fn a_missing_nonce_is_asked_for_and_the_retry_with_it_succeeds() {
    let s = start("dpop_require_nonce = true\n");
    let (id, secret) = service(&s, &[]);
    let c = Some((id.as_str(), secret.as_str()));
    let key = es256();
    let asked = token(&s, CC, c, &[&proof(&key)]).await;
    asked.assert_error(400, "use_dpop_nonce");
    let nonce = asked.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let ok = token(
        &s,
        CC,
        c,
        &[&proof_at(&key, "POST", TOKEN_URL, 0, Some(&nonce))],
    )
    .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    assert_eq!(ok.str("token_type"), "DPoP");
    assert!(ok.headers.contains_key("dpop-nonce"), "the next nonce");
    // A made-up nonce is not one of ours.
    let forged = proof_at(
        &key,
        "POST",
        TOKEN_URL,
        0,
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    );
    token(&s, CC, c, &[&forged])
        .await
        .assert_error(400, "use_dpop_nonce");
    // Without DPoP at all the request is as before.
    assert_eq!(token(&s, CC, c, &[]).await.str("token_type"), "Bearer");
}

#[tokio::test]
async fn replicas_accept_each_others_nonces_and_other_deployments_do_not() {
    let key32 = |b: u8| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([b; 32]);
    let (shared, foreign) = (key32(7), key32(9));
    let config = format!("issuer = \"{ISSUER}\"\ndpop_require_nonce = true\n");
    let a = Server::start_with(&config, &[("TESSERA_MASTER_KEY", &shared)]);
    let b = Server::start_with(&config, &[("TESSERA_MASTER_KEY", &shared)]);
    let other = Server::start_with(&config, &[("TESSERA_MASTER_KEY", &foreign)]);
    let key = es256();
    let asked = token(&a, CC, None, &[&proof(&key)]).await;
    let nonce = asked.headers["dpop-nonce"].to_str().unwrap().to_owned();

    let (id, secret) = service(&b, &[]);
    let r = token(
        &b,
        CC,
        Some((&id, &secret)),
        &[&proof_at(&key, "POST", TOKEN_URL, 0, Some(&nonce))],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.str("token_type"), "DPoP");

    let (id, secret) = service(&other, &[]);
    let r = token(
        &other,
        CC,
        Some((&id, &secret)),
        &[&proof_at(&key, "POST", TOKEN_URL, 0, Some(&nonce))],
    )
    .await;
    r.assert_error(400, "use_dpop_nonce");
}

#[tokio::test]
async fn a_dpop_bound_client_without_a_proof_is_refused() {
    let s = start("client_cache_ttl_secs = 0\n");
    let (id, secret) = service(&s, &["--dpop-bound-access-tokens"]);
    let c = Some((id.as_str(), secret.as_str()));
    let listed: Value =
        serde_json::from_str(&s.cli_ok(&["client", "list", "--json"], None)).unwrap();
    assert_eq!(listed[0]["dpop_bound_access_tokens"], true);
    token(&s, CC, c, &[])
        .await
        .assert_error(400, "invalid_dpop_proof");
    let key = es256();
    let ok = token(&s, CC, c, &[&proof(&key)]).await;
    assert_eq!(ok.str("token_type"), "DPoP");

    s.cli_ok(
        &[
            "client",
            "update",
            "svc",
            "--dpop-bound-access-tokens",
            "false",
        ],
        None,
    );
    let listed: Value =
        serde_json::from_str(&s.cli_ok(&["client", "list", "--json"], None)).unwrap();
    assert_eq!(listed[0]["dpop_bound_access_tokens"], false);
    assert_eq!(token(&s, CC, c, &[]).await.str("token_type"), "Bearer");
}

/// RFC 9449 section 10: a code requested with `dpop_jkt` is redeemed only with a proof
/// by that key; a refused redemption leaves the code redeemable.
#[tokio::test]
async fn a_code_requested_with_dpop_jkt_needs_a_proof_by_that_key() {
    use crate::authorize::{Browser, authorize_url, form_of, post_form, setup};

    let setup = setup();
    let s = &setup.s;
    let key = es256();
    let other = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let verifier = tessera_token::pkce::generate_verifier().unwrap();
    let jkt = thumbprint(&key);
    let mut b = Browser::new();
    let url = authorize_url(s, &setup.spa, &verifier, &[("dpop_jkt", &jkt)]);
    let login = b.get(&url).await;
    let form = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
    let mut page = post_form(&mut b, &s.url("/authorize"), &form).await;
    if page.status == 200 {
        let form = form_of(&page, &[("action", "approve")]);
        page = post_form(&mut b, &s.url("/authorize"), &form).await;
    }
    let code = page.redirect_params()["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", setup.spa.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", crate::authorize::REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let htu = s.url("/token");
    let by = |k: &SigningKey| proof_at(k, "POST", &htu, 0, None);
    token(s, &form, None, &[])
        .await
        .assert_error(400, "invalid_dpop_proof");
    token(s, &form, None, &[&by(&other)])
        .await
        .assert_error(400, "invalid_dpop_proof");
    let ok = token(s, &form, None, &[&by(&key)]).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    assert_eq!(ok.str("token_type"), "DPoP");
    assert_eq!(jwt_claims(&ok.str("access_token"))["cnf"]["jkt"], jkt);
    // The public client's refresh token is bound to the same key.
    let rt = ok.str("refresh_token");
    refresh(s, (&setup.spa, None), &rt, &[&by(&other)])
        .await
        .assert_error(400, "invalid_dpop_proof");
    assert_eq!(
        refresh(s, (&setup.spa, None), &rt, &[&by(&key)])
            .await
            .status,
        200
    );

    // A malformed dpop_jkt goes back to the client as invalid_request.
    let bad = authorize_url(s, &setup.spa, &verifier, &[("dpop_jkt", "short")]);
    let page = b.get(&bad).await;
    assert_eq!(page.redirect_params()["error"], "invalid_request");
}

fn interop_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dpop")
}

/// Interop: oauth4webapi (an OpenID-certified client library that implements DPoP) runs
/// `tests/dpop/client.mjs` against the server with nonces required: client credentials,
/// then a public client's password grant and two refreshes, all with proofs by one key,
/// retrying once on `use_dpop_nonce`. Needs node and `npm ci` in `tests/dpop/` (`.ci/run`
/// installs both); under `CI=true` a missing piece fails the test, elsewhere it is skipped.
#[tokio::test]
async fn oauth4webapi_gets_bound_tokens_and_refreshes_with_nonces() {
    let missing = if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        Some("node is not installed")
    } else if !interop_dir().join("node_modules/oauth4webapi").is_dir() {
        Some("oauth4webapi is not installed (npm ci in crates/cli/tests/dpop)")
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the DPoP interop test cannot run under CI: {why}"
        );
        eprintln!("skipping the DPoP interop test: {why}");
        return;
    }
    let s = Server::start_with("dpop_require_nonce = true\n", &[]);
    let (cc_id, cc_secret) = service(&s, &[]);
    let (app, _) = s.add_client("app", "password,refresh_token", "a", &["--public"]);
    s.add_user("alice", PASSWORD);

    let mut node = tokio::process::Command::new("node");
    node.arg(interop_dir().join("client.mjs"))
        .args([s.base.as_str(), &cc_id, &cc_secret, &app, "alice"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = node.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(PASSWORD.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("client.mjs finished within 120 s")
    .unwrap();
    assert!(
        out.status.success(),
        "client.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    crate::harness::register_secrets_in(&v);
    let jkt = v["jkt"].as_str().unwrap();
    // oauth4webapi lower-cases token_type.
    assert_eq!(v["client_credentials"]["token_type"], "dpop");
    assert_eq!(v["password"]["token_type"], "dpop");
    let mut tokens = vec![
        v["client_credentials"]["access_token"].as_str().unwrap(),
        v["password"]["access_token"].as_str().unwrap(),
    ];
    tokens.extend(
        v["refreshed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap()),
    );
    assert_eq!(tokens.len(), 4);
    for t in tokens {
        assert_eq!(jwt_claims(t)["cnf"]["jkt"], jkt);
    }
    // The refresh token it ends with is bound: without a proof it is refused.
    let rt = v["refresh_token"].as_str().unwrap();
    refresh(&s, (&app, None), rt, &[])
        .await
        .assert_error(400, "invalid_dpop_proof");
}

/// A browser client may send `DPoP` cross-origin and read `DPoP-Nonce`.
#[tokio::test]
async fn browsers_may_send_dpop_and_read_the_nonce_cross_origin() {
    let s = start("cors_allowed_origins = [\"https://app.example\"]\ndpop_require_nonce = true\n");
    let preflight = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/token"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, dpop")
        .send()
        .await
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("dpop"), "{allowed}");
    let r = s
        .http
        .post(s.url("/token"))
        .header("origin", "https://app.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", proof(&es256()))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("dpop-nonce"), "{exposed}");
    assert!(r.headers().contains_key("dpop-nonce"));
}

/// Two replicas on one PostgreSQL database with one master key: a public client signs in
/// at one with a proof, and refreshes at the other with the first one's nonce and a proof
/// by the same key; another key is refused there too. Skipped without PostgreSQL.
#[tokio::test]
async fn a_binding_and_a_nonce_made_on_one_replica_hold_on_the_other() {
    let Some(pg) = crate::postgres::cluster() else {
        return;
    };
    let url = pg.fresh_database("dpop_replicas").unwrap();
    let master = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([5u8; 32]);
    let env = [("TESSERA_MASTER_KEY", master.as_str())];
    let config = format!("issuer = \"{ISSUER}\"\ndpop_require_nonce = true\n");
    let a = Server::start_on(Some(&url), &config, &env);
    let b = Server::start_on(Some(&url), &config, &env);
    let (spa, _) = a.add_client("spa", "password,refresh_token", "a", &["--public"]);
    a.add_user("alice", PASSWORD);
    let spa = (spa.as_str(), None);
    let (key, other) = (es256(), SigningKey::generate(Algorithm::EdDsa).unwrap());

    let asked = login(&a, spa, &[&proof(&key)]).await;
    asked.assert_error(400, "use_dpop_nonce");
    let nonce = asked.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let with_nonce = |k: &SigningKey| proof_at(k, "POST", TOKEN_URL, 0, Some(&nonce));
    let first = login(&a, spa, &[&with_nonce(&key)]).await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    let rt = first.str("refresh_token");

    refresh(&b, spa, &rt, &[&with_nonce(&other)])
        .await
        .assert_error(400, "invalid_dpop_proof");
    let next = refresh(&b, spa, &rt, &[&with_nonce(&key)]).await;
    assert_eq!(next.status, 200, "{:?}", next.json);
    assert_eq!(next.str("token_type"), "DPoP");
    assert_eq!(
        jwt_claims(&next.str("access_token"))["cnf"]["jkt"],
        thumbprint(&key)
    );
}
