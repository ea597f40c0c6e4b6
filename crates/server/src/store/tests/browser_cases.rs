//! Store-suite cases for browser sign-in: authorization codes (single use, one winner,
//! reuse names the grant to revoke) and browser sessions (logout, `sessions revoke`,
//! disabled users), and their purge.

use std::sync::Arc;

use tessera_token::{OpaqueToken, TokenKind};

use super::fixtures::{grant, purge, revoked, t, token, user};
use crate::store::*;

pub(super) fn code(user_id: &str, expires: i64) -> AuthCodeRecord {
    AuthCodeRecord {
        hash: OpaqueToken::generate(TokenKind::AuthorizationCode)
            .unwrap()
            .hash(),
        client_id: "id-web".into(),
        user_id: user_id.into(),
        redirect_uri: "https://app.example/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scope: "openid a".parse().unwrap(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: t(-5),
        created_at: t(0),
        expires_at: t(expires),
        used_at: None,
        grant_id: None,
        generation: 0,
        amr: Amr::password(),
        dpop_jkt: None,
    }
}

pub(super) fn session(user_id: &str, expires: i64) -> SessionRecord {
    SessionRecord {
        hash: OpaqueToken::generate(TokenKind::AccessToken)
            .unwrap()
            .hash(),
        user_id: user_id.into(),
        created_at: t(0),
        expires_at: t(expires),
        revoked_at: None,
        generation: 0,
        amr: Amr::password(),
    }
}

pub(crate) async fn auth_codes_round_trip_and_redeem_once(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let c = code("u1", 60);
    s.insert_auth_code(&c).await.unwrap();
    let back = s.auth_code(&c.hash).await.unwrap().unwrap();
    assert_eq!(back.client_id, "id-web");
    assert_eq!(back.redirect_uri, c.redirect_uri);
    assert_eq!(back.code_challenge, c.code_challenge);
    assert_eq!(back.scope, c.scope);
    assert_eq!(back.nonce, c.nonce);
    assert_eq!(back.auth_time, t(-5));
    assert_eq!(back.expires_at, t(60));
    assert!(back.used_at.is_none() && back.grant_id.is_none());

    let g = grant("g1", "u1");
    let rt = token("g1");
    assert_eq!(
        s.redeem_auth_code(&c.hash, t(10), &g, Some(&rt))
            .await
            .unwrap(),
        RedeemOutcome::Redeemed
    );
    assert!(s.grant("g1").await.unwrap().is_some(), "grant stored");
    assert!(s.refresh_token(&rt.hash).await.unwrap().is_some());
    let used = s.auth_code(&c.hash).await.unwrap().unwrap();
    assert_eq!(used.used_at, Some(t(10)));
    assert_eq!(used.grant_id.as_deref(), Some("g1"));

    // A second redemption names the grant issued from the first, stores nothing.
    let g2 = grant("g2", "u1");
    assert_eq!(
        s.redeem_auth_code(&c.hash, t(11), &g2, None).await.unwrap(),
        RedeemOutcome::AlreadyUsed {
            grant_id: Some("g1".into())
        }
    );
    assert!(s.grant("g2").await.unwrap().is_none());

    // Unknown and expired codes are Unknown, and an expired one stays unused.
    let unknown = code("u1", 60);
    assert_eq!(
        s.redeem_auth_code(&unknown.hash, t(10), &g2, None)
            .await
            .unwrap(),
        RedeemOutcome::Unknown
    );
    let old = code("u1", 60);
    s.insert_auth_code(&old).await.unwrap();
    assert_eq!(
        s.redeem_auth_code(&old.hash, t(60), &g2, None)
            .await
            .unwrap(),
        RedeemOutcome::Unknown
    );
    assert!(
        s.auth_code(&old.hash)
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_none()
    );
    assert!(s.grant("g2").await.unwrap().is_none());
}

