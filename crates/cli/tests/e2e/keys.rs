//! Signing keys (list, rotate, import, per-server and per-client algorithm) and the token
//! tools (decode, verify, mint).

use std::time::{Duration, Instant};

use tessera_token::{Algorithm, SigningKey};

use crate::harness::Server;

const FAST_KEYS: &str = "jwks_cache_ttl_secs = 2\nkey_refresh_interval_secs = 1\n";

fn header(token: &str) -> tessera_token::Header {
    tessera_token::decode_unverified(token).unwrap().header
}

async fn cc_token(s: &Server, id: &str, secret: &str) -> String {
    let r = s
        .token(&[("grant_type", "client_credentials")], Some((id, secret)))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.str("access_token")
}

async fn wait_for<F: AsyncFnMut() -> bool>(mut f: F) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rotation_publishes_first_then_signs_then_retires() {
    let s = Server::start_with(FAST_KEYS, &[]);
    let (id, secret) = s.add_client("svc", "client_credentials", "", &[]);
    let secret = secret.unwrap();
    let old_kid = header(&cc_token(&s, &id, &secret).await).kid.unwrap();
    // One key per algorithm in use: EdDSA (access tokens) and RS256 (ID tokens).
    let list: serde_json::Value =
        serde_json::from_str(&s.cli_ok(&["keys", "list", "--json"], None)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|k| k["state"] == "active")
    );

    let out = s.cli_ok(&["keys", "rotate", "--alg", "EdDSA"], None);
    assert!(out.starts_with("published "), "{out}");
    // Published: in the JWKS before it signs.
    wait_for(async || {
        s.get("/jwks.json", None).await.json["keys"]
            .as_array()
            .unwrap()
            .len()
            == 3
    })
    .await;
    let list: serde_json::Value =
        serde_json::from_str(&s.cli_ok(&["keys", "list", "--json"], None)).unwrap();
    let new_kid = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["alg"] == "EdDSA" && k["kid"] != old_kid.as_str())
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Then active: new tokens carry the new kid; the old key stays published, retired.
    wait_for(async || {
        header(&cc_token(&s, &id, &secret).await).kid.as_deref() == Some(new_kid.as_str())
    })
    .await;
    let jwks = s.get("/jwks.json", None).await.json;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == old_kid.as_str())
    );
    let list = s.cli_ok(&["keys", "list"], None);
    assert!(
        list.contains("retired") && list.contains("active"),
        "{list}"
    );
}

#[tokio::test]
async fn import_refuses_weak_or_unsupported_keys_and_per_client_algorithms_work() {
    let s = Server::start_with(FAST_KEYS, &[]);
    let dir = tempfile::tempdir().unwrap();
    // Unsupported: P-384, a public key, garbage.
    let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
    )
    .unwrap();
    let der = p384.to_pkcs8v1().unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der.as_ref());
    let pem384 = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    for (name, text) in [
        ("p384.pem", pem384.as_str()),
        ("junk.pem", "not a key"),
        (
            "pub.pem",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = s.cli(&["keys", "import", path.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot import"));
    }
    // An ES256 key, activated, with our own kid; a client asking for ES256 gets it.
    let es = SigningKey::generate(Algorithm::Es256).unwrap();
    let path = dir.path().join("es256.pem");
    std::fs::write(&path, es.to_pkcs8_pem().unwrap().as_str()).unwrap();
    s.cli_ok(
        &[
            "keys",
            "import",
            path.to_str().unwrap(),
            "--kid",
            "imported-es256",
            "--activate",
        ],
        None,
    );
    assert_eq!(
        s.cli(
            &[
                "keys",
                "import",
                path.to_str().unwrap(),
                "--kid",
                "imported-es256"
            ],
            None
        )
        .status
        .code(),
        Some(5)
    );
    let (id, secret) = s.add_client("es", "client_credentials", "", &["--signing-alg", "ES256"]);
    let secret = secret.unwrap();
    wait_for(async || {
        let r = s
            .token(
                &[("grant_type", "client_credentials")],
                Some((&id, &secret)),
            )
            .await;
        r.status == 200 && header(&r.str("access_token")).kid.as_deref() == Some("imported-es256")
    })
    .await;
    let token = cc_token(&s, &id, &secret).await;
    assert_eq!(header(&token).alg, "ES256");
    crate::harness::verify(&s, &token, &s.base).await;
}

#[tokio::test]
async fn server_algorithm_is_configurable() {
    let s = Server::start_with("signing_alg = \"ES256\"\n", &[]);
    let jwks = s.get("/jwks.json", None).await.json;
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(algs.contains(&"ES256"), "{algs:?}");
    let (id, secret) = s.add_client("svc", "client_credentials", "", &[]);
    assert_eq!(
        header(&cc_token(&s, &id, &secret.unwrap()).await).alg,
        "ES256"
    );
    let disc = s
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json;
    // ES256 by default; RS256 too (the ID-token key), for clients that choose it.
    assert_eq!(
        disc["tessera_access_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "RS256"])
    );
}

#[tokio::test]
async fn token_decode_verify_and_mint() {
    let s = Server::start();
    let (id, _) = s.add_client("svc", "client_credentials", "a b", &["--audience", "api"]);
    let issuer = s.base.clone();
    let token = s
        .cli_ok(
            &[
                "token", "mint", "--client", "svc", "--scope", "a", "--sub", "robot", "--issuer",
                &issuer,
            ],
            None,
        )
        .trim()
        .to_owned();
    let decoded: serde_json::Value =
        serde_json::from_str(&s.cli_ok(&["token", "decode", &token], None)).unwrap();
    assert_eq!(decoded["header"]["typ"], "at+jwt");
    assert_eq!(decoded["claims"]["sub"], "robot");
    assert_eq!(decoded["claims"]["client_id"], id.as_str());
    assert_eq!(decoded["claims"]["scope"], "a");
    // Verify with the server's issuer; wrong issuer or a tampered token: exit 6.
    let ok = s.cli(&["token", "verify", "-", "--issuer", &issuer], Some(&token));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        s.cli(
            &[
                "token",
                "verify",
                &token,
                "--issuer",
                "https://other.example"
            ],
            None
        )
        .status
        .code(),
        Some(6)
    );
    let mut bad = token.clone();
    bad.pop();
    assert_eq!(
        s.cli(&["token", "verify", &bad, "--issuer", &issuer], None)
            .status
            .code(),
        Some(6)
    );
    // The server accepts what the CLI minted (same keys, same issuer).
    let (rs, rs_secret) = s.add_client("rs", "client_credentials", "", &[]);
    let r = s
        .post_form(
            "/introspect",
            &[("token", &token)],
            Some((&rs, &rs_secret.unwrap())),
        )
        .await;
    assert_eq!(r.json["active"], true, "{:?}", r.json);
    // Scope beyond the client's: refused, exit 2.
    assert_eq!(
        s.cli(
            &["token", "mint", "--client", "svc", "--scope", "admin"],
            None
        )
        .status
        .code(),
        Some(2)
    );
}
