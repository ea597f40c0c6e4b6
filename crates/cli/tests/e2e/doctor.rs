//! `tessera doctor` on a good deployment (HTTPS, defaults) and on a bad one (readable
//! master key, plain HTTP off loopback, long tokens, loose throttling, no rotation).

use std::process::Output;

use crate::harness::{Server, run_cli};
use crate::tls::{install, live, self_signed};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn doctor_passes_a_good_https_deployment() {
    let certs = tempfile::tempdir().unwrap();
    self_signed(certs.path(), "first");
    install(certs.path(), "first");
    let (crt, key) = live(certs.path());
    let s = Server::start_with(&format!("tls_cert = {crt:?}\ntls_key = {key:?}\n"), &[]);
    let out = s.cli(
        &["doctor", "--url", &s.base, "--ca", crt.to_str().unwrap()],
        None,
    );
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "[ok  ] HTTPS served by tessera",
        "[ok  ] access tokens live 600 s",
        "[ok  ] refresh tokens rotate on every use",
        "[ok  ] login throttling on",
        "[ok  ] signing keys rotate every 90 days",
        "master.key is mode 600",
        "[ok  ] newest EdDSA signing key is 0 days old",
        "[ok  ] newest RS256 signing key (ID tokens) is 0 days old",
        "[ok  ] served over https",
        "[ok  ] HSTS max-age=31536000",
        "[ok  ] server clock within",
        "[ok  ] JWKS publishes 2 public key(s), no private members",
        "[ok  ] ID tokens offered as RS256, EdDSA",
        "0 failed",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("[FAIL]"), "{text}");
    // Without --ca the self-signed certificate is not trusted: a failure, with its fix.
    let out = s.cli(&["doctor", "--url", &s.base], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("[FAIL] discovery not reachable"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn doctor_fails_a_bad_setup_and_names_each_fix() {
    // A data directory with a master key and a store, left by a real server.
    let s = Server::start();
    let dir = s.stop();
    let data = dir.path().join("data");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = data.join("master.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "listen = \"0.0.0.0:8080\"\naccess_token_ttl_secs = 86400\n\
         login_failures_per_account = 50\nkey_rotation_period_secs = 0\n\
         refresh_reuse_grace_secs = 60\n",
    )
    .unwrap();
    let out = run_cli(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "doctor",
            "--url",
            "http://127.0.0.1:9",
        ],
        None,
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("check(s) failed"));
    for (line, fix) in [
        (
            "[FAIL] listen = 0.0.0.0:8080 is not loopback and serves plain HTTP",
            "docs/security.md#https",
        ),
        ("[FAIL] discovery not reachable", "docs/security.md#https"),
        (
            "[warn] access tokens live 86400 s",
            "docs/security.md#stolen-access-token",
        ),
        (
            "[warn] refresh_reuse_grace_secs = 60",
            "docs/security.md#stolen-refresh-token",
        ),
        (
            "[warn] login throttling is loose",
            "docs/security.md#brute-force",
        ),
        (
            "[warn] automatic signing-key rotation is off",
            "docs/security.md#leaked-signing-key",
        ),
        ("[warn] issuer not set", "docs/security.md#https"),
    ] {
        let at = text
            .find(line)
            .unwrap_or_else(|| panic!("missing {line:?} in:\n{text}"));
        let next = text[at..].lines().nth(1).unwrap_or_default();
        assert!(
            next.trim_start().starts_with("fix: ") && next.contains(fix),
            "{line}: {next}"
        );
    }
    #[cfg(unix)]
    {
        assert!(
            text.contains("master.key is mode 644: other users can read"),
            "{text}"
        );
        assert!(text.contains("fix: chmod 600"), "{text}");
    }
    // A configuration that does not load is a failure too, not a crash.
    std::fs::write(&config, "access_token_ttl_secs = 0\n").unwrap();
    let out = run_cli(
        &data,
        &["--config", config.to_str().unwrap(), "doctor", "--offline"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .contains("[FAIL] the configuration does not load: config: access_token_ttl_secs = 0"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn doctor_compares_the_clock_of_a_postgresql_database() {
    let Some(pg) = crate::postgres::cluster() else {
        return;
    };
    let url = pg.fresh_database("doctor").unwrap();
    let s = Server::start_postgres(&url);
    let out = s.cli(&["doctor", "--offline"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("[ok  ] database clock within 5s of this host"),
        "{text}"
    );
    assert!(
        text.contains("[ok  ] newest EdDSA signing key is 0 days old")
            && text.contains("[ok  ] newest RS256 signing key (ID tokens) is 0 days old"),
        "{text}"
    );
    assert!(!text.contains(pg_password(&url)), "{text}");
}

/// The password part of a PostgreSQL URL (or a string that never occurs).
fn pg_password(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .and_then(|u| u.split_once(':'))
        .map_or("\u{0}never", |(_, p)| p)
}
