//! Store-suite cases for second factors: a TOTP factor is begun, confirmed once and its
//! steps used once (one winner among concurrent callers); recovery codes are used once;
//! pending sign-ins are live only while their user stands and are taken once; a reset
//! or removal deletes all of it and revokes what the user holds.

use std::sync::Arc;

use tessera_token::{OpaqueToken, TokenHash, TokenKind};

use super::browser_cases::session;
use super::fixtures::{revoked, t, user};
use crate::store::*;

fn totp(user_id: &str, sealed: &[u8]) -> TotpRecord {
    TotpRecord {
        user_id: user_id.into(),
        sealed_secret: sealed.to_vec(),
        last_step: None,
        created_at: t(0),
        confirmed_at: None,
    }
}

fn pending(user_id: &str, generation: i64, expires: i64) -> PendingSignIn {
    PendingSignIn {
        hash: OpaqueToken::generate(TokenKind::AccessToken)
            .unwrap()
            .hash(),
        user_id: user_id.into(),
        generation,
        auth_time: t(0),
        expires_at: t(expires),
        purpose: PendingPurpose::Enrol,
    }
}

fn codes() -> Vec<TokenHash> {
    (0..10u8).map(|i| TokenHash::of(&[i])).collect()
}

pub(crate) async fn a_totp_factor_is_confirmed_once_and_each_step_used_once(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    assert!(s.totp("u1").await.unwrap().is_none());
    assert!(s.begin_totp(&totp("u1", b"first")).await.unwrap());
    assert!(
        s.begin_totp(&totp("u1", b"second")).await.unwrap(),
        "an unconfirmed one is replaced"
    );
    let f = s.totp("u1").await.unwrap().unwrap();
    assert_eq!(f.sealed_secret, b"second");
    assert_eq!(f.confirmed_at, None);
    assert!(
        !s.use_totp_step("u1", 5).await.unwrap(),
        "not before confirmation"
    );
    assert!(
        s.confirm_totp("u1", b"second", 10, &codes(), revoked(1))
            .await
            .unwrap()
    );
    assert!(
        !s.confirm_totp("u1", b"second", 11, &codes(), revoked(2))
            .await
            .unwrap(),
        "confirmed once"
    );
    assert!(
        !s.begin_totp(&totp("u1", b"third")).await.unwrap(),
        "a confirmed one stays"
    );
    let f = s.totp("u1").await.unwrap().unwrap();
    assert_eq!(
        (f.sealed_secret.as_slice(), f.last_step, f.confirmed_at),
        (&b"second"[..], Some(10), Some(t(1)))
    );
    assert!(
        !s.use_totp_step("u1", 10).await.unwrap(),
        "the confirming step is used"
    );
    assert!(
        !s.use_totp_step("u1", 9).await.unwrap(),
        "an earlier step is refused"
    );
    assert!(s.use_totp_step("u1", 11).await.unwrap());
    assert!(!s.use_totp_step("u1", 11).await.unwrap());
    assert!(
        !s.use_totp_step("u2", 12).await.unwrap(),
        "no factor, no use"
    );
}

pub(crate) async fn a_totp_step_has_exactly_one_winner(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.begin_totp(&totp("u1", b"x")).await.unwrap();
    s.confirm_totp("u1", b"x", 1, &codes(), revoked(1))
        .await
        .unwrap();
    for step in 2..5 {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = Arc::clone(&s);
                tokio::spawn(async move { s.use_totp_step("u1", step).await.unwrap() })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            wins += u32::from(task.await.unwrap());
        }
        assert_eq!(wins, 1, "step {step}: one winner among eight");
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.use_recovery_code("u1", &TokenHash::of(&[3]), t(2))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += u32::from(task.await.unwrap());
    }
    assert_eq!(wins, 1, "a recovery code: one winner among eight");
}

pub(crate) async fn recovery_codes_are_used_once_and_replaced_on_confirmation(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
    s.begin_totp(&totp("u1", b"x")).await.unwrap();
    s.confirm_totp("u1", b"x", 1, &codes(), revoked(1))
        .await
        .unwrap();
    assert_eq!(s.recovery_codes_left("u1").await.unwrap(), 10);
    let one = TokenHash::of(&[1]);
    assert!(
        !s.use_recovery_code("u2", &one, t(2)).await.unwrap(),
        "not another user's"
    );
    assert!(s.use_recovery_code("u1", &one, t(2)).await.unwrap());
    assert!(
        !s.use_recovery_code("u1", &one, t(3)).await.unwrap(),
        "once"
    );
    assert!(
        !s.use_recovery_code("u1", &TokenHash::of(b"nope"), t(3))
            .await
            .unwrap()
    );
    assert_eq!(s.recovery_codes_left("u1").await.unwrap(), 9);
}

