//! HTTPS: the server's own TLS from PEM files, HSTS, and certificate reload on SIGHUP
//! and on a file change, against the real binary with certificates made in the test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{BIN, Server};

/// A fresh self-signed certificate for 127.0.0.1 written to `dir/NAME.crt` and
/// `dir/NAME.key`; returns the certificate PEM.
pub fn self_signed(dir: &Path, name: &str) -> String {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let pem = ck.cert.pem();
    std::fs::write(dir.join(format!("{name}.crt")), &pem).unwrap();
    std::fs::write(
        dir.join(format!("{name}.key")),
        ck.signing_key.serialize_pem(),
    )
    .unwrap();
    pem
}

/// A client that trusts only `pem`, with no connection reuse (every request shakes hands).
fn client_trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Retries a GET with a client trusting `pem` until it succeeds or `within` passes.
async fn served_within(url: &str, pem: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if client_trusting(pem).get(url).send().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Replaces `live.crt`/`live.key` with `name`'s files (renames, as certbot and
/// Kubernetes do, so the server never reads a half-written file).
pub fn install(dir: &Path, name: &str) {
    for ext in ["key", "crt"] {
        let tmp = dir.join(format!("tmp.{ext}"));
        std::fs::copy(dir.join(format!("{name}.{ext}")), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(format!("live.{ext}"))).unwrap();
    }
}

pub fn live(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("live.crt"), dir.join("live.key"))
}

#[tokio::test]
async fn https_with_hsts_and_certificate_reload_on_sighup_and_file_change() {
    let certs = tempfile::tempdir().unwrap();
    let first = self_signed(certs.path(), "first");
    let second = self_signed(certs.path(), "second");
    let third = self_signed(certs.path(), "third");
    install(certs.path(), "first");
    let (crt, key) = live(certs.path());
    let config = format!("tls_cert = {crt:?}\ntls_key = {key:?}\n");
    let s = Server::start_with(&config, &[]);
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let jwks = s.url("/jwks.json");

    // HTTPS with the first certificate, HSTS on every response, the issuer https.
    let r = client_trusting(&first).get(&jwks).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let meta: serde_json::Value = client_trusting(&first)
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], s.base.as_str());
    assert!(client_trusting(&second).get(&jwks).send().await.is_err());
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::get(jwks.replace("https://", "http://")).await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));

    // New files + SIGHUP: the second certificate is served on the same listener.
    install(certs.path(), "second");
    s.signal("HUP");
    assert!(
        served_within(&jwks, &second, Duration::from_secs(20)).await,
        "second certificate not served after SIGHUP; log:\n{}",
        s.log()
    );
    assert!(s.log().contains("TLS certificate reloaded"));
    assert!(client_trusting(&first).get(&jwks).send().await.is_err());

    // New files alone: picked up by the file watch.
    install(certs.path(), "third");
    assert!(
        served_within(&jwks, &third, Duration::from_secs(30)).await,
        "third certificate not served after a file change; log:\n{}",
        s.log()
    );

    // A broken replacement is refused and the current certificate stays.
    std::fs::write(&crt, "not a certificate").unwrap();
    s.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        client_trusting(&third)
            .get(&jwks)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // SIGTERM ends the TLS accept loop too: a clean exit.
    let mut s = s;
    s.signal("TERM");
    let status = s.wait_exit(Duration::from_secs(60)).expect("still running");
    assert!(status.success(), "exit {status:?}; log:\n{}", s.log());
}

#[test]
fn unusable_tls_files_stop_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path(), "a");
    self_signed(dir.path(), "b");
    let run = |cert: &str, key: &str| {
        std::process::Command::new(BIN)
            .args(["--data-dir"])
            .arg(dir.path().join("data"))
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(dir.path().join(cert))
            .arg("--tls-key")
            .arg(dir.path().join(key))
            .env_remove("TESSERA_CONFIG")
            .output()
            .unwrap()
    };
    // The key of another certificate.
    let out = run("a.crt", "b.key");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls_key") && err.contains("does not fit"),
        "{err}"
    );
    // A missing file.
    let out = run("missing.crt", "a.key");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls_cert"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
