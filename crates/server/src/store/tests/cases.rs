//! The cases of the store suite: every operation, the transactions (a failure mid-way
//! leaves nothing behind) and concurrency (one winner per refresh token).

use std::sync::Arc;
use std::time::Duration;

use super::fixtures::{
    alice_and_bob, client, client_grant, grant, key, purge, revoked, t, token, user,
};
use crate::store::KeyChange;
use crate::store::*;

pub(super) use super::browser_cases::*;
pub(super) use super::feed_cases::*;
pub(super) use super::mfa_cases::*;
pub(super) use super::passkey_cases::*;
pub(super) use super::user_cases::*;

pub(super) async fn clients_round_trip_and_names_are_unique(s: Arc<dyn Store>) {
    let c = client("web");
    s.insert_client(&c).await.unwrap();
    assert!(matches!(
        s.insert_client(&client("web")).await,
        Err(StoreError::Conflict(_))
    ));
    let mut other_id = client("web");
    other_id.id = "id-elsewhere".into();
    assert!(matches!(
        s.insert_client(&other_id).await,
        Err(StoreError::Conflict(_))
    ));
    let back = s.client("id-web").await.unwrap().unwrap();
    assert_eq!(back.name, "web");
    assert_eq!(back.secret_hash, c.secret_hash);
    assert_eq!(back.grant_types, c.grant_types);
    assert_eq!(back.scope, c.scope);
    assert_eq!(back.audience, c.audience);
    assert_eq!(back.redirect_uris, c.redirect_uris);
    assert_eq!(back.signing_alg, c.signing_alg);
    assert_eq!(back.id_token_alg, c.id_token_alg);
    assert_eq!(back.created_at, c.created_at);
    assert!(s.client("web").await.unwrap().is_none(), "ids only");
    assert_eq!(
        s.client_by_id_or_name("web").await.unwrap().unwrap().id,
        "id-web"
    );
    assert_eq!(
        s.client_by_id_or_name("id-web").await.unwrap().unwrap().id,
        "id-web"
    );
    // An id wins over another client's equal name.
    let mut tricky = client("id-web");
    tricky.id = "id-tricky".into();
    tricky.secret_hash = None;
    tricky.signing_alg = None;
    tricky.id_token_alg = None;
    tricky.scope = tessera_token::Scope::default();
    s.insert_client(&tricky).await.unwrap();
    assert_eq!(
        s.client_by_id_or_name("id-web").await.unwrap().unwrap().id,
        "id-web"
    );
    let public = s.client("id-tricky").await.unwrap().unwrap();
    assert!(public.is_public());
    assert_eq!(public.signing_alg, None);
    assert_eq!(public.id_token_alg, None);
    assert!(public.scope.is_empty());
    let names: Vec<String> = s
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["id-web", "web"]);
}

pub(super) async fn client_secrets_and_removal(s: Arc<dyn Store>) {
    s.insert_client(&client("web")).await.unwrap();
    let new = token("x").hash;
    s.set_client_secret("id-web", &new).await.unwrap();
    assert_eq!(
        s.client("id-web").await.unwrap().unwrap().secret_hash,
        Some(new)
    );
    assert!(matches!(
        s.set_client_secret("id-nobody", &new).await,
        Err(StoreError::NotFound(_))
    ));
    let mut public = client("spa");
    public.secret_hash = None;
    s.insert_client(&public).await.unwrap();
    assert!(
        matches!(
            s.set_client_secret("id-spa", &new).await,
            Err(StoreError::NotFound(_))
        ),
        "a public client gets no secret"
    );
    s.insert_grant(&client_grant("g1", "id-web"), None)
        .await
        .unwrap();
    s.remove_client("id-web", revoked(1)).await.unwrap();
    assert!(s.client("id-web").await.unwrap().is_none());
    assert!(s.is_revoked(None, Some("cc_id-web")).await.unwrap());
    assert!(s.is_revoked(None, Some("g1")).await.unwrap());
    assert_eq!(s.grant("g1").await.unwrap().unwrap().revoked_at, Some(t(1)));
    assert!(s.client("id-spa").await.unwrap().is_some());
}

pub(super) async fn a_clients_id_token_alg_changes_in_place(s: Arc<dyn Store>) {
    use tessera_token::Algorithm;
    let mut c = client("rp");
    c.id_token_alg = None;
    s.insert_client(&c).await.unwrap();
    s.insert_grant(&client_grant("g1", "id-rp"), None)
        .await
        .unwrap();
    s.set_client_id_token_alg("id-rp", Algorithm::Es256)
        .await
        .unwrap();
    let back = s.client("id-rp").await.unwrap().unwrap();
    assert_eq!(back.id_token_alg, Some(Algorithm::Es256));
    // Nothing else changes: same id, secret, access-token algorithm, live grants.
    assert_eq!(back.secret_hash, c.secret_hash);
    assert_eq!(back.signing_alg, c.signing_alg);
    assert_eq!(back.created_at, c.created_at);
    assert!(!s.is_revoked(None, Some("g1")).await.unwrap());
    s.set_client_id_token_alg("id-rp", Algorithm::Rs256)
        .await
        .unwrap();
    assert_eq!(
        s.client("id-rp").await.unwrap().unwrap().id_token_alg,
        Some(Algorithm::Rs256)
    );
    assert!(
        matches!(
            s.set_client_id_token_alg("rp", Algorithm::Rs256).await,
            Err(StoreError::NotFound(_))
        ),
        "ids only, never names"
    );
}

