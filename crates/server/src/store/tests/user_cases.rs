//! Store-suite cases for a user's "revoke all" (disable, `sessions revoke --user`,
//! `user passwd`, `user remove`): it moves the user to their next generation and deletes
//! unredeemed codes in the same transaction; the user's standing is read with each refresh
//! token and checked by each insert of a code or grant and each redemption, and none of
//! them racing a revoke-all ever leaves a live grant behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::browser_cases::{code, session};
use super::fixtures::{client_grant, grant, revoked, t, token, user};
use crate::store::*;

/// The owner read with refresh token `rt`.
async fn owner(s: &dyn Store, rt: &NewRefreshToken) -> GrantOwner {
    s.refresh_token(&rt.hash).await.unwrap().unwrap().0.owner
}

/// The user's current generation.
async fn generation(s: &dyn Store, name: &str) -> i64 {
    s.user_by_name(name).await.unwrap().unwrap().generation
}

pub(crate) async fn a_refresh_lookup_reads_the_users_standing(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let (rt, crt) = (token("g1"), token("c1"));
    assert!(s.insert_grant(&grant("g1", "u1"), Some(&rt)).await.unwrap());
    assert!(
        s.insert_grant(&client_grant("c1", "id-web"), Some(&crt))
            .await
            .unwrap()
    );
    assert_eq!(owner(&*s, &crt).await, GrantOwner::Client);
    assert_eq!(
        owner(&*s, &rt).await,
        GrantOwner::User {
            disabled: false,
            generation: 0
        }
    );
    assert_eq!(
        s.refresh_token(&rt.hash)
            .await
            .unwrap()
            .unwrap()
            .1
            .generation,
        0
    );
    // Every revoke-all moves the user on by one, whatever time it names (no clock).
    s.revoke_user_grants("u1", revoked(30)).await.unwrap();
    s.revoke_user_grants("u1", revoked(20)).await.unwrap();
    let o = owner(&*s, &rt).await;
    assert_eq!(
        o,
        GrantOwner::User {
            disabled: false,
            generation: 2
        }
    );
    assert!(!o.allows(0) && !o.allows(1) && o.allows(2));
    s.disable_user("alice", revoked(40)).await.unwrap();
    assert_eq!(
        owner(&*s, &rt).await,
        GrantOwner::User {
            disabled: true,
            generation: 3
        }
    );
    assert!(!owner(&*s, &rt).await.allows(3), "disabled");
    s.remove_user("alice", revoked(50)).await.unwrap();
    assert_eq!(owner(&*s, &rt).await, GrantOwner::Removed);
    assert_eq!(owner(&*s, &crt).await, GrantOwner::Client);
}

pub(crate) async fn what_a_sign_in_read_before_a_revoke_all_is_refused(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    // Sign-ins that read generation 0, then a revoke-all in the same second (no clock:
    // the second does not matter).
    let stale = generation(&*s, "alice").await;
    let sess = session("u1", 3600);
    s.insert_session(&sess).await.unwrap();
    assert!(s.live_session(&sess.hash, t(1)).await.unwrap().is_some());
    s.revoke_user_grants("u1", revoked(0)).await.unwrap();
    assert!(
        s.live_session(&sess.hash, t(1)).await.unwrap().is_none(),
        "session"
    );
    let mut c = code("u1", 3600);
    c.generation = stale;
    assert!(!s.insert_auth_code(&c).await.unwrap(), "code");
    assert!(s.auth_code(&c.hash).await.unwrap().is_none());
    let rt = token("g1");
    let mut g = grant("g1", "u1");
    g.generation = stale;
    assert!(!s.insert_grant(&g, Some(&rt)).await.unwrap(), "grant");
    assert!(s.grant("g1").await.unwrap().is_none());
    assert!(s.refresh_token(&rt.hash).await.unwrap().is_none());
    // Stamped with the current generation: stored and live.
    let now = generation(&*s, "alice").await;
    assert_eq!(now, stale + 1);
    let mut fresh = session("u1", 3600);
    fresh.generation = now;
    s.insert_session(&fresh).await.unwrap();
    let back = s.live_session(&fresh.hash, t(1)).await.unwrap().unwrap();
    assert_eq!(back.generation, now);
    c.generation = now;
    assert!(s.insert_auth_code(&c).await.unwrap());
    assert_eq!(s.auth_code(&c.hash).await.unwrap().unwrap().generation, now);
    g.generation = now;
    assert!(s.insert_grant(&g, Some(&rt)).await.unwrap());
    let (back, owner) = s.grant_owner("g1").await.unwrap().unwrap();
    assert_eq!(back.generation, now);
    assert!(owner.allows(back.generation));
    // Disabled, then enabled again: the generation stays where the disable put it.
    s.disable_user("alice", revoked(2)).await.unwrap();
    let mut d = code("u1", 3600);
    d.generation = now + 1;
    assert!(!s.insert_auth_code(&d).await.unwrap(), "disabled");
    s.enable_user("alice").await.unwrap();
    assert_eq!(generation(&*s, "alice").await, now + 1);
    let (_, owner) = s.grant_owner("g1").await.unwrap().unwrap();
    assert!(!owner.allows(now), "enable revives nothing");
    assert!(s.insert_auth_code(&d).await.unwrap());
    // Removed: nothing more for them; a client's own grant needs no user.
    s.remove_user("alice", revoked(3)).await.unwrap();
    let mut r = grant("g2", "u1");
    r.generation = now + 1;
    assert!(!s.insert_grant(&r, None).await.unwrap(), "removed");
    assert_eq!(
        s.grant_owner("g1").await.unwrap().unwrap().1,
        GrantOwner::Removed
    );
    assert!(
        s.insert_grant(&client_grant("c1", "id-web"), None)
            .await
            .unwrap()
    );
    assert_eq!(
        s.grant_owner("c1").await.unwrap().unwrap().1,
        GrantOwner::Client
    );
    assert!(s.grant_owner("nope").await.unwrap().is_none());
}

