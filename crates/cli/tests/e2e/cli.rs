//! The operator CLI: output, errors and exit codes.

use crate::harness::{PASSWORD, Server};

#[tokio::test]
async fn cli_errors_are_one_line_with_exit_codes() {
    let s = Server::start();
    s.add_user("alice", PASSWORD);
    // Already exists: 5.
    let out = s.cli(
        &["user", "add", "alice", "--password-stdin"],
        Some("another password\n"),
    );
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already exists"));
    // Not found: 4.
    assert_eq!(
        s.cli(&["client", "remove", "nope"], None).status.code(),
        Some(4)
    );
    assert_eq!(
        s.cli(&["user", "disable", "nope"], None).status.code(),
        Some(4)
    );
    // Invalid input: 2 (weak password, bad grant type, bad name, no terminal).
    assert_eq!(
        s.cli(
            &["user", "add", "carol", "--password-stdin"],
            Some("short\n")
        )
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        s.cli(&["client", "add", "x", "--grant-types", "implicit"], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        s.cli(
            &["user", "add", "bad name", "--password-stdin"],
            Some("long enough pw\n")
        )
        .status
        .code(),
        Some(2)
    );
    assert_eq!(s.cli(&["user", "add", "dave"], None).status.code(), Some(2));
    assert_eq!(
        s.cli(
            &[
                "client",
                "add",
                "pub",
                "--grant-types",
                "client_credentials",
                "--public"
            ],
            None
        )
        .status
        .code(),
        Some(2)
    );
    // Help helps.
    let help = s.cli_ok(&["client", "add", "--help"], None);
    assert!(help.contains("--grant-types") && help.contains("--audience"));
    let top = s.cli_ok(&["--help"], None);
    assert!(top.contains("Exit codes"));
}

#[tokio::test]
async fn client_lifecycle_through_the_cli() {
    // The server caches client records for client_cache_ttl_secs: a rotated-away secret or
    // a removed client stops working within that bound (1 s here).
    let s = Server::start_with("client_cache_ttl_secs = 1\n", &[]);
    let (id, secret) = s.add_client("svc", "client_credentials", "a", &[]);
    let secret = secret.unwrap();
    let list = s.cli_ok(&["client", "list", "--json"], None);
    assert!(
        list.contains(&id) && !list.contains(&secret),
        "list never shows secrets"
    );
    let ok = s
        .token(
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(ok.status, 200);

    let rotated: serde_json::Value =
        serde_json::from_str(&s.cli_ok(&["client", "rotate-secret", "svc", "--json"], None))
            .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    refused_within_the_cache_ttl(&s, &id, &secret).await;
    assert_eq!(
        s.token(
            &[("grant_type", "client_credentials")],
            Some((&id, new_secret))
        )
        .await
        .status,
        200
    );

    s.cli_ok(&["client", "remove", &id], None);
    refused_within_the_cache_ttl(&s, &id, new_secret).await;

    let users = s.cli_ok(&["user", "list"], None);
    assert!(users.contains("NAME"));
    s.add_user("erin", PASSWORD);
    s.cli_ok(
        &["user", "passwd", "erin", "--password-stdin"],
        Some("a brand new password\n"),
    );
    let (web, web_secret) = s.add_client("web", "password", "", &[]);
    let web_secret = web_secret.unwrap();
    s.token(
        &[
            ("grant_type", "password"),
            ("username", "erin"),
            ("password", PASSWORD),
        ],
        Some((&web, &web_secret)),
    )
    .await
    .assert_error(400, "invalid_grant");
    let r = s
        .token(
            &[
                ("grant_type", "password"),
                ("username", "erin"),
                ("password", "a brand new password"),
            ],
            Some((&web, &web_secret)),
        )
        .await;
    assert_eq!(r.status, 200);
}

/// Client credentials with `secret` stop working within the server's 1 s client-cache TTL
/// (polled for up to 5 s, so a slow machine does not fail the test), and stay refused.
async fn refused_within_the_cache_ttl(s: &Server, id: &str, secret: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = s
            .token(&[("grant_type", "client_credentials")], Some((id, secret)))
            .await;
        if r.status == 401 {
            r.assert_error(401, "invalid_client");
            break;
        }
        assert_eq!(r.status, 200, "only 200 (still cached) or 401");
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted 5 s after the change (TTL 1 s)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
