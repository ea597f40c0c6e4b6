//! Throttling of failed logins, the audit log, and no secret in the server's logs.

use std::time::Duration;

use crate::harness::{PASSWORD, Server};

fn form<'a>(user: &'a str, pw: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("grant_type", "password"),
        ("username", user),
        ("password", pw),
    ]
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_recover() {
    let s = Server::start_with(
        "login_failures_per_account = 3\nlogin_max_block_secs = 2\n",
        &[],
    );
    let (id, secret) = s.add_client("web", "password", "", &[]);
    let basic = Some((id.as_str(), secret.as_deref().unwrap()));
    s.add_user("alice", PASSWORD);
    s.add_user("bob", PASSWORD);
    for _ in 0..3 {
        s.token(&form("alice", "wrong guess"), basic)
            .await
            .assert_error(400, "invalid_grant");
    }
    // Blocked now, even with the right password; another account is not.
    let r = s.token(&form("alice", PASSWORD), basic).await;
    r.assert_error(429, "temporarily_unavailable");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(s.token(&form("bob", PASSWORD), basic).await.status, 200);
    // Never forever: after Retry-After the right password works again.
    tokio::time::sleep(Duration::from_secs(wait + 1)).await;
    assert_eq!(s.token(&form("alice", PASSWORD), basic).await.status, 200);
    // Unknown accounts are throttled the same way (no enumeration by 429).
    for _ in 0..3 {
        s.token(&form("nobody", "x"), basic)
            .await
            .assert_error(400, "invalid_grant");
    }
    s.token(&form("nobody", "x"), basic)
        .await
        .assert_error(429, "temporarily_unavailable");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_ip() {
    let s = Server::start_with("login_failures_per_ip = 4\n", &[]);
    let (id, secret) = s.add_client("web", "password", "", &[]);
    let basic = Some((id.as_str(), secret.as_deref().unwrap()));
    s.add_user("alice", PASSWORD);
    for user in ["u1", "u2", "u3", "u4"] {
        s.token(&form(user, "guess"), basic)
            .await
            .assert_error(400, "invalid_grant");
    }
    let r = s.token(&form("alice", PASSWORD), basic).await;
    r.assert_error(429, "temporarily_unavailable");
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn audit_log_and_server_logs_hold_no_secrets() {
    let s = Server::start_with("", &[("TESSERA_LOG", "debug")]);
    let mut secrets: Vec<String> = vec![PASSWORD.into(), "a wrong password".into()];
    let (web, web_secret) = s.add_client("web", "password,refresh_token", "a", &[]);
    let web_secret = web_secret.unwrap();
    let (svc, svc_secret) = s.add_client("svc", "client_credentials", "a", &[]);
    let svc_secret = svc_secret.unwrap();
    secrets.extend([web_secret.clone(), svc_secret.clone()]);
    s.add_user("alice", PASSWORD);
    let web_b = Some((web.as_str(), web_secret.as_str()));

    s.token(&form("alice", "a wrong password"), web_b)
        .await
        .assert_error(400, "invalid_grant");
    let login = s.token(&form("alice", PASSWORD), web_b).await;
    let (at, rt) = (login.str("access_token"), login.str("refresh_token"));
    let next = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            web_b,
        )
        .await;
    let (at2, rt2) = (next.str("access_token"), next.str("refresh_token"));
    // Reuse of rt: the family is revoked.
    s.token(
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        web_b,
    )
    .await
    .assert_error(400, "invalid_grant");
    let cc = s
        .token(
            &[("grant_type", "client_credentials")],
            Some((&svc, &svc_secret)),
        )
        .await
        .str("access_token");
    // Client secret in the body too (client_secret_post).
    s.token(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &svc),
            ("client_secret", &svc_secret),
        ],
        None,
    )
    .await;
    s.post_form("/introspect", &[("token", &at)], Some((&svc, &svc_secret)))
        .await;
    s.post_form("/revoke", &[("token", &at2)], web_b).await;
    s.get("/revocations", Some((&svc, &svc_secret))).await;
    secrets.extend([at, rt, at2, rt2, cc]);

    let audit = s.cli_ok(&["audit", "list", "--json"], None);
    for kind in [
        "login.failure",
        "login.success",
        "refresh.reuse",
        "client.add",
        "user.add",
    ] {
        assert!(audit.contains(kind), "no {kind} in {audit}");
    }
    let log = s.log();
    assert!(
        log.contains("token request refused"),
        "debug logging is on: {log}"
    );
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "server log leaks a secret");
        assert!(!audit.contains(secret.as_str()), "audit log leaks a secret");
        // Also no recognisable fragment (e.g. a JWT signature or a token body).
        let tail = &secret[secret.len().saturating_sub(24)..];
        assert!(!log.contains(tail), "server log leaks part of a secret");
    }
}