pub(crate) async fn an_auth_code_has_exactly_one_winner(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let c = code("u1", 60);
    s.insert_auth_code(&c).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = Arc::clone(&s);
        let hash = c.hash;
        tasks.push(tokio::spawn(async move {
            let id = format!("g{i}");
            s.redeem_auth_code(&hash, t(1), &grant(&id, "u1"), Some(&token(&id)))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            RedeemOutcome::Redeemed => won += 1,
            RedeemOutcome::AlreadyUsed { grant_id } => assert!(grant_id.is_some()),
            RedeemOutcome::Unknown => panic!("the code exists"),
        }
    }
    assert_eq!(won, 1);
    let winner = s
        .auth_code(&c.hash)
        .await
        .unwrap()
        .unwrap()
        .grant_id
        .unwrap();
    assert!(s.grant(&winner).await.unwrap().is_some());
}

pub(crate) async fn a_failed_redemption_leaves_the_code_unused(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let c = code("u1", 60);
    s.insert_auth_code(&c).await.unwrap();
    // A grant id that already exists makes the grant insert fail mid-transaction.
    s.insert_grant(&grant("taken", "u1"), None).await.unwrap();
    assert!(
        s.redeem_auth_code(&c.hash, t(1), &grant("taken", "u1"), None)
            .await
            .is_err()
    );
    let back = s.auth_code(&c.hash).await.unwrap().unwrap();
    assert!(back.used_at.is_none() && back.grant_id.is_none());
    assert_eq!(
        s.redeem_auth_code(&c.hash, t(2), &grant("fresh", "u1"), None)
            .await
            .unwrap(),
        RedeemOutcome::Redeemed
    );
}

pub(crate) async fn browser_sessions_live_end_and_follow_the_user(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
    let a = session("u1", 3600);
    let b = session("u1", 3600);
    let c = session("u2", 3600);
    for x in [&a, &b, &c] {
        s.insert_session(x).await.unwrap();
    }
    assert_eq!(s.user_by_id("u2").await.unwrap().unwrap().name, "bob");
    assert!(s.user_by_id("bob").await.unwrap().is_none(), "ids only");
    let live = s.live_session(&a.hash, t(1)).await.unwrap().unwrap();
    assert_eq!(live.user_id, "u1");
    assert_eq!(live.created_at, t(0));
    assert!(
        s.live_session(&a.hash, t(3600)).await.unwrap().is_none(),
        "expired"
    );

    // Logout ends one session, once.
    assert!(s.end_session(&a.hash, t(2)).await.unwrap());
    assert!(!s.end_session(&a.hash, t(3)).await.unwrap());
    assert!(s.live_session(&a.hash, t(3)).await.unwrap().is_none());
    assert!(s.live_session(&b.hash, t(3)).await.unwrap().is_some());

    // `sessions revoke --user` ends all of that user's sessions, nobody else's.
    s.revoke_user_grants("u1", revoked(4)).await.unwrap();
    assert!(s.live_session(&b.hash, t(5)).await.unwrap().is_none());
    assert!(s.live_session(&c.hash, t(5)).await.unwrap().is_some());

    // Disabling a user ends theirs too.
    s.disable_user("bob", revoked(6)).await.unwrap();
    assert!(s.live_session(&c.hash, t(7)).await.unwrap().is_none());
}

pub(crate) async fn the_janitor_purges_old_codes_and_sessions(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let fresh_code = code("u1", 60);
    let old_code = code("u1", 60);
    let mut older = old_code.clone();
    older.hash = OpaqueToken::generate(TokenKind::AuthorizationCode)
        .unwrap()
        .hash();
    older.expires_at = t(-100);
    s.insert_auth_code(&fresh_code).await.unwrap();
    s.insert_auth_code(&older).await.unwrap();
    let live = session("u1", 10_000);
    let expired = session("u1", 50);
    s.insert_session(&live).await.unwrap();
    s.insert_session(&expired).await.unwrap();
    // At t(100), keeping what ended after t(0): the code that expired at t(-100) and
    // the session that expired at t(50) go; a recently expired code stays (so a reuse is
    // still recognised for a while).
    let before = purge(&*s, t(100), t(0)).await;
    assert!(before >= 2, "{before}");
    assert!(s.auth_code(&older.hash).await.unwrap().is_none());
    assert!(s.auth_code(&fresh_code.hash).await.unwrap().is_some());
    assert!(s.live_session(&live.hash, t(100)).await.unwrap().is_some());
    assert_eq!(purge(&*s, t(100), t(0)).await, 0);
}