pub(crate) async fn pending_sign_ins_follow_the_user_and_are_taken_once(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let p = pending("u1", 0, 300);
    s.insert_pending(&p).await.unwrap();
    assert_eq!(s.pending(&p.hash, t(1)).await.unwrap(), Some(p.clone()));
    assert_eq!(s.pending(&p.hash, t(300)).await.unwrap(), None, "expired");
    assert!(s.take_pending(&p.hash).await.unwrap());
    assert!(!s.take_pending(&p.hash).await.unwrap(), "taken once");
    assert_eq!(s.pending(&p.hash, t(1)).await.unwrap(), None);
    // A revoke-all (here `user passwd`) ends a pending sign-in too.
    let p = pending("u1", 0, 300);
    s.insert_pending(&p).await.unwrap();
    s.set_password("alice", "$argon2id$y", Some(revoked(2)))
        .await
        .unwrap();
    assert_eq!(s.pending(&p.hash, t(3)).await.unwrap(), None);
}

pub(crate) async fn an_mfa_reset_removes_factors_and_ends_sessions(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
    for u in ["u1", "u2"] {
        s.begin_totp(&totp(u, b"x")).await.unwrap();
        s.confirm_totp(u, b"x", 1, &codes(), revoked(1))
            .await
            .unwrap();
    }
    // Confirming moved alice to generation 1.
    let live = SessionRecord {
        generation: 1,
        ..session("u1", 1000)
    };
    s.insert_session(&live).await.unwrap();
    let p = pending("u1", 1, 300);
    s.insert_pending(&p).await.unwrap();
    assert!(s.reset_mfa("u1", revoked(5)).await.unwrap());
    assert!(s.totp("u1").await.unwrap().is_none());
    assert_eq!(s.recovery_codes_left("u1").await.unwrap(), 0);
    assert!(
        s.live_session(&live.hash, t(6)).await.unwrap().is_none(),
        "sessions end"
    );
    assert!(
        !s.take_pending(&p.hash).await.unwrap(),
        "pending sign-ins go"
    );
    assert_eq!(s.user_by_id("u1").await.unwrap().unwrap().generation, 2);
    assert!(
        s.totp("u2").await.unwrap().is_some(),
        "another user's stays"
    );
    assert!(
        !s.reset_mfa("u9", revoked(5)).await.unwrap(),
        "no such user"
    );
    // Removal deletes the factors with the user: a new user of that id starts bare.
    s.remove_user("bob", revoked(6)).await.unwrap();
    assert!(s.totp("u2").await.unwrap().is_none());
    assert_eq!(s.recovery_codes_left("u2").await.unwrap(), 0);
}

/// Confirming a factor is a revoke-all: sessions, pending sign-ins and grants had with the
/// password alone end with it; and it confirms only the secret the code was checked against.
pub(crate) async fn confirming_a_factor_ends_what_was_had_without_it(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
    let before = session("u1", 1000);
    s.insert_session(&before).await.unwrap();
    let bobs = session("u2", 1000);
    s.insert_session(&bobs).await.unwrap();
    let p = pending("u1", 0, 300);
    s.insert_pending(&p).await.unwrap();
    s.begin_totp(&totp("u1", b"checked")).await.unwrap();
    // A concurrent begin replaced the secret the code was checked against.
    s.begin_totp(&totp("u1", b"replaced")).await.unwrap();
    assert!(
        !s.confirm_totp("u1", b"checked", 1, &codes(), revoked(1))
            .await
            .unwrap(),
        "not a secret the user never checked"
    );
    assert!(s.live_session(&before.hash, t(2)).await.unwrap().is_some());
    assert_eq!(s.user_by_id("u1").await.unwrap().unwrap().generation, 0);
    assert!(
        s.confirm_totp("u1", b"replaced", 1, &codes(), revoked(3))
            .await
            .unwrap()
    );
    assert_eq!(s.user_by_id("u1").await.unwrap().unwrap().generation, 1);
    assert!(
        s.live_session(&before.hash, t(4)).await.unwrap().is_none(),
        "the password-only session ends"
    );
    assert_eq!(s.pending(&p.hash, t(4)).await.unwrap(), None);
    assert!(
        s.live_session(&bobs.hash, t(4)).await.unwrap().is_some(),
        "another user's stays"
    );
    let after = SessionRecord {
        generation: 1,
        ..session("u1", 1000)
    };
    s.insert_session(&after).await.unwrap();
    assert!(
        s.live_session(&after.hash, t(4)).await.unwrap().is_some(),
        "a session stamped with the new generation stands"
    );
}
