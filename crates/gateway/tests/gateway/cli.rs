//! The binary's command line: `--check` prints what the file sets up and never the
//! secret, a bad file fails with exit 2 naming the file and line, `--help` helps, a
//! missing secret variable fails the start with exit 1 naming the variable.

use std::process::{Command, Output};

const GATEWAY: &str = env!("CARGO_BIN_EXE_tessera-gateway");

fn run(config: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(GATEWAY)
        .arg("--config")
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("TESSERA_GATEWAY_CONFIG")
        .output()
        .unwrap()
}

const GOOD: &str = r#"
listen = "127.0.0.1:0"
mode = "forward_auth"
issuer = "http://127.0.0.1:9"
audience = "notes-api"
[forward_auth]
proxy = "traefik"
[revocation]
client_id = "rs"
client_secret_env = "TESSERA_GW_TEST_SECRET"
[[route]]
methods = ["GET"]
path = "/notes"
scopes = ["notes:read"]
[[route]]
path = "/export"
dpop = "require"
"#;

#[test]
fn check_prints_the_setup_and_never_the_secret() {
    let secret = "s3cret-value-that-must-not-show";
    let out = run(GOOD, &["--check"], &[("TESSERA_GW_TEST_SECRET", secret)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    for want in [
        "forward_auth behind traefik",
        "notes-api",
        "/notes",
        "scopes notes:read",
        "DPoP required",
        "$TESSERA_GW_TEST_SECRET (set)",
        "deny (403)",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
}

const PROXY: &str = r#"
listen = "127.0.0.1:0"
mode = "proxy"
issuer = "http://127.0.0.1:9"
audience = "notes-api"
[identity]
jwt = true
[proxy]
upstream = "http://127.0.0.1:8000"
response_timeout_secs = 7
max_body_bytes = 1000
[[route]]
path = "/notes"
scopes = ["notes:read"]
"#;

#[test]
fn check_prints_the_proxy_setup_and_refuses_a_bad_upstream_or_zero_timeout() {
    let out = run(PROXY, &["--check"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "proxy to http://127.0.0.1:8000",
        "response timeout 7 s",
        "bodies over 1000 bytes 413",
        "X-Forwarded-* from the client replaced",
        "/.well-known/tessera-gateway/readyz",
        "/.well-known/tessera-gateway/jwks.json",
        "X-Auth-Identity, 60 s, ES256 key generated at start",
        "none: revoked tokens pass",
        "upgrades        websocket (GET only); at most 256 tunnels, closed after 300 s idle or 3600 s",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from:\n{stdout}");
    }
    for (from, to, says) in [
        (
            "http://127.0.0.1:8000",
            "https://127.0.0.1:8000",
            "proxy.upstream",
        ),
        (
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/api",
            "proxy.upstream",
        ),
        (
            "response_timeout_secs = 7",
            "response_timeout_secs = 0",
            "response_timeout_secs",
        ),
        (
            "response_timeout_secs = 7",
            "connect_timeout_secs = 0",
            "connect_timeout_secs",
        ),
        (
            "response_timeout_secs = 7",
            "upgrades = [\"websocket\", \"h2c\"]",
            "h2c",
        ),
    ] {
        let out = run(&PROXY.replace(from, to), &["--check"], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {stderr}");
        assert!(stderr.contains(says), "{to}: {stderr}");
    }
}

#[test]
fn a_bad_file_exits_2_naming_the_file_and_line() {
    let out = run(&format!("{GOOD}\nbogus_option = 1\n"), &["--check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gateway.toml") && stderr.contains("bogus_option"),
        "{stderr}"
    );
    assert!(stderr.contains("line"), "{stderr}");
    let out = run(
        &GOOD.replace("proxy = \"traefik\"", "proxy = \"haproxy\""),
        &["--check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(GATEWAY)
        .args(["--config", "/nonexistent/gateway.toml", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gateway.toml"));
}

#[test]
fn an_envoy_prefix_that_is_not_a_plain_path_is_refused_by_check_with_exit_2() {
    for bad in ["/c{", "/c*", "c"] {
        let out = run(
            &GOOD.replace(
                "proxy = \"traefik\"",
                &format!("proxy = \"envoy\"\nenvoy_path_prefix = \"{bad}\""),
            ),
            &["--check"],
            &[("TESSERA_GW_TEST_SECRET", "x")],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("envoy_path_prefix"), "{stderr}");
    }
}

#[test]
fn help_names_the_modes_and_the_docs() {
    let out = Command::new(GATEWAY).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "nginx",
        "Traefik",
        "Envoy",
        "--check",
        "docs/gateway.md",
        "Exit codes",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

#[test]
fn a_missing_secret_variable_fails_the_start_with_exit_1() {
    let out = run(GOOD, &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TESSERA_GW_TEST_SECRET"), "{stderr}");
}

#[test]
fn it_serves_with_the_issuer_down_and_stops_on_sigterm_with_exit_0() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    // No [revocation]; the issuer's port has nothing listening.
    let config = GOOD.replace(
        "[revocation]\nclient_id = \"rs\"\nclient_secret_env = \"TESSERA_GW_TEST_SECRET\"\n",
        "",
    );
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(GATEWAY)
        .arg("--config")
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut log = String::new();
    loop {
        let line = lines
            .next()
            .expect("stderr closed before listening")
            .unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.starts_with("listening on http://127.0.0.1:") {
            break;
        }
    }
    assert!(log.contains("public_base_url is not set"), "{log}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 20 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0));
}
