//! Store-suite cases for passkeys: a credential id is registered once across all users,
//! registering ends what the user had without it, a use replaces the stored counter only
//! if unchanged (one winner), a ceremony is taken once, only while live and only as the
//! kind it was started as (one winner among concurrent takers), and a reset removes it all.

use std::sync::Arc;

use tessera_token::{OpaqueToken, TokenHash, TokenKind};

use super::browser_cases::session;
use super::fixtures::{revoked, t, user};
use crate::store::*;

fn passkey(user_id: &str, id: &[u8], created: i64) -> PasskeyRecord {
    PasskeyRecord {
        credential_id: id.to_vec(),
        user_id: user_id.into(),
        label: "passkey".into(),
        passkey: format!("{{\"counter\":0,\"id\":{id:?}}}"),
        created_at: t(created),
        last_used_at: None,
        suspect_at: None,
    }
}

fn ceremony(user_id: &str, kind: CeremonyKind, expires: i64) -> CeremonyRecord {
    CeremonyRecord {
        hash: OpaqueToken::generate(TokenKind::AccessToken)
            .unwrap()
            .hash(),
        kind,
        user_id: user_id.into(),
        bound_to: Some(TokenHash::of(b"pending")),
        state: "{\"challenge\":\"c\"}".into(),
        expires_at: t(expires),
    }
}

