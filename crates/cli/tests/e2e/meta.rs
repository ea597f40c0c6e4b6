//! Discovery, JWKS and health endpoints over HTTP.

use crate::harness::Server;

#[tokio::test]
async fn discovery_jwks_and_health() {
    let s = Server::start();
    assert!(s.base.starts_with("http://127.0.0.1:"));
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let d = s.get(path, None).await;
        assert_eq!(d.status, 200);
        assert_eq!(d.json["issuer"], s.base.as_str());
        assert_eq!(d.json["token_endpoint"], s.url("/token"));
        assert_eq!(d.json["jwks_uri"], s.url("/jwks.json"));
        assert_eq!(
            d.json["tessera_revocation_feed_endpoint"],
            s.url("/revocations")
        );
        let methods = d.json["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert!(methods.iter().any(|m| m == "client_secret_basic"));
        let algs = d.json["id_token_signing_alg_values_supported"].to_string();
        assert!(!algs.to_lowercase().contains("\"none\""), "{algs}");
    }
    let jwks = s.get("/jwks.json", None).await;
    // The EdDSA key of access tokens and the RS256 key of ID tokens, public halves only.
    let keys = jwks.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let ed = keys.iter().find(|k| k["alg"] == "EdDSA").unwrap();
    assert_eq!(ed["kty"], "OKP");
    let rs = keys.iter().find(|k| k["alg"] == "RS256").unwrap();
    assert_eq!(rs["kty"], "RSA");
    for k in keys {
        assert!(k.get("d").is_none() && k.get("p").is_none());
    }
    assert_eq!(s.get("/healthz", None).await.status, 200);
    assert_eq!(s.get("/readyz", None).await.status, 200);

    // First start created the data directory, the database and a private master.key.
    let dir = s.data_dir();
    assert!(dir.join("tessera.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn master_key_from_the_environment_is_required_to_restart() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let s = Server::start_with("", &[("TESSERA_MASTER_KEY", key)]);
    assert!(!s.data_dir().join("master.key").exists());
    let data = s.data_dir();
    let dir = s.stop();
    // The same data directory with another master key: a clear start-up error, exit 3.
    let out = std::process::Command::new(crate::harness::BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "TESSERA_MASTER_KEY",
            "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key"), "{err}");
    drop(dir);
}