pub(crate) async fn every_revoke_all_deletes_unredeemed_codes(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
    let ops: [(&str, i64); 4] = [
        ("sessions", 10),
        ("passwd", 20),
        ("disable", 30),
        ("remove", 40),
    ];
    for (op, at) in ops {
        s.enable_user("alice").await.unwrap();
        let current = generation(&*s, "alice").await;
        let (mut mine, mut used) = (code("u1", 3600), code("u1", 3600));
        (mine.generation, used.generation) = (current, current);
        let bobs = code("u2", 3600);
        for c in [&mine, &used, &bobs] {
            assert!(s.insert_auth_code(c).await.unwrap(), "{op}");
        }
        let mut g = grant(&format!("g-{op}"), "u1");
        g.generation = current;
        assert_eq!(
            s.redeem_auth_code(&used.hash, t(at - 1), &g, None)
                .await
                .unwrap(),
            RedeemOutcome::Redeemed,
            "{op}"
        );
        match op {
            "sessions" => {
                s.revoke_user_grants("u1", revoked(at)).await.unwrap();
            }
            "passwd" => {
                s.set_password("alice", "$argon2id$new", Some(revoked(at)))
                    .await
                    .unwrap();
            }
            "disable" => s.disable_user("alice", revoked(at)).await.unwrap(),
            _ => {
                s.remove_user("alice", revoked(at)).await.unwrap();
            }
        }
        assert!(s.auth_code(&mine.hash).await.unwrap().is_none(), "{op}");
        // A redeemed code stays, so its reuse is still recognised; its grant is revoked.
        assert!(s.auth_code(&used.hash).await.unwrap().is_some(), "{op}");
        assert!(s.is_revoked(None, Some(&g.id)).await.unwrap(), "{op}");
        assert!(s.auth_code(&bobs.hash).await.unwrap().is_some(), "{op}");
        let mut late = grant(&format!("late-{op}"), "u1");
        late.generation = current;
        assert_eq!(
            s.redeem_auth_code(&mine.hash, t(at + 1), &late, None)
                .await
                .unwrap(),
            RedeemOutcome::Unknown,
            "{op}"
        );
        assert!(s.grant(&late.id).await.unwrap().is_none(), "{op}");
    }
}