pub(crate) async fn a_credential_id_is_registered_once_across_users(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
    let before = session("u1", 1000);
    s.insert_session(&before).await.unwrap();
    assert!(
        s.add_passkey(&passkey("u1", b"cred-a", 1), revoked(1))
            .await
            .unwrap()
    );
    assert_eq!(s.user_by_id("u1").await.unwrap().unwrap().generation, 1);
    assert!(
        s.live_session(&before.hash, t(2)).await.unwrap().is_none(),
        "a new passkey ends what was had without it"
    );
    assert!(
        !s.add_passkey(&passkey("u1", b"cred-a", 2), revoked(2))
            .await
            .unwrap(),
        "the same credential again"
    );
    let bobs = session("u2", 1000);
    s.insert_session(&bobs).await.unwrap();
    assert!(
        !s.add_passkey(&passkey("u2", b"cred-a", 3), revoked(3))
            .await
            .unwrap(),
        "another user's credential id"
    );
    assert!(
        s.live_session(&bobs.hash, t(4)).await.unwrap().is_some(),
        "a refused registration revokes nothing"
    );
    assert_eq!(s.user_by_id("u2").await.unwrap().unwrap().generation, 0);
    assert!(
        s.add_passkey(&passkey("u1", b"cred-b", 4), revoked(4))
            .await
            .unwrap()
    );
    let ids: Vec<Vec<u8>> = s
        .passkeys("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.credential_id)
        .collect();
    assert_eq!(ids, vec![b"cred-a".to_vec(), b"cred-b".to_vec()]);
    assert!(s.passkeys("u2").await.unwrap().is_empty());
}

/// The enrolment page began a TOTP enrolment and the user registered a passkey instead:
/// the unconfirmed secret goes in the same transaction (it must not stay confirmable by
/// the password alone); a confirmed TOTP factor stays.
pub(crate) async fn a_passkey_ends_an_unconfirmed_totp_enrolment_only(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
    let totp = |id: &str| TotpRecord {
        user_id: id.into(),
        sealed_secret: b"sealed".to_vec(),
        last_step: None,
        created_at: t(0),
        confirmed_at: None,
    };
    assert!(s.begin_totp(&totp("u1")).await.unwrap());
    assert!(
        s.add_passkey(&passkey("u1", b"cred-a", 1), revoked(1))
            .await
            .unwrap()
    );
    assert_eq!(
        s.totp("u1").await.unwrap(),
        None,
        "the enrolment under way ended"
    );
    assert!(s.begin_totp(&totp("u2")).await.unwrap());
    assert!(
        s.confirm_totp("u2", b"sealed", 7, &[TokenHash::of(b"c")], revoked(2))
            .await
            .unwrap()
    );
    assert!(
        s.add_passkey(&passkey("u2", b"cred-b", 3), revoked(3))
            .await
            .unwrap()
    );
    let kept = s
        .totp("u2")
        .await
        .unwrap()
        .expect("a confirmed factor stays");
    assert!(kept.confirmed_at.is_some());
}

pub(crate) async fn a_passkey_use_has_exactly_one_winner(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let p = passkey("u1", b"cred", 1);
    s.add_passkey(&p, revoked(1)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = Arc::clone(&s);
        let old = p.passkey.clone();
        tasks.push(tokio::spawn(async move {
            s.update_passkey(b"cred", &old, &format!("{{\"counter\":{i}}}"), t(5))
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += u32::from(task.await.unwrap());
    }
    assert_eq!(wins, 1, "one use of one stored counter");
    let stored = s.passkeys("u1").await.unwrap().remove(0);
    assert_ne!(stored.passkey, p.passkey);
    assert_eq!(stored.last_used_at, Some(t(5)));
    assert!(
        !s.update_passkey(b"other", &p.passkey, "{}", t(6))
            .await
            .unwrap(),
        "an unknown credential"
    );
    assert!(s.mark_passkey_suspect(b"cred", t(7)).await.unwrap());
    assert!(
        !s.mark_passkey_suspect(b"cred", t(8)).await.unwrap(),
        "marked once"
    );
    assert!(!s.mark_passkey_suspect(b"other", t(8)).await.unwrap());
    let stored = s.passkeys("u1").await.unwrap().remove(0);
    assert_eq!(stored.suspect_at, Some(t(7)));
}

/// The cap on a user's live passwordless ceremonies: the oldest go, another kind or
/// another user's stay.
pub(crate) async fn trimming_keeps_the_latest_ceremonies_of_one_user_and_kind(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
    let first: Vec<CeremonyRecord> = (0..6)
        .map(|i| ceremony("u1", CeremonyKind::FirstFactor, 300 + i))
        .collect();
    for c in &first {
        s.insert_ceremony(c).await.unwrap();
    }
    let second = ceremony("u1", CeremonyKind::SecondFactor, 200);
    let bobs = ceremony("u2", CeremonyKind::FirstFactor, 100);
    s.insert_ceremony(&second).await.unwrap();
    s.insert_ceremony(&bobs).await.unwrap();
    s.trim_ceremonies("u1", CeremonyKind::FirstFactor, 4)
        .await
        .unwrap();
    for (i, c) in first.iter().enumerate() {
        let taken = s
            .take_ceremony(&c.hash, CeremonyKind::FirstFactor, t(10))
            .await
            .unwrap();
        assert_eq!(taken.is_some(), i >= 2, "ceremony {i}: the two oldest went");
    }
    assert!(
        s.take_ceremony(&second.hash, CeremonyKind::SecondFactor, t(10))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.take_ceremony(&bobs.hash, CeremonyKind::FirstFactor, t(10))
            .await
            .unwrap()
            .is_some()
    );
}

pub(crate) async fn a_ceremony_is_taken_once_live_and_as_its_kind(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let c = ceremony("u1", CeremonyKind::SecondFactor, 300);
    s.insert_ceremony(&c).await.unwrap();
    let taken = s
        .take_ceremony(&c.hash, CeremonyKind::SecondFactor, t(10))
        .await
        .unwrap();
    assert_eq!(taken.as_ref(), Some(&c));
    assert_eq!(
        s.take_ceremony(&c.hash, CeremonyKind::SecondFactor, t(11))
            .await
            .unwrap(),
        None,
        "used once"
    );
    let late = ceremony("u1", CeremonyKind::Register, 300);
    s.insert_ceremony(&late).await.unwrap();
    assert_eq!(
        s.take_ceremony(&late.hash, CeremonyKind::Register, t(300))
            .await
            .unwrap(),
        None,
        "expired"
    );
    let other = ceremony("u1", CeremonyKind::FirstFactor, 300);
    s.insert_ceremony(&other).await.unwrap();
    assert_eq!(
        s.take_ceremony(&other.hash, CeremonyKind::SecondFactor, t(1))
            .await
            .unwrap(),
        None,
        "not as another kind"
    );
    assert_eq!(
        s.take_ceremony(&other.hash, CeremonyKind::FirstFactor, t(1))
            .await
            .unwrap(),
        None,
        "a wrong take ends it too"
    );
    let raced = ceremony("u1", CeremonyKind::FirstFactor, 300);
    s.insert_ceremony(&raced).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = Arc::clone(&s);
        let hash = raced.hash;
        tasks.push(tokio::spawn(async move {
            s.take_ceremony(&hash, CeremonyKind::FirstFactor, t(1))
                .await
                .unwrap()
                .is_some()
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += u32::from(task.await.unwrap());
    }
    assert_eq!(wins, 1, "one winner");
}

pub(crate) async fn an_mfa_reset_removes_passkeys_and_ceremonies(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
    s.add_passkey(&passkey("u1", b"a", 1), revoked(1))
        .await
        .unwrap();
    s.add_passkey(&passkey("u2", b"b", 1), revoked(1))
        .await
        .unwrap();
    let c = ceremony("u1", CeremonyKind::FirstFactor, 300);
    s.insert_ceremony(&c).await.unwrap();
    let sess = SessionRecord {
        generation: 1,
        ..session("u1", 1000)
    };
    s.insert_session(&sess).await.unwrap();
    assert!(s.reset_mfa("u1", revoked(2)).await.unwrap());
    assert!(s.passkeys("u1").await.unwrap().is_empty());
    assert_eq!(
        s.passkeys("u2").await.unwrap().len(),
        1,
        "another user's stay"
    );
    assert!(s.live_session(&sess.hash, t(3)).await.unwrap().is_none());
    assert_eq!(
        s.take_ceremony(&c.hash, CeremonyKind::FirstFactor, t(3))
            .await
            .unwrap(),
        None
    );
}

pub(crate) async fn the_janitor_purges_dead_ceremonies_only(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let dead = ceremony("u1", CeremonyKind::FirstFactor, 100);
    let live = ceremony("u1", CeremonyKind::FirstFactor, 2000);
    s.insert_ceremony(&dead).await.unwrap();
    s.insert_ceremony(&live).await.unwrap();
    let purged = s
        .purge_expired(&Purge {
            now: t(1000),
            revoked_before: t(0),
            audit_before: t(0),
            batch: 10,
        })
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(
        s.take_ceremony(&live.hash, CeremonyKind::FirstFactor, t(1000))
            .await
            .unwrap()
            .is_some()
    );
}
