//! DPoP at resource servers, on the real binaries: tokens bound with `tessera token mint
//! --cnf-jkt` at the example resource server (accepted with their proof; refused as
//! Bearer, with another key's proof, replayed, for another URL or method, stale, with a
//! wrong `ath`, without the nonce two instances share), its RFC 9728 metadata, a route
//! requiring DPoP, and the server's own `/userinfo` taking DPoP.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_token::dpop::{access_token_hash, sign_proof};
use tessera_token::{Algorithm, Clock, SigningKey, SystemClock};

use crate::browser::{free_port, resource_server_bin, start_resource_server};
use crate::harness::{PASSWORD, Server, register_secret};

fn now() -> i64 {
    SystemClock.now().secs()
}

struct Client {
    key: SigningKey,
    jkt: String,
}

fn client() -> Client {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let jkt = key.public_jwk().unwrap().thumbprint().unwrap();
    Client { key, jkt }
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A proof for `method url` over `token`, made `age` seconds ago, with `extra` claims.
fn proof(c: &Client, method: &str, url: &str, token: &str, age: i64, extra: Value) -> String {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut claims = json!({
        "jti": format!("e2e-{}-{n}", std::process::id()),
        "htm": method, "htu": url, "iat": now() - age, "ath": access_token_hash(token),
    });
    if let (Value::Object(o), Value::Object(e)) = (&mut claims, extra) {
        o.extend(e);
    }
    sign_proof(&c.key, &claims).unwrap()
}

/// `tessera token mint` for `client`, bound to `jkt` when given.
fn mint(s: &Server, args: &[&str], jkt: Option<&str>) -> String {
    let mut all = vec!["token", "mint", "--issuer", &s.base];
    all.extend_from_slice(args);
    // `--cnf-jkt=…` in one argument: a thumbprint may start with '-' (base64url).
    let flag = jkt.map(|jkt| format!("--cnf-jkt={jkt}"));
    if let Some(flag) = &flag {
        all.push(flag);
    }
    let t = s.cli_ok(&all, None).trim().to_owned();
    register_secret(&t);
    t
}

struct Answer {
    status: StatusCode,
    challenges: Vec<String>,
    nonce: Option<String>,
    body: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

async fn call(url: &str, authorization: &str, proof: Option<&str>) -> Answer {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("authorization", authorization);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let challenges = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let nonce = r
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = r.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        challenges,
        nonce,
        body,
    }
}

fn example_built() -> bool {
    if Path::new(&resource_server_bin()).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the example resource server is not built"
    );
    eprintln!("skipping: build it with cargo build -p tessera-guard --example resource_server");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_guard_bound_tokens_at_the_example_resource_server() {
    if !example_built() {
        return;
    }
    let s = Server::start();
    s.add_client(
        "svc",
        "client_credentials",
        "notes:read",
        &["--audience", "notes-api"],
    );
    let port = free_port();
    let rs = format!("http://127.0.0.1:{port}");
    let _api = start_resource_server(&s.base, port, &[]);
    let c = client();
    let bound = mint(&s, &["--client", "svc"], Some(&c.jkt));
    let plain = mint(&s, &["--client", "svc"], None);
    let me = format!("{rs}/me");
    let dpop = format!("DPoP {bound}");

    // Bound token with its proof: accepted, twice with two proofs (the second from the
    // guard's warm cache).
    for _ in 0..2 {
        let p = proof(&c, "GET", &me, &bound, 0, json!({}));
        let r = call(&me, &dpop, Some(&p)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // An unbound token as Bearer: accepted, as before.
    assert_eq!(
        call(&me, &format!("Bearer {plain}"), None).await.status,
        StatusCode::OK
    );

    // The bound token as Bearer: refused, both challenges, the error on DPoP's.
    let r = call(&me, &format!("Bearer {bound}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error(), "invalid_token");
    assert!(
        r.challenges[0].starts_with("Bearer realm=\"notes\""),
        "{:?}",
        r.challenges
    );
    assert!(
        r.challenges[1]
            .starts_with("DPoP algs=\"EdDSA ES256 RS256 PS256\", error=\"invalid_token\""),
        "{:?}",
        r.challenges
    );
    let metadata_url = format!("{rs}/.well-known/oauth-protected-resource");
    assert!(
        r.challenges
            .iter()
            .all(|v| v.ends_with(&format!("resource_metadata=\"{metadata_url}\""))),
        "{:?}",
        r.challenges
    );

    // Every proof that is not this request's, this key's, fresh and new: refused.
    let thief = client();
    let used = proof(&c, "GET", &me, &bound, 0, json!({}));
    assert_eq!(call(&me, &dpop, Some(&used)).await.status, StatusCode::OK);
    let cases = [
        (
            "another key",
            proof(&thief, "GET", &me, &bound, 0, json!({})),
        ),
        ("replayed", used),
        (
            "another URL",
            proof(&c, "GET", &format!("{rs}/notes"), &bound, 0, json!({})),
        ),
        (
            "another method",
            proof(&c, "POST", &me, &bound, 0, json!({})),
        ),
        ("stale iat", proof(&c, "GET", &me, &bound, 600, json!({}))),
        ("wrong ath", proof(&c, "GET", &me, &plain, 0, json!({}))),
    ];
    for (why, p) in cases {
        let r = call(&me, &dpop, Some(&p)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(r.error(), "invalid_dpop_proof", "{why}");
    }
    let r = call(&me, &dpop, None).await;
    assert_eq!(r.error(), "invalid_dpop_proof", "no proof");
    // A proof with an unbound token, and a proof with the Bearer scheme.
    let p = proof(&c, "GET", &me, &plain, 0, json!({}));
    assert_eq!(
        call(&me, &format!("DPoP {plain}"), Some(&p)).await.error(),
        "invalid_token"
    );
    let p = proof(&c, "GET", &me, &plain, 0, json!({}));
    let r = call(&me, &format!("Bearer {plain}"), Some(&p)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // /notes/export requires DPoP: a bearer token gets only the DPoP challenge.
    let export = format!("{rs}/notes/export");
    let r = call(&export, &format!("Bearer {plain}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.challenges.len(), 1, "{:?}", r.challenges);
    assert!(r.challenges[0].starts_with("DPoP "));
    let p = proof(&c, "GET", &export, &bound, 0, json!({}));
    assert_eq!(call(&export, &dpop, Some(&p)).await.status, StatusCode::OK);

    // RFC 9728 metadata.
    let meta: Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], rs);
    assert_eq!(meta["authorization_servers"], json!([s.base]));
    assert_eq!(meta["dpop_bound_access_tokens_required"], false);
    assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "ES256", "RS256", "PS256"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_guard_two_instances_share_nonces_by_secret() {
    if !example_built() {
        return;
    }
    let s = Server::start();
    s.add_client(
        "svc",
        "client_credentials",
        "notes:read",
        &["--audience", "notes-api"],
    );
    let secret = "the notes fleet's nonce secret, 32+ bytes";
    let (pa, pb) = (free_port(), free_port());
    // Both instances are reached at one public URL (behind one load balancer).
    let public = "http://127.0.0.1:1";
    let args = ["--dpop-nonce-secret", secret, "--public-url", public];
    let _a = start_resource_server(&s.base, pa, &args);
    let _b = start_resource_server(&s.base, pb, &args);
    let c = client();
    let bound = mint(&s, &["--client", "svc"], Some(&c.jkt));
    let dpop = format!("DPoP {bound}");
    let htu = format!("{public}/me");
    let (a, b) = (
        format!("http://127.0.0.1:{pa}/me"),
        format!("http://127.0.0.1:{pb}/me"),
    );

    // Without a nonce: use_dpop_nonce, with one in DPoP-Nonce.
    let r = call(
        &a,
        &dpop,
        Some(&proof(&c, "GET", &htu, &bound, 0, json!({}))),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error(), "use_dpop_nonce");
    let nonce = r.nonce.expect("a DPoP-Nonce header");
    let with = || proof(&c, "GET", &htu, &bound, 0, json!({ "nonce": nonce }));
    // Instance A's nonce works at B, and at A.
    let r = call(&b, &dpop, Some(&with())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(call(&a, &dpop, Some(&with())).await.status, StatusCode::OK);
    // A made-up nonce does not.
    let p = proof(&c, "GET", &htu, &bound, 0, json!({"nonce": "made-up"}));
    assert_eq!(call(&b, &dpop, Some(&p)).await.error(), "use_dpop_nonce");
}

#[tokio::test]
async fn dpop_guard_userinfo_takes_dpop_bound_tokens() {
    let s = Server::start();
    s.add_user("alice", PASSWORD);
    s.add_client("web", "client_credentials", "openid profile", &[]);
    let users: Value = serde_json::from_str(&s.cli_ok(&["user", "list", "--json"], None)).unwrap();
    let alice = users[0]["id"].as_str().unwrap().to_owned();
    let c = client();
    let args = [
        "--client",
        "web",
        "--sub",
        &alice,
        "--scope",
        "openid profile",
    ];
    let bound = mint(&s, &args, Some(&c.jkt));
    let url = s.url("/userinfo");
    let dpop = format!("DPoP {bound}");

    let r = call(
        &url,
        &dpop,
        Some(&proof(&c, "GET", &url, &bound, 0, json!({}))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["sub"], alice);
    assert_eq!(r.body["preferred_username"], "alice");

    let r = call(&url, &format!("Bearer {bound}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error(), "invalid_token");
    assert_eq!(r.challenges.len(), 2, "both challenges: {:?}", r.challenges);
    assert!(r.challenges[0].starts_with("Bearer realm=\"tessera\""));
    assert!(r.challenges[1].starts_with("DPoP algs="));

    let other = client();
    let r = call(
        &url,
        &dpop,
        Some(&proof(&other, "GET", &url, &bound, 0, json!({}))),
    )
    .await;
    assert_eq!(r.error(), "invalid_dpop_proof");
    let wrong_url = s.url("/token");
    let r = call(
        &url,
        &dpop,
        Some(&proof(&c, "GET", &wrong_url, &bound, 0, json!({}))),
    )
    .await;
    assert_eq!(r.error(), "invalid_dpop_proof");
    // A malformed thumbprint is refused by the CLI.
    let out = s.cli(
        &["token", "mint", "--client", "web", "--cnf-jkt", "short"],
        None,
    );
    assert!(!out.status.success());
}