pub(crate) async fn a_redemption_refuses_a_user_who_no_longer_stands(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    // A grant stamped with the generation before a revoke-all (as by a sign-in that read
    // the user before it): refused, the code left unused, nothing stored.
    s.revoke_user_grants("u1", revoked(100)).await.unwrap();
    let mut c = code("u1", 3600);
    c.generation = 1;
    assert!(s.insert_auth_code(&c).await.unwrap());
    let mut g = grant("g1", "u1");
    g.generation = 0;
    let rt = token("g1");
    assert_eq!(
        s.redeem_auth_code(&c.hash, t(101), &g, Some(&rt))
            .await
            .unwrap(),
        RedeemOutcome::Unknown
    );
    assert!(s.grant("g1").await.unwrap().is_none());
    assert!(s.refresh_token(&rt.hash).await.unwrap().is_none());
    assert!(
        s.auth_code(&c.hash)
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_none()
    );
    // Stamped with the current one: redeemed.
    g.generation = 1;
    assert_eq!(
        s.redeem_auth_code(&c.hash, t(101), &g, Some(&rt))
            .await
            .unwrap(),
        RedeemOutcome::Redeemed
    );
    // Disabled, or removed: refused.
    let mut c2 = code("u1", 3600);
    c2.generation = 1;
    assert!(s.insert_auth_code(&c2).await.unwrap());
    let mut g2 = grant("g2", "u1");
    g2.generation = 1;
    s.disable_user("alice", revoked(200)).await.unwrap();
    assert_eq!(
        s.redeem_auth_code(&c2.hash, t(301), &g2, None)
            .await
            .unwrap(),
        RedeemOutcome::Unknown,
        "disabled"
    );
    s.enable_user("alice").await.unwrap();
    g2.generation = 2;
    c2.generation = 2;
    assert!(s.insert_auth_code(&c2).await.unwrap());
    s.remove_user("alice", revoked(302)).await.unwrap();
    assert_eq!(
        s.redeem_auth_code(&c2.hash, t(303), &g2, None)
            .await
            .unwrap(),
        RedeemOutcome::Unknown,
        "removed"
    );
    assert!(s.grant("g2").await.unwrap().is_none());
}

