//! Hardening (issue 14): see docs/security.md, "What was hardened and how it is tested".
//!
//! Item 1: a user's "revoke all" (`user disable`, `sessions revoke --user`, `user passwd`,
//! `user remove`) reaches their unredeemed authorization codes and every refresh; `user
//! enable` restores sign-in, not what was revoked; a removed name comes back with a new
//! `sub`.

use reqwest::StatusCode;
use serde_json::Value;
use tessera_token::pkce;

use crate::authorize::{BYE, Browser, REDIRECT, authorize_url, exchange, setup, sign_in};
use crate::harness::{PASSWORD, Reply, Server, jwt_claims, register_secret};

fn verifier() -> String {
    pkce::generate_verifier().unwrap()
}

/// Refreshes `rt` as the public client `client_id`.
async fn refresh(s: &Server, client_id: &str, rt: &str) -> Reply {
    s.token(
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", rt),
        ],
        None,
    )
    .await
}

/// The status of `GET /userinfo` with `access`.
async fn userinfo(s: &Server, access: &str) -> StatusCode {
    s.http
        .get(s.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
}

/// Signs alice in with a fresh browser and redeems the code: (access, refresh) tokens.
async fn tokens(s: &Server, client: &str) -> (String, String) {
    let mut b = Browser::new();
    let v = verifier();
    let code = sign_in(s, &mut b, client, &v).await;
    let r = exchange(s, client, &code, &v).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    (r.str("access_token"), r.str("refresh_token"))
}

/// Signs alice in with a fresh browser and keeps the code: (code, verifier).
async fn pending_code(s: &Server, client: &str) -> (String, String) {
    let mut b = Browser::new();
    let v = verifier();
    (sign_in(s, &mut b, client, &v).await, v)
}

/// The redirect of a `prompt=none` authorization request in browser `b`.
async fn silent(
    s: &Server,
    b: &mut Browser,
    client: &str,
    v: &str,
) -> std::collections::BTreeMap<String, String> {
    let url = authorize_url(s, client, v, &[("prompt", "none")]);
    b.get(&url).await.redirect_params()
}

/// The kinds of the audit events of this run, newest first.
fn audit_kinds(s: &Server) -> Vec<String> {
    let v: Value = serde_json::from_str(&s.cli_ok(&["audit", "--json"], None)).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn hardening_users_a_code_from_before_disable_is_refused_and_enable_restores_only_sign_in() {
    let setup = setup();
    let (s, first) = (&setup.s, &setup.first);
    let (access, rt) = tokens(s, first).await;
    let (code, v) = pending_code(s, first).await;

    s.cli_ok(&["user", "disable", "alice"], None);
    // The code issued before the disable: refused (today: tokens, and a live grant).
    exchange(s, first, &code, &v)
        .await
        .assert_error(400, "invalid_grant");
    refresh(s, first, &rt)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(userinfo(s, &access).await, StatusCode::UNAUTHORIZED);

    // Enabled again: alice signs in anew; nothing from before comes back.
    s.cli_ok(&["user", "enable", "alice"], None);
    let (access2, rt2) = tokens(s, first).await;
    assert_eq!(userinfo(s, &access2).await, StatusCode::OK);
    assert_eq!(refresh(s, first, &rt2).await.status, 200);
    refresh(s, first, &rt)
        .await
        .assert_error(400, "invalid_grant");
    exchange(s, first, &code, &v)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(userinfo(s, &access).await, StatusCode::UNAUTHORIZED);
    let kinds = audit_kinds(s);
    assert!(kinds.iter().any(|k| k == "user.enable"), "{kinds:?}");
    // Enabling a name nobody has: exit 4, with the fix in the message.
    let out = s.cli(&["user", "enable", "nobody"], None);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tessera user list"));
}

#[tokio::test]
async fn hardening_users_a_code_from_before_sessions_revoke_is_refused() {
    let setup = setup();
    let (s, first, spa) = (&setup.s, &setup.first, &setup.spa);
    let (_, rt) = tokens(s, first).await;
    let (code, v) = pending_code(s, first).await;
    // A code for the third-party client too (login and consent).
    let (spa_code, spa_v) = pending_code(s, spa).await;

    s.cli_ok(&["sessions", "revoke", "--user", "alice"], None);
    exchange(s, first, &code, &v)
        .await
        .assert_error(400, "invalid_grant");
    exchange(s, spa, &spa_code, &spa_v)
        .await
        .assert_error(400, "invalid_grant");
    refresh(s, first, &rt)
        .await
        .assert_error(400, "invalid_grant");
    // Signing in again after the revoke works.
    let (_, rt2) = tokens(s, first).await;
    assert_eq!(refresh(s, first, &rt2).await.status, 200);
}

#[tokio::test]
async fn hardening_users_passwd_ends_sessions_unless_keep_sessions() {
    let setup = setup();
    let (s, first) = (&setup.s, &setup.first);
    let (_, rt) = tokens(s, first).await;
    // A signed-in browser, and a code it has not redeemed yet.
    let mut b = Browser::new();
    let v = verifier();
    let code = sign_in(s, &mut b, first, &v).await;

    // --keep-sessions: everything keeps working.
    let second = "a second long password";
    register_secret(second);
    let out = s.cli_ok(
        &[
            "user",
            "passwd",
            "alice",
            "--keep-sessions",
            "--password-stdin",
        ],
        Some(&format!("{second}\n")),
    );
    assert!(out.contains("kept"), "{out}");
    let r = refresh(s, first, &rt).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let rt = r.str("refresh_token");
    assert!(
        silent(s, &mut b, first, &v).await.contains_key("code"),
        "still signed in"
    );
    assert_eq!(exchange(s, first, &code, &v).await.status, 200);

    // The default: the password change evicts whoever was signed in.
    let code = silent(s, &mut b, first, &v).await["code"].clone();
    let third = "a third long password";
    register_secret(third);
    let out = s.cli_ok(
        &["user", "passwd", "alice", "--password-stdin"],
        Some(&format!("{third}\n")),
    );
    assert!(out.contains("revoked"), "{out}");
    refresh(s, first, &rt)
        .await
        .assert_error(400, "invalid_grant");
    exchange(s, first, &code, &v)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(
        silent(s, &mut b, first, &v).await["error"],
        "login_required"
    );
    let kinds = audit_kinds(s);
    assert!(
        kinds.iter().filter(|k| *k == "user.passwd").count() == 2,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn hardening_users_remove_then_readd_gets_a_new_sub_and_old_tokens_stay_dead() {
    let setup = setup();
    let (s, first) = (&setup.s, &setup.first);
    let (access, rt) = tokens(s, first).await;
    let old_sub = jwt_claims(&access)["sub"].as_str().unwrap().to_owned();
    let (code, v) = pending_code(s, first).await;

    let out = s.cli_ok(&["user", "remove", "alice"], None);
    assert!(out.contains(&old_sub), "{out}");
    assert!(!s.cli_ok(&["user", "list"], None).contains("alice"));
    refresh(s, first, &rt)
        .await
        .assert_error(400, "invalid_grant");
    exchange(s, first, &code, &v)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(userinfo(s, &access).await, StatusCode::UNAUTHORIZED);
    let kinds = audit_kinds(s);
    assert!(kinds.iter().any(|k| k == "user.remove"), "{kinds:?}");
    // Removing again: not found, exit 4.
    assert_eq!(
        s.cli(&["user", "remove", "alice"], None).status.code(),
        Some(4)
    );

    // The same name again: a new sub; the old tokens stay dead.
    s.add_user("alice", PASSWORD);
    let (access2, rt2) = tokens(s, first).await;
    let new_sub = jwt_claims(&access2)["sub"].as_str().unwrap().to_owned();
    assert_ne!(new_sub, old_sub);
    assert_eq!(userinfo(s, &access2).await, StatusCode::OK);
    assert_eq!(refresh(s, first, &rt2).await.status, 200);
    refresh(s, first, &rt)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(userinfo(s, &access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hardening_users_a_redemption_racing_disable_never_leaves_a_live_grant() {
    const ROUNDS: usize = 3;
    let setup = setup();
    let (s, first) = (&setup.s, &setup.first);
    for round in 0..ROUNDS {
        let (code, v) = pending_code(s, first).await;
        let data_dir = s.data_dir();
        let disable = std::thread::spawn(move || {
            crate::harness::run_cli(&data_dir, &["user", "disable", "alice"], None)
        });
        let r = exchange(s, first, &code, &v).await;
        let out = disable.join().unwrap();
        assert!(out.status.success(), "round {round}");
        // Whichever came first: once the disable has returned, nothing of the
        // redemption works.
        if r.status == 200 {
            refresh(s, first, &r.str("refresh_token"))
                .await
                .assert_error(400, "invalid_grant");
            assert_eq!(
                userinfo(s, &r.str("access_token")).await,
                StatusCode::UNAUTHORIZED,
                "round {round}"
            );
        } else {
            r.assert_error(400, "invalid_grant");
        }
        s.cli_ok(&["user", "enable", "alice"], None);
    }
}

#[tokio::test]
async fn hardening_users_on_postgres_a_code_from_before_disable_is_refused() {
    let Some(pg) = crate::postgres::cluster() else {
        return;
    };
    let url = pg.fresh_database("e2e").unwrap();
    let s = Server::start_postgres(&url);
    s.add_user("alice", PASSWORD);
    let (first, _) = s.add_client(
        "first",
        "authorization_code,refresh_token",
        "openid profile notes:read",
        &[
            "--public",
            "--audience",
            "notes-api",
            "--redirect-uri",
            REDIRECT,
            "--post-logout-redirect-uri",
            BYE,
            "--first-party",
        ],
    );
    let (access, rt) = tokens(&s, &first).await;
    let (code, v) = pending_code(&s, &first).await;
    s.cli_ok(&["user", "disable", "alice"], None);
    exchange(&s, &first, &code, &v)
        .await
        .assert_error(400, "invalid_grant");
    refresh(&s, &first, &rt)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(userinfo(&s, &access).await, StatusCode::UNAUTHORIZED);

    // A redemption racing the disable (on the database's row locks): nothing stays live.
    s.cli_ok(&["user", "enable", "alice"], None);
    let (code, v) = pending_code(&s, &first).await;
    let (data_dir, db) = (s.data_dir(), url.clone());
    let disable = std::thread::spawn(move || {
        crate::harness::run_cli(
            &data_dir,
            &["--database", &db, "user", "disable", "alice"],
            None,
        )
    });
    let r = exchange(&s, &first, &code, &v).await;
    assert!(disable.join().unwrap().status.success());
    if r.status == 200 {
        refresh(&s, &first, &r.str("refresh_token"))
            .await
            .assert_error(400, "invalid_grant");
    } else {
        r.assert_error(400, "invalid_grant");
    }
}
