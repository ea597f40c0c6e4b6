//! Configuration: the example file, precedence, one-line errors, the plain-HTTP guard,
//! CORS and trusted proxies, through the real binary.

use std::process::{Command, Stdio};

use crate::harness::{BIN, PASSWORD, Server, basic_header};

/// Runs `tessera ARGS` with `env` (and no inherited TESSERA_* variables).
fn tessera(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_example_prints_a_file_that_loads() {
    let out = tessera(&["config", "example"], &[]);
    assert!(out.status.success());
    let example = String::from_utf8(out.stdout).unwrap();
    assert!(example.contains("access_token_ttl_secs = 600"));
    assert!(example.contains("# tls_cert = "));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.toml");
    std::fs::write(&path, &example).unwrap();
    let out = tessera(
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "config ok\n");
}

#[test]
fn bad_configuration_is_one_line_naming_the_key_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.toml");
    let data = dir.path().join("data");
    std::fs::write(&path, "acces_token_ttl_secs = 900\n").unwrap();
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>, env: &[(&str, &str)]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        tessera(&a, env)
    };
    // serve refuses an unknown key before doing anything.
    let out = run(args(&["serve", "--listen", "127.0.0.1:0"]), &[]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown key `acces_token_ttl_secs`"), "{err}");
    assert!(
        err.contains("did you mean `access_token_ttl_secs`"),
        "{err}"
    );
    assert!(!data.exists(), "nothing created for a bad config");
    // Bad values from the file, the environment and --set name the key and the variable.
    std::fs::write(&path, "access_token_ttl_secs = 5\n").unwrap();
    let err = stderr(&run(args(&["config", "check"]), &[]));
    assert!(
        err.contains("access_token_ttl_secs = 5 is invalid: must be between 60 and 86400"),
        "{err}"
    );
    assert!(err.contains("TESSERA_ACCESS_TOKEN_TTL_SECS"), "{err}");
    std::fs::write(&path, "").unwrap();
    let out = run(
        args(&["config", "check"]),
        &[("TESSERA_REFRESH_REUSE_GRACE_SECS", "120")],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("refresh_reuse_grace_secs = 120 is invalid"),
        "{}",
        stderr(&out)
    );
    let out = run(
        args(&["--set", "trusted_proxies=not-an-ip", "config", "check"]),
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("trusted_proxies = \"not-an-ip\" is invalid"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = run(
        args(&["--set", "login_max_block_secs=soon", "config", "check"]),
        &[],
    );
    let err = stderr(&out);
    assert!(
        err.contains("login_max_block_secs = \"soon\" (from --set) is invalid"),
        "{err}"
    );
}

#[test]
fn plain_http_off_loopback_is_refused_unless_dangerous() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = tessera(&["--data-dir", d, "serve", "--listen", "0.0.0.0:0"], &[]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("not a loopback address and TLS is off"),
        "{err}"
    );
    assert!(
        err.contains("--dangerous-allow-http") && err.contains("tls_cert"),
        "{err}"
    );
    assert!(!data.exists());
    // The same address passes the check with the dangerous switch (checked without
    // binding a non-loopback socket: tests listen on loopback only).
    let sets = [
        "--set",
        "listen=0.0.0.0:8080",
        "--set",
        "dangerous_allow_http=true",
    ];
    let out = tessera(
        &[&["--data-dir", d][..], &sets, &["config", "check"]].concat(),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tessera(
        &[
            "--data-dir",
            d,
            "--set",
            "listen=0.0.0.0:8080",
            "config",
            "check",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    // An http issuer off loopback is refused too.
    let out = tessera(
        &[
            "--data-dir",
            d,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            "http://auth.example.com",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("issuer = \"http://auth.example.com\" is invalid: must use https"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn flags_beat_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    // TESSERA_LISTEN alone is loopback and fine; --set moves it off loopback, so the
    // check fails: the flag won.
    let env = [("TESSERA_LISTEN", "127.0.0.1:8080")];
    let ok = tessera(&["--data-dir", d, "config", "check"], &env);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let out = tessera(
        &[
            "--data-dir",
            d,
            "--set",
            "listen=0.0.0.0:8080",
            "config",
            "check",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("listen = \"0.0.0.0:8080\""),
        "{}",
        stderr(&out)
    );
    // The environment is read for every key, data_dir and the database URL included.
    let env = [("TESSERA_DATABASE_URL", "mysql://h/db")];
    let out = tessera(&["--data-dir", d, "config", "check"], &env);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("database = (not shown) is invalid"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn the_environment_overrides_the_file() {
    let s = Server::start_with(
        "access_token_ttl_secs = 300\n",
        &[("TESSERA_ACCESS_TOKEN_TTL_SECS", "900")],
    );
    let (id, secret) = s.add_client("svc", "client_credentials", "", &[]);
    let r = s
        .token(
            &[("grant_type", "client_credentials")],
            Some((&id, secret.as_deref().unwrap())),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["expires_in"], 900);
}

#[tokio::test]
async fn cors_only_for_configured_origins_on_browser_endpoints() {
    let s = Server::start_with("cors_allowed_origins = [\"https://app.example\"]\n", &[]);
    let preflight = |path: &str, origin: &str| {
        s.http
            .request(reqwest::Method::OPTIONS, s.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let r = preflight("/token", "https://app.example").await.unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(!r.headers().contains_key("access-control-allow-credentials"));
    let r = preflight("/token", "https://evil.example").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    // Introspection is for resource servers, never browsers: no CORS.
    let r = preflight("/introspect", "https://app.example")
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let r = s
        .http
        .get(s.url("/jwks.json"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    // Without the option, no CORS headers at all.
    let plain = Server::start();
    let r = plain
        .http
        .get(plain.url("/jwks.json"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

/// Fails a login for `user` with `X-Forwarded-For: xff`; returns the status.
async fn failed_login(s: &Server, basic: &str, user: &str, xff: &str) -> u16 {
    s.http
        .post(s.url("/token"))
        .header("authorization", basic)
        .header("x-forwarded-for", xff)
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", "wrong guess"),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let cfg = "login_failures_per_ip = 2\nlogin_failures_per_account = 100\n";
    // The test client (127.0.0.1) is a trusted proxy: each forwarded client has its own
    // per-IP budget.
    let s = Server::start_with(&format!("{cfg}trusted_proxies = [\"127.0.0.1\"]\n"), &[]);
    let (id, secret) = s.add_client("web", "password", "", &[]);
    let basic = basic_header(&id, secret.as_deref().unwrap());
    s.add_user("alice", PASSWORD);
    for user in ["u1", "u2"] {
        assert_eq!(failed_login(&s, &basic, user, "198.51.100.1").await, 400);
    }
    assert_eq!(failed_login(&s, &basic, "u3", "198.51.100.1").await, 429);
    assert_eq!(failed_login(&s, &basic, "u3", "198.51.100.2").await, 400);
    // Without trusted proxies the header is ignored: every attempt is 127.0.0.1's.
    let s = Server::start_with(cfg, &[]);
    let (id, secret) = s.add_client("web", "password", "", &[]);
    let basic = basic_header(&id, secret.as_deref().unwrap());
    for (user, ip) in [("u1", "198.51.100.1"), ("u2", "198.51.100.2")] {
        assert_eq!(failed_login(&s, &basic, user, ip).await, 400);
    }
    assert_eq!(failed_login(&s, &basic, "u3", "198.51.100.3").await, 429);
}