pub(super) async fn users_round_trip_and_names_are_unique(s: Arc<dyn Store>) {
    s.insert_user(&user("u2", "bob")).await.unwrap();
    s.insert_user(&user("u1", "alice")).await.unwrap();
    assert!(matches!(
        s.insert_user(&user("u3", "alice")).await,
        Err(StoreError::Conflict(_))
    ));
    let alice = s.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(alice.id, "u1");
    assert_eq!(alice.password_hash, "$argon2id$x");
    assert!(!alice.disabled);
    assert_eq!(alice.created_at, t(0));
    assert!(s.user_by_name("carol").await.unwrap().is_none());
    s.set_password("alice", "$argon2id$y", None).await.unwrap();
    assert_eq!(
        s.user_by_name("alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$y"
    );
    assert!(matches!(
        s.set_password("carol", "$argon2id$z", None).await,
        Err(StoreError::NotFound(_))
    ));
    let names: Vec<String> = s
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
}

pub(super) async fn dpop_bindings_round_trip(s: Arc<dyn Store>) {
    // A client's dpop_bound_access_tokens: stored, listed, changed in place by id only.
    let mut c = client("spa");
    c.dpop_bound_access_tokens = true;
    s.insert_client(&c).await.unwrap();
    assert!(
        s.client("id-spa")
            .await
            .unwrap()
            .unwrap()
            .dpop_bound_access_tokens
    );
    s.insert_client(&client("web")).await.unwrap();
    assert!(
        !s.client("id-web")
            .await
            .unwrap()
            .unwrap()
            .dpop_bound_access_tokens
    );
    s.set_client_dpop_bound("id-web", true).await.unwrap();
    s.set_client_dpop_bound("id-spa", false).await.unwrap();
    let listed: Vec<(String, bool)> = s
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.dpop_bound_access_tokens))
        .collect();
    assert_eq!(
        listed,
        [("id-spa".to_owned(), false), ("id-web".to_owned(), true)]
    );
    assert!(matches!(
        s.set_client_dpop_bound("web", true).await,
        Err(StoreError::NotFound(_))
    ));
    // A grant's key binding comes back with the grant and with its refresh tokens.
    alice_and_bob(&*s).await;
    let first = token("g1");
    let mut bound = grant("g1", "u1");
    bound.dpop_jkt = Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into());
    // With the sign-in's amr beside it, each in its own column (both text).
    bound.amr = Amr::password_and_otp();
    s.insert_grant(&bound, Some(&first)).await.unwrap();
    let g = s.grant("g1").await.unwrap().unwrap();
    assert_eq!(
        (g.dpop_jkt, g.amr),
        (bound.dpop_jkt.clone(), bound.amr.clone())
    );
    let (g, _) = s.grant_owner("g1").await.unwrap().unwrap();
    assert_eq!(
        (g.dpop_jkt, g.amr),
        (bound.dpop_jkt.clone(), bound.amr.clone())
    );
    let (_, g) = s.refresh_token(&first.hash).await.unwrap().unwrap();
    assert_eq!(
        (g.dpop_jkt, g.amr),
        (bound.dpop_jkt.clone(), bound.amr.clone())
    );
    let plain = token("g2");
    s.insert_grant(&grant("g2", "u1"), Some(&plain))
        .await
        .unwrap();
    let (_, g) = s.refresh_token(&plain.hash).await.unwrap().unwrap();
    assert_eq!((g.dpop_jkt, g.amr), (None, Amr::password()));
    // An authorization code's dpop_jkt (RFC 9449 section 10) comes back with it.
    let mut code = super::browser_cases::code("u1", 60);
    code.dpop_jkt = bound.dpop_jkt.clone();
    code.amr = Amr::password_and_otp();
    assert!(s.insert_auth_code(&code).await.unwrap());
    let back = s.auth_code(&code.hash).await.unwrap().unwrap();
    assert_eq!((back.dpop_jkt, back.amr), (bound.dpop_jkt, code.amr));
}