pub(crate) async fn passwd_evicts_unless_asked_to_keep(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let kept = session("u1", 3600);
    s.insert_session(&kept).await.unwrap();
    s.insert_grant(&grant("g1", "u1"), None).await.unwrap();
    s.set_password("alice", "$argon2id$y", None).await.unwrap();
    assert_eq!(generation(&*s, "alice").await, 0, "--keep-sessions");
    assert!(s.live_session(&kept.hash, t(2)).await.unwrap().is_some());
    assert!(!s.is_revoked(None, Some("g1")).await.unwrap());
    assert_eq!(
        s.user_by_name("alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$y"
    );
    s.set_password("alice", "$argon2id$z", Some(revoked(3)))
        .await
        .unwrap();
    assert!(s.live_session(&kept.hash, t(4)).await.unwrap().is_none());
    assert!(s.is_revoked(None, Some("g1")).await.unwrap());
    let alice = s.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(alice.password_hash, "$argon2id$z");
    assert!(!alice.disabled);
    assert_eq!(alice.generation, 1);
    // An unknown name changes nothing, feeds nothing.
    let before = s.last_revocation_seq().await.unwrap();
    assert!(matches!(
        s.set_password("carol", "$argon2id$z", Some(revoked(5)))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.last_revocation_seq().await.unwrap(), before);
}

pub(crate) async fn enable_restores_the_user_not_their_grants(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let rt = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&rt)).await.unwrap();
    s.disable_user("alice", revoked(10)).await.unwrap();
    assert_eq!(s.enable_user("alice").await.unwrap(), "u1");
    assert!(!s.user_by_name("alice").await.unwrap().unwrap().disabled);
    let (_, g) = s.refresh_token(&rt.hash).await.unwrap().unwrap();
    assert!(g.revoked_at.is_some());
    assert!(!owner(&*s, &rt).await.allows(g.generation));
    let current = generation(&*s, "alice").await;
    assert_eq!(current, 1);
    assert!(
        owner(&*s, &rt).await.allows(current),
        "a new sign-in stands"
    );
    assert!(matches!(
        s.enable_user("carol").await,
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) async fn remove_revokes_everything_and_frees_the_name(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    let rt = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&rt)).await.unwrap();
    let sess = session("u1", 3600);
    s.insert_session(&sess).await.unwrap();
    let before = s.last_revocation_seq().await.unwrap();
    assert!(matches!(
        s.remove_user("carol", revoked(1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.last_revocation_seq().await.unwrap(), before);
    assert_eq!(s.remove_user("alice", revoked(2)).await.unwrap(), "u1");
    assert!(s.user_by_name("alice").await.unwrap().is_none());
    assert!(s.user_by_id("u1").await.unwrap().is_none());
    assert!(s.is_revoked(None, Some("g1")).await.unwrap());
    assert!(s.live_session(&sess.hash, t(3)).await.unwrap().is_none());
    assert!(s.user_grants("u1", t(3)).await.unwrap().is_empty());
    // The name is free again, under another id; the old grant stays dead.
    s.insert_user(&user("u9", "alice")).await.unwrap();
    assert_eq!(s.user_by_name("alice").await.unwrap().unwrap().id, "u9");
    assert_eq!(owner(&*s, &rt).await, GrantOwner::Removed);
    assert!(matches!(
        s.remove_user("alice", revoked(4)).await,
        Ok(id) if id == "u9"
    ));
}

pub(crate) async fn a_redemption_racing_a_disable_never_leaves_a_live_grant(s: Arc<dyn Store>) {
    const ROUNDS: usize = 20;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut redeemed, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        assert!(Instant::now() < deadline, "round {round} ran out of time");
        let (id, name) = (format!("u{round}"), format!("user{round}"));
        s.insert_user(&user(&id, &name)).await.unwrap();
        let c = code(&id, 3600);
        s.insert_auth_code(&c).await.unwrap();
        let gid = format!("g{round}");
        let redeem = {
            let s = Arc::clone(&s);
            let (g, rt) = (grant(&gid, &id), token(&gid));
            async move {
                s.redeem_auth_code(&c.hash, t(1), &g, Some(&rt))
                    .await
                    .unwrap()
            }
        };
        let disable = {
            let s = Arc::clone(&s);
            async move { s.disable_user(&name, revoked(1)).await.unwrap() }
        };
        // Either may start first.
        let (redeem, disable) = if round % 2 == 0 {
            let r = tokio::spawn(redeem);
            (r, tokio::spawn(disable))
        } else {
            let d = tokio::spawn(disable);
            (tokio::spawn(redeem), d)
        };
        let outcome = redeem.await.unwrap();
        disable.await.unwrap();
        // Once the disable has returned: the code was refused (nothing stored), or the
        // grant it issued is revoked and in the feed.
        match outcome {
            RedeemOutcome::Redeemed => {
                redeemed += 1;
                let g = s.grant(&gid).await.unwrap().unwrap();
                assert!(g.revoked_at.is_some(), "round {round}: live grant");
                assert!(s.is_revoked(None, Some(&gid)).await.unwrap());
            }
            RedeemOutcome::Unknown => {
                refused += 1;
                assert!(s.grant(&gid).await.unwrap().is_none(), "round {round}");
            }
            other => panic!("round {round}: {other:?}"),
        }
        assert!(s.user_grants(&id, t(2)).await.unwrap().is_empty());
    }
    assert_eq!(redeemed + refused, ROUNDS);
}

pub(crate) async fn a_sign_in_racing_a_revoke_all_never_leaves_a_live_grant(s: Arc<dyn Store>) {
    const ROUNDS: usize = 20;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut stored, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        assert!(Instant::now() < deadline, "round {round} ran out of time");
        let (id, name) = (format!("u{round}"), format!("user{round}"));
        s.insert_user(&user(&id, &name)).await.unwrap();
        // What a sign-in read with the credentials, before the revoke-all ran.
        let seen = generation(&*s, &name).await;
        let mut c = code(&id, 3600);
        c.generation = seen;
        let gid = format!("g{round}");
        let mut g = grant(&gid, &id);
        g.generation = seen;
        let sign_in = {
            let (s, c) = (Arc::clone(&s), c.clone());
            async move {
                let code = s.insert_auth_code(&c).await.unwrap();
                let grant = s.insert_grant(&g, Some(&token(&g.id))).await.unwrap();
                (code, grant)
            }
        };
        let revoke_all = {
            let (s, id) = (Arc::clone(&s), id.clone());
            async move { s.revoke_user_grants(&id, revoked(1)).await.unwrap() }
        };
        let (sign_in, revoke_all) = if round % 2 == 0 {
            let a = tokio::spawn(sign_in);
            (a, tokio::spawn(revoke_all))
        } else {
            let b = tokio::spawn(revoke_all);
            (tokio::spawn(sign_in), b)
        };
        let (_, grant_stored) = sign_in.await.unwrap();
        revoke_all.await.unwrap();
        // Once the revoke-all has returned: no code of the sign-in is left, and its grant
        // was refused or revoked (and in the feed).
        assert!(
            s.auth_code(&c.hash).await.unwrap().is_none(),
            "round {round}"
        );
        if grant_stored {
            stored += 1;
            assert!(
                s.is_revoked(None, Some(&gid)).await.unwrap(),
                "round {round}"
            );
        } else {
            refused += 1;
            assert!(s.grant(&gid).await.unwrap().is_none(), "round {round}");
        }
        assert!(
            s.user_grants(&id, t(2)).await.unwrap().is_empty(),
            "round {round}"
        );
    }
    assert_eq!(stored + refused, ROUNDS);
}