pub(super) async fn rotation_marks_the_parent_and_stores_the_successor(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    let first = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    let g = s.grant("g1").await.unwrap().unwrap();
    assert_eq!(g.user_id.as_deref(), Some("u1"));
    assert_eq!(g.scope.to_string(), "a");
    assert_eq!(g.audience, ["api"]);
    assert_eq!((g.created_at, g.expires_at), (t(0), t(86_400)));
    assert_eq!(g.revoked_at, None);
    assert!(s.grant("g-nope").await.unwrap().is_none());

    let (rec, g) = s.refresh_token(&first.hash).await.unwrap().unwrap();
    assert_eq!((rec.hash, rec.grant_id.as_str()), (first.hash, "g1"));
    assert_eq!(
        (rec.issued_at, rec.expires_at, rec.used_at),
        (t(0), t(3600), None)
    );
    assert_eq!(g.id, "g1");

    let next = token("g1");
    assert_eq!(
        s.rotate_refresh_token(&first.hash, &next, t(5), None)
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
    let (rec, _) = s.refresh_token(&first.hash).await.unwrap().unwrap();
    assert_eq!(rec.used_at, Some(t(5)));
    let (rec, _) = s.refresh_token(&next.hash).await.unwrap().unwrap();
    assert_eq!(rec.used_at, None);
    assert_eq!(
        s.rotate_refresh_token(&first.hash, &token("g1"), t(6), None)
            .await
            .unwrap(),
        RotateOutcome::AlreadyUsed { used_at: t(5) }
    );
    let stranger = token("g1");
    assert_eq!(
        s.rotate_refresh_token(&stranger.hash, &token("g1"), t(6), None)
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
    assert!(s.refresh_token(&stranger.hash).await.unwrap().is_none());
}

/// RFC 9449 section 5: the rotation that answers a public client's DPoP refresh binds an
/// unbound family, in its own transaction; a bound family keeps its key, and a caller
/// who lost the rotation binds nothing.
pub(super) async fn a_rotation_binds_an_unbound_family_once(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    let first = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    let next = token("g1");
    assert_eq!(
        s.rotate_refresh_token(&first.hash, &next, t(5), Some("jkt-a"))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
    let (_, g) = s.refresh_token(&next.hash).await.unwrap().unwrap();
    assert_eq!(g.dpop_jkt.as_deref(), Some("jkt-a"));
    // The loser of a rotation (a reuse) binds nothing.
    assert_eq!(
        s.rotate_refresh_token(&first.hash, &token("g1"), t(6), Some("jkt-b"))
            .await
            .unwrap(),
        RotateOutcome::AlreadyUsed { used_at: t(5) }
    );
    // A bound family keeps its first key whatever a later rotation asks.
    assert_eq!(
        s.rotate_refresh_token(&next.hash, &token("g1"), t(7), Some("jkt-b"))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
    assert_eq!(
        s.grant("g1").await.unwrap().unwrap().dpop_jkt.as_deref(),
        Some("jkt-a")
    );
    // Without a binding an unbound family stays unbound.
    let other = token("g2");
    s.insert_grant(&grant("g2", "u1"), Some(&other))
        .await
        .unwrap();
    s.rotate_refresh_token(&other.hash, &token("g2"), t(5), None)
        .await
        .unwrap();
    assert_eq!(s.grant("g2").await.unwrap().unwrap().dpop_jkt, None);
}

pub(super) async fn rotation_has_exactly_one_winner(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    const CALLERS: usize = 50;
    let first = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    // Every caller brings its own successor, as concurrent requests would.
    let successors: Vec<NewRefreshToken> = (0..CALLERS).map(|_| token("g1")).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for next in successors.clone() {
        let (s, parent, barrier) = (Arc::clone(&s), first.hash, Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.rotate_refresh_token(&parent, &next, t(5), None)
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            RotateOutcome::Rotated => winners.push(i),
            RotateOutcome::AlreadyUsed { used_at } => assert_eq!(used_at, t(5)),
            RotateOutcome::Unknown => panic!("token vanished"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner");
    // Only the winner's successor was stored.
    for (i, next) in successors.iter().enumerate() {
        let stored = s.refresh_token(&next.hash).await.unwrap();
        assert_eq!(stored.is_some(), i == winners[0]);
    }
}

pub(super) async fn a_failed_rotation_leaves_the_parent_unused(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    let first = token("g1");
    let other = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    s.insert_grant(&grant("g2", "u1"), Some(&other))
        .await
        .unwrap();
    // The successor's insert fails (its hash exists): the parent must stay unused.
    let clash = NewRefreshToken {
        grant_id: "g1".into(),
        ..other.clone()
    };
    assert!(
        s.rotate_refresh_token(&first.hash, &clash, t(5), None)
            .await
            .is_err()
    );
    let (rec, _) = s.refresh_token(&first.hash).await.unwrap().unwrap();
    assert_eq!(rec.used_at, None, "half a rotation was kept");
    assert_eq!(
        s.rotate_refresh_token(&first.hash, &token("g1"), t(6), None)
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
}

pub(super) async fn a_failed_insert_grant_leaves_nothing_behind(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    let first = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    // g2's first refresh token clashes with g1's: the grant must not be kept either.
    let clash = NewRefreshToken {
        grant_id: "g2".into(),
        ..first.clone()
    };
    assert!(matches!(
        s.insert_grant(&grant("g2", "u1"), Some(&clash)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        s.grant("g2").await.unwrap().is_none(),
        "half a grant was kept"
    );
    assert_eq!(s.user_grants("u1", t(1)).await.unwrap().len(), 1);
    // A duplicate grant id is a conflict too.
    assert!(matches!(
        s.insert_grant(&grant("g1", "u1"), None).await,
        Err(StoreError::Conflict(_))
    ));
}

pub(super) async fn a_failed_client_removal_leaves_nothing_behind(s: Arc<dyn Store>) {
    s.insert_grant(&client_grant("g1", "id-ghost"), None)
        .await
        .unwrap();
    let before = s.last_revocation_seq().await.unwrap();
    assert!(matches!(
        s.remove_client("id-ghost", revoked(1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.last_revocation_seq().await.unwrap(), before);
    assert!(s.revocations_after(0, 10, t(0)).await.unwrap().is_empty());
    assert_eq!(s.grant("g1").await.unwrap().unwrap().revoked_at, None);
}

pub(super) async fn revoking_a_family_feeds_its_sid_and_stops_rotation(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    let first = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    assert_eq!(s.last_revocation_seq().await.unwrap(), 0);
    assert!(!s.is_revoked(Some("j1"), Some("g1")).await.unwrap());
    s.revoke_jti("j1", t(100), t(1)).await.unwrap();
    assert!(s.revoke_grant("g1", revoked(2)).await.unwrap());
    assert!(
        !s.revoke_grant("g1", revoked(3)).await.unwrap(),
        "idempotent"
    );
    assert!(!s.revoke_grant("g-nope", revoked(3)).await.unwrap());
    assert_eq!(s.grant("g1").await.unwrap().unwrap().revoked_at, Some(t(2)));
    assert_eq!(
        s.rotate_refresh_token(&first.hash, &token("g1"), t(4), None)
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
    assert!(s.is_revoked(Some("j1"), None).await.unwrap());
    assert!(s.is_revoked(None, Some("g1")).await.unwrap());
    assert!(s.is_revoked(Some("j-other"), Some("g1")).await.unwrap());
    assert!(!s.is_revoked(Some("j2"), None).await.unwrap());
    assert!(!s.is_revoked(None, None).await.unwrap());
    let feed = s.revocations_after(0, 10, t(0)).await.unwrap();
    assert_eq!(feed.len(), 2);
    assert_eq!(feed[0].jti.as_deref(), Some("j1"));
    assert_eq!(feed[0].sid, None);
    assert_eq!(feed[0].exp, t(100));
    assert_eq!(feed[1].sid.as_deref(), Some("g1"));
    assert_eq!(feed[1].jti, None);
    assert_eq!(feed[1].exp, t(602));
    assert!(feed[0].seq < feed[1].seq);
    // Expired entries are no longer served; cursors continue; limits hold.
    assert_eq!(s.revocations_after(0, 10, t(200)).await.unwrap().len(), 1);
    assert_eq!(
        s.revocations_after(feed[0].seq, 10, t(0))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.revocations_after(0, 1, t(0)).await.unwrap(), feed[..1]);
    assert_eq!(s.last_revocation_seq().await.unwrap(), feed[1].seq);
}

pub(super) async fn revoking_a_users_grants(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    s.insert_grant(&grant("g1", "u1"), None).await.unwrap();
    s.insert_grant(&grant("g2", "u1"), None).await.unwrap();
    s.insert_grant(&grant("g3", "u2"), None).await.unwrap();
    let mut old = grant("g4", "u1");
    old.expires_at = t(10);
    s.insert_grant(&old, None).await.unwrap();
    let live: Vec<String> = s
        .user_grants("u1", t(20))
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(live, ["g1", "g2"], "expired grants are not live");
    s.revoke_grant("g2", revoked(21)).await.unwrap();
    assert_eq!(s.revoke_user_grants("u1", revoked(22)).await.unwrap(), 1);
    assert!(s.user_grants("u1", t(23)).await.unwrap().is_empty());
    assert_eq!(s.user_grants("u2", t(23)).await.unwrap().len(), 1);
    assert_eq!(s.revoke_user_grants("u1", revoked(24)).await.unwrap(), 0);
    let sids: Vec<Option<String>> = s
        .revocations_after(0, 10, t(0))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.sid)
        .collect();
    assert_eq!(sids, [Some("g2".into()), Some("g1".into())]);
}

pub(super) async fn disabling_a_user_revokes_their_grants(s: Arc<dyn Store>) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_grant(&grant("g1", "u1"), None).await.unwrap();
    s.insert_grant(&grant("g2", "u1"), None).await.unwrap();
    assert_eq!(s.user_grants("u1", t(1)).await.unwrap().len(), 2);
    s.disable_user("alice", revoked(1)).await.unwrap();
    assert!(s.user_by_name("alice").await.unwrap().unwrap().disabled);
    assert!(s.user_grants("u1", t(1)).await.unwrap().is_empty());
    assert!(s.is_revoked(None, Some("g1")).await.unwrap());
    assert!(s.is_revoked(None, Some("g2")).await.unwrap());
    let before = s.last_revocation_seq().await.unwrap();
    assert!(matches!(
        s.disable_user("bob", revoked(1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.last_revocation_seq().await.unwrap(), before);
}

pub(super) async fn concurrent_revocations_get_distinct_ordered_cursors(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    const WRITERS: usize = 20;
    for i in 0..WRITERS {
        s.insert_grant(&grant(&format!("g{i}"), "u1"), None)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                s.revoke_jti(&format!("j{i}"), t(100), t(1)).await.unwrap();
            } else {
                s.revoke_grant(&format!("g{i}"), revoked(1)).await.unwrap();
            }
            // Meanwhile a whole-user revocation races with the single ones.
            if i == 7 {
                s.revoke_user_grants("u1", revoked(2)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let feed = s.revocations_after(0, 100, t(0)).await.unwrap();
    // Ten jtis and every one of the twenty grants, each once.
    assert_eq!(feed.len(), WRITERS + WRITERS / 2);
    assert!(feed.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        s.last_revocation_seq().await.unwrap(),
        feed.last().unwrap().seq
    );
}

pub(super) async fn signing_key_lifecycle(s: Arc<dyn Store>) {
    s.insert_key(&key("k2", KeyState::Published, 10))
        .await
        .unwrap();
    s.insert_key(&key("k1", KeyState::Active, 0)).await.unwrap();
    assert!(matches!(
        s.insert_key(&key("k1", KeyState::Active, 0)).await,
        Err(StoreError::Conflict(_))
    ));
    let keys = s.keys().await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["k1", "k2"], "oldest first");
    assert_eq!(keys[0].sealed_private, [1, 2, 3, 0, 255]);
    assert_eq!(keys[0].public_jwk, "{\"kid\":\"k1\"}");
    assert_eq!(keys[0].alg, "EdDSA");
    assert_eq!(keys[1].activate_after, t(310));
    s.apply_key_changes(
        &[
            KeyChange::Activate("k2".into()),
            KeyChange::Retire("k1".into()),
        ],
        t(400),
    )
    .await
    .unwrap();
    let keys = s.keys().await.unwrap();
    assert_eq!(keys[0].state, KeyState::Retired);
    assert_eq!(keys[0].retired_at, Some(t(400)));
    assert_eq!(keys[1].state, KeyState::Active);
    assert_eq!(keys[1].retired_at, None);
    // Deleting only removes retired keys; applying twice changes nothing.
    s.apply_key_changes(
        &[
            KeyChange::Delete("k1".into()),
            KeyChange::Delete("k2".into()),
            KeyChange::Retire("k1".into()),
        ],
        t(500),
    )
    .await
    .unwrap();
    let keys = s.keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid, "k2");
}

pub(super) async fn audit_events_newest_first(s: Arc<dyn Store>) {
    for (i, kind) in ["login.success", "token.issued", "refresh.reuse"]
        .into_iter()
        .enumerate()
    {
        s.record(&AuditEvent {
            at: t(i as i64),
            kind: kind.into(),
            client_id: Some("id-web".into()),
            user_id: (i != 1).then(|| "u1".into()),
            detail: format!("{{\"n\":{i}}}"),
        })
        .await
        .unwrap();
    }
    let events = s.recent_events(2).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kind, "refresh.reuse");
    assert_eq!(events[0].at, t(2));
    assert_eq!(events[0].detail, "{\"n\":2}");
    assert_eq!(events[1].kind, "token.issued");
    assert_eq!(events[1].user_id, None);
    assert_eq!(events[1].client_id.as_deref(), Some("id-web"));
    assert_eq!(s.recent_events(10).await.unwrap().len(), 3);
}

pub(super) async fn audit_events_filter_by_user_and_time(s: Arc<dyn Store>) {
    for (i, user) in [Some("u1"), None, Some("u2"), Some("u1"), Some("u1")]
        .into_iter()
        .enumerate()
    {
        s.record(&AuditEvent {
            at: t(i as i64 * 10),
            kind: format!("k{i}"),
            client_id: None,
            user_id: user.map(Into::into),
            detail: "{}".into(),
        })
        .await
        .unwrap();
    }
    let q = |user: Option<&str>, since: Option<i64>, limit| crate::store::AuditQuery {
        user_id: user.map(Into::into),
        since: since.map(t),
        limit,
    };
    let kinds = |events: Vec<AuditEvent>| events.into_iter().map(|e| e.kind).collect::<Vec<_>>();
    assert_eq!(
        kinds(s.query_events(&q(None, None, 100)).await.unwrap()),
        ["k4", "k3", "k2", "k1", "k0"]
    );
    assert_eq!(
        kinds(s.query_events(&q(Some("u1"), None, 100)).await.unwrap()),
        ["k4", "k3", "k0"]
    );
    assert_eq!(
        kinds(s.query_events(&q(Some("u1"), Some(30), 100)).await.unwrap()),
        ["k4", "k3"]
    );
    assert_eq!(
        kinds(s.query_events(&q(None, Some(15), 2)).await.unwrap()),
        ["k4", "k3"]
    );
    assert!(
        s.query_events(&q(Some("nobody"), None, 100))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.query_events(&q(None, Some(41), 100))
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn login_failures_count_block_and_clear(s: Arc<dyn Store>) {
    let window = Duration::from_secs(100);
    assert_eq!(
        s.record_login_failure("user:a", t(0), window)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.record_login_failure("user:a", t(10), window)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.record_login_failure("ip:1", t(10), window).await.unwrap(),
        1
    );
    // After the window the count restarts.
    assert_eq!(
        s.record_login_failure("user:a", t(150), window)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.record_login_failure("user:a", t(160), window)
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.login_blocked_until("user:a", t(160)).await.unwrap(), None);
    s.block_login("user:a", t(300)).await.unwrap();
    s.block_login("user:a", t(200)).await.unwrap();
    assert_eq!(
        s.login_blocked_until("user:a", t(160)).await.unwrap(),
        Some(t(300)),
        "a shorter block never shortens a longer one"
    );
    assert_eq!(s.login_blocked_until("user:a", t(300)).await.unwrap(), None);
    assert_eq!(s.login_blocked_until("ip:1", t(160)).await.unwrap(), None);
    s.clear_login_failures("user:a").await.unwrap();
    assert_eq!(s.login_blocked_until("user:a", t(160)).await.unwrap(), None);
    assert_eq!(
        s.record_login_failure("user:a", t(170), window)
            .await
            .unwrap(),
        1
    );
    // Concurrent failures all count.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.record_login_failure("ip:2", t(200), window)
                .await
                .unwrap()
        }));
    }
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=10).collect::<Vec<u32>>());
}

/// Reservations count before the password is checked: at the threshold the key blocks
/// in the same step, so of many concurrent attempts exactly `threshold` get through; a
/// blocked key counts nothing more, and a release gives one reservation back.
pub(super) async fn login_attempts_are_reserved_atomically(s: Arc<dyn Store>) {
    let window = Duration::from_secs(100);
    let reserve = |key: &'static str, now: i64| {
        let s = Arc::clone(&s);
        async move {
            s.reserve_login_attempt(key, t(now), window, 3, t(now + 2))
                .await
                .unwrap()
        }
    };
    assert_eq!(reserve("pair:a", 0).await, Some(1));
    s.release_login_attempt("pair:a").await.unwrap();
    assert_eq!(
        reserve("pair:a", 0).await,
        Some(1),
        "released, counted again"
    );
    assert_eq!(reserve("pair:a", 0).await, Some(2));
    assert_eq!(s.login_blocked_until("pair:a", t(0)).await.unwrap(), None);
    assert_eq!(reserve("pair:a", 0).await, Some(3));
    assert_eq!(
        s.login_blocked_until("pair:a", t(0)).await.unwrap(),
        Some(t(2)),
        "the threshold blocks in the same step"
    );
    assert_eq!(reserve("pair:a", 1).await, None, "blocked: refused");
    assert_eq!(reserve("pair:a", 1).await, None);
    // A longer block set after a failure is kept; once over, one more attempt counts.
    s.block_login("pair:a", t(5)).await.unwrap();
    assert_eq!(reserve("pair:a", 3).await, None);
    assert_eq!(
        reserve("pair:a", 5).await,
        Some(4),
        "refusals did not count"
    );
    assert_eq!(
        s.login_blocked_until("pair:a", t(5)).await.unwrap(),
        Some(t(7))
    );
    // A hold is replaced by the block the failure earns, shorter or longer.
    assert_eq!(reserve("pair:d", 0).await, Some(1));
    s.block_login("pair:d", t(50)).await.unwrap();
    s.replace_login_block("pair:d", t(3)).await.unwrap();
    assert_eq!(
        s.login_blocked_until("pair:d", t(0)).await.unwrap(),
        Some(t(3))
    );
    s.replace_login_block("pair:d", t(0)).await.unwrap();
    assert_eq!(s.login_blocked_until("pair:d", t(0)).await.unwrap(), None);
    s.replace_login_block("no:row", t(9)).await.unwrap();
    assert_eq!(s.login_blocked_until("no:row", t(0)).await.unwrap(), None);
    // Releasing never goes below zero; clearing forgets the block.
    s.clear_login_failures("pair:a").await.unwrap();
    s.release_login_attempt("pair:a").await.unwrap();
    s.release_login_attempt("nothing:here").await.unwrap();
    // After the window the count restarts (and with it the threshold).
    assert_eq!(reserve("pair:b", 0).await, Some(1));
    assert_eq!(reserve("pair:b", 150).await, Some(1));
    // Concurrent reservations: exactly the threshold get through.
    let mut tasks = Vec::new();
    for _ in 0..30 {
        tasks.push(tokio::spawn(reserve("pair:c", 200)));
    }
    let mut granted = Vec::new();
    for task in tasks {
        if let Some(c) = task.await.unwrap() {
            granted.push(c);
        }
    }
    granted.sort_unstable();
    assert_eq!(granted, [1, 2, 3]);
}

pub(super) async fn the_janitor_purges_only_what_cannot_matter(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    let first = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    s.insert_grant(&grant("g2", "u1"), None).await.unwrap();
    s.revoke_grant("g2", revoked(10)).await.unwrap();
    s.revoke_jti("j1", t(100), t(1)).await.unwrap();
    let seq = s.last_revocation_seq().await.unwrap();
    // Nothing is due yet.
    assert_eq!(purge(&*s, t(50), t(0)).await, 0);
    // Later: j1 and g2's feed entry expired, g2 revoked long ago; g1 and its token live on.
    let n = purge(&*s, t(1000), t(500)).await;
    assert_eq!(n, 3);
    assert!(s.grant("g1").await.unwrap().is_some());
    assert!(s.grant("g2").await.unwrap().is_none());
    assert!(s.refresh_token(&first.hash).await.unwrap().is_some());
    assert_eq!(
        s.last_revocation_seq().await.unwrap(),
        seq,
        "cursors never go back"
    );
    s.revoke_jti("j2", t(5000), t(1000)).await.unwrap();
    assert!(s.last_revocation_seq().await.unwrap() > seq);
    // After the absolute lifetime the family and its tokens go too.
    assert_eq!(purge(&*s, t(90_000), t(500)).await, 3);
    assert!(s.refresh_token(&first.hash).await.unwrap().is_none());
    // Stale throttle counters go; a running block stays.
    let window = Duration::from_secs(100);
    s.record_login_failure("user:a", t(0), window)
        .await
        .unwrap();
    s.record_login_failure("user:b", t(0), window)
        .await
        .unwrap();
    s.block_login("user:b", t(200_000)).await.unwrap();
    assert_eq!(purge(&*s, t(100_000), t(99_000)).await, 1);
    assert_eq!(
        s.login_blocked_until("user:b", t(100_000)).await.unwrap(),
        Some(t(200_000))
    );
}

pub(super) async fn ping_answers(s: Arc<dyn Store>) {
    s.ping().await.unwrap();
}

pub(super) async fn simultaneous_starts_create_one_first_key(s: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let sealer = Arc::new(
        crate::secrets::MasterKey::load(dir.path())
            .unwrap()
            .sealer()
            .unwrap(),
    );
    let alg = tessera_token::Algorithm::EdDsa;
    let timings = crate::keys::Timings {
        lead: Duration::from_secs(300),
        refresh: Duration::from_secs(10),
        max_token_life: Duration::from_secs(660),
    };
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let (s, sealer) = (Arc::clone(&s), Arc::clone(&sealer));
            tokio::spawn(async move {
                let ring = crate::keys::load_or_create(&*s, &sealer, alg, timings, t(0))
                    .await
                    .unwrap();
                let id = ring.id_token_signer(None).unwrap().kid().map(str::to_owned);
                (ring.active().unwrap().kid().map(str::to_owned), id)
            })
        })
        .collect();
    let mut kids = Vec::new();
    for start in starts {
        kids.push(start.await.unwrap());
    }
    let keys = s.keys().await.unwrap();
    // One key per required algorithm (EdDSA for access tokens, RS256 for ID tokens).
    assert_eq!(
        keys.len(),
        2,
        "one first key per algorithm, not one per start"
    );
    let ed: Vec<_> = keys.iter().filter(|k| k.alg == "EdDSA").collect();
    let rs: Vec<_> = keys.iter().filter(|k| k.alg == "RS256").collect();
    assert_eq!((ed.len(), rs.len()), (1, 1));
    assert!(
        kids.iter()
            .all(|(k, _)| k.as_deref() == Some(ed[0].kid.as_str()))
    );
    assert!(
        kids.iter()
            .all(|(_, k)| k.as_deref() == Some(rs[0].kid.as_str()))
    );
    // Once a key is active, another first key is refused.
    let mut other = key("k-other", KeyState::Active, 0);
    other.alg = alg.name().into();
    assert!(!s.insert_first_key(&other).await.unwrap());
    other.alg = "ES256".into();
    assert!(s.insert_first_key(&other).await.unwrap());
}

/// A server planned [activate k-new, retire k-old] while `tessera keys remove` deleted
/// k-new: the activation finds nothing, so k-old is not retired (else no key would sign).
pub(super) async fn an_activation_that_finds_no_key_retires_nothing(s: Arc<dyn Store>) {
    s.insert_key(&key("k-old", KeyState::Active, 0))
        .await
        .unwrap();
    s.insert_key(&key("k-new", KeyState::Published, 0))
        .await
        .unwrap();
    let plan = [
        KeyChange::Activate("k-new".into()),
        KeyChange::Retire("k-old".into()),
    ];
    assert!(s.remove_published_key("k-new").await.unwrap());
    s.apply_key_changes(&plan, t(400)).await.unwrap();
    let keys = s.keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid, "k-old");
    assert_eq!(keys[0].state, KeyState::Active, "the old key still signs");
    assert_eq!(keys[0].retired_at, None);
}

/// Issue 14, item 10: `tessera keys remove` deletes only a key that never signed, and
/// the master-key check is written once (the first writer wins, concurrently too).
pub(super) async fn only_a_published_key_is_removed_and_the_first_key_check_wins(
    s: Arc<dyn Store>,
) {
    for (kid, state) in [
        ("k-pub", KeyState::Published),
        ("k-act", KeyState::Active),
        ("k-ret", KeyState::Retired),
    ] {
        s.insert_key(&key(kid, state, 0)).await.unwrap();
    }
    assert!(!s.remove_published_key("k-act").await.unwrap());
    assert!(!s.remove_published_key("k-ret").await.unwrap());
    assert!(!s.remove_published_key("k-none").await.unwrap());
    assert!(s.remove_published_key("k-pub").await.unwrap());
    assert!(!s.remove_published_key("k-pub").await.unwrap());
    let kids: Vec<String> = s.keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, ["k-act", "k-ret"]);

    assert_eq!(s.master_key_check().await.unwrap(), None);
    let writers: Vec<_> = (0u8..8)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.init_master_key_check(&[i; 32], t(0)).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for w in writers {
        seen.push(w.await.unwrap());
    }
    let (stored, recorded_at) = s.master_key_check().await.unwrap().unwrap();
    assert_eq!(
        recorded_at,
        t(0),
        "when the check was recorded, for refusals"
    );
    assert!(
        seen.iter().all(|v| *v == stored),
        "every writer sees the winner"
    );
    assert_eq!(
        s.init_master_key_check(&[99; 32], t(1)).await.unwrap(),
        stored
    );
}

pub(super) async fn the_janitor_deletes_in_batches_and_keeps_live_rows(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    // Ten of each due, three per statement: every table takes several batches.
    let mut tokens = Vec::new();
    for i in 0..10 {
        let id = format!("old{i}");
        let mut g = grant(&id, "u1");
        g.expires_at = t(100);
        let mut rt = token(&id);
        rt.expires_at = t(100);
        s.insert_grant(&g, Some(&rt)).await.unwrap();
        tokens.push(rt.hash);
        s.revoke_jti(&format!("old-jti{i}"), t(100), t(1))
            .await
            .unwrap();
        let event = |at: i64| AuditEvent {
            at: t(at),
            kind: "login.success".into(),
            client_id: None,
            user_id: Some("u1".into()),
            detail: "{}".into(),
        };
        s.record(&event(i)).await.unwrap();
        if i < 2 {
            s.record(&event(800 + i)).await.unwrap();
        }
    }
    let live = token("live");
    s.insert_grant(&grant("live", "u1"), Some(&live))
        .await
        .unwrap();
    s.revoke_jti("live-jti", t(5000), t(2)).await.unwrap();

    let p = Purge {
        now: t(1000),
        revoked_before: t(500),
        audit_before: t(500),
        batch: 3,
    };
    // 10 refresh tokens, 10 grants, 10 feed entries, 10 audit events.
    assert_eq!(s.purge_expired(&p).await.unwrap(), 40);
    for hash in &tokens {
        assert!(s.refresh_token(hash).await.unwrap().is_none());
    }
    assert!(s.grant("old0").await.unwrap().is_none());
    assert!(s.refresh_token(&live.hash).await.unwrap().is_some());
    let feed = s.revocations_after(0, 100, t(0)).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].jti.as_deref(), Some("live-jti"));
    let events = s.recent_events(100).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![t(801), t(800)]
    );
    assert_eq!(s.purge_expired(&p).await.unwrap(), 0, "nothing left to do");
}

pub(super) async fn grant_context_is_swapped(s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    use crate::store::GrantContext;
    let g = grant("g-ctx", "u1");
    s.insert_grant(&g, None).await.unwrap();
    let a = GrantContext {
        net: Some("192.0.2.0/24".into()),
        agent: Some("app/1".into()),
    };
    let b = GrantContext {
        net: Some("198.51.100.0/24".into()),
        agent: None,
    };
    assert_eq!(
        s.swap_grant_context("g-ctx", &a).await.unwrap(),
        Some(GrantContext::default())
    );
    assert_eq!(
        s.swap_grant_context("g-ctx", &b).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.swap_grant_context("g-ctx", &b).await.unwrap(),
        Some(b.clone())
    );
    // After an unchanged request, a change is still seen and stored.
    assert_eq!(s.swap_grant_context("g-ctx", &a).await.unwrap(), Some(b));
    assert_eq!(
        s.swap_grant_context("g-ctx", &a).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.swap_grant_context("no-such-grant", &a).await.unwrap(),
        None
    );
}

/// Issue 14, item 4: a jti is in the feed at most once. Revoking it again, one by one or
/// all at once, writes nothing: no row and no cursor step (so nothing to audit either).
pub(super) async fn revoking_a_jti_again_writes_nothing(s: Arc<dyn Store>) {
    assert!(s.revoke_jti("j1", t(100), t(1)).await.unwrap());
    let seq = s.last_revocation_seq().await.unwrap();
    for i in 0..5 {
        assert!(!s.revoke_jti("j1", t(100), t(2 + i)).await.unwrap());
    }
    assert_eq!(
        s.last_revocation_seq().await.unwrap(),
        seq,
        "no cursor step"
    );
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.revoke_jti("j2", t(100), t(3)).await.unwrap() })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        added += usize::from(task.await.unwrap());
    }
    assert_eq!(added, 1, "concurrent revocations of one token: one winner");
    let feed = s.revocations_after(0, 100, t(0)).await.unwrap();
    let jtis: Vec<_> = feed.iter().filter_map(|e| e.jti.as_deref()).collect();
    assert_eq!(jtis, ["j1", "j2"]);
    assert_eq!(s.last_revocation_seq().await.unwrap(), seq + 1);
    assert_eq!(feed.last().unwrap().seq, seq + 1, "cursors stay dense");

    // A sid is in the feed once too: a client id removed, registered again and removed
    // again has one entry, the newest (a new cursor, the later exp).
    s.insert_client(&client("web")).await.unwrap();
    s.remove_client("id-web", revoked(10)).await.unwrap();
    s.insert_client(&client("web")).await.unwrap();
    s.remove_client("id-web", revoked(20)).await.unwrap();
    let feed = s.revocations_after(0, 100, t(0)).await.unwrap();
    let cc: Vec<_> = feed
        .iter()
        .filter(|e| e.sid.as_deref() == Some("cc_id-web"))
        .collect();
    assert_eq!(cc.len(), 1, "{feed:?}");
    assert_eq!(cc[0].seq, s.last_revocation_seq().await.unwrap());
    assert_eq!(cc[0].exp, revoked(20).access_exp);
    // Revoked again later with an earlier exp (say, a shorter access-token lifetime since):
    // a new entry, but the revocation lasts as long as the longest one asked for.
    s.insert_client(&client("web")).await.unwrap();
    let shorter = Revoked {
        now: t(30),
        access_exp: t(40),
    };
    s.remove_client("id-web", shorter).await.unwrap();
    let feed = s.revocations_after(0, 100, t(0)).await.unwrap();
    let cc: Vec<_> = feed
        .iter()
        .filter(|e| e.sid.as_deref() == Some("cc_id-web"))
        .collect();
    assert_eq!(cc.len(), 1, "{feed:?}");
    assert_eq!(cc[0].seq, s.last_revocation_seq().await.unwrap());
    assert_eq!(cc[0].exp, revoked(20).access_exp, "exp never shrinks");
    assert!(s.is_revoked(None, Some("cc_id-web")).await.unwrap());
    assert!(s.is_revoked(Some("j2"), None).await.unwrap());
}
