//! Refresh rotations the server could not confirm (issue 5): a real SQLite store behind
//! [`FaultyStore`], which loses a rotation's acknowledgement or fails the steps after it
//! the way a database outage does. With the default 0 s grace window throughout. Also a
//! login whose user lookup fails the same way (issue 14, item 3: no reservation left).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::{StatusCode, header};
use serde_json::Value;
use tessera_token::{OpaqueToken, TokenHash, TokenKind};

use super::{client_and_user, send, state_over, with_post_auth};
use crate::clock::ManualClock;
use crate::http::AppState;
use crate::store::faulty::FaultyStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{RefreshRecord, Store};

struct Setup {
    state: Arc<AppState>,
    faults: Arc<FaultyStore>,
    clock: Arc<ManualClock>,
    client: (String, String),
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let faults = Arc::new(FaultyStore::new(sqlite));
    let (state, dir, clock) = state_over(Arc::clone(&faults) as Arc<dyn Store>).await;
    let client = client_and_user(&state).await;
    Setup {
        state,
        faults,
        clock,
        client,
        _dir: dir,
    }
}

impl Setup {
    /// A password login's refresh token.
    async fn login(&self) -> String {
        let (status, _, json) = send(
            &self.state,
            with_post_auth(
                "grant_type=password&username=alice&password=long+enough",
                &self.client.0,
                &self.client.1,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json["refresh_token"].as_str().unwrap().to_owned()
    }

    async fn refresh(&self, rt: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.refresh_as(&self.client, rt).await
    }

    async fn refresh_as(
        &self,
        (id, secret): &(String, String),
        rt: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        send(
            &self.state,
            with_post_auth(
                &format!("grant_type=refresh_token&refresh_token={rt}"),
                id,
                secret,
            ),
        )
        .await
    }

    /// A refresh that must succeed; its new refresh token.
    async fn refreshed(&self, rt: &str) -> String {
        let (status, _, json) = self.refresh(rt).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert!(json["access_token"].as_str().is_some_and(|t| !t.is_empty()));
        json["refresh_token"].as_str().unwrap().to_owned()
    }

    /// A refresh that must be refused with `invalid_grant`.
    async fn refused(&self, rt: &str) {
        let (status, _, json) = self.refresh(rt).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        assert_eq!(json["error"], "invalid_grant");
    }

    /// The stored record of `rt` and whether its family is revoked.
    async fn stored(&self, rt: &str) -> (RefreshRecord, bool) {
        let (record, grant) = self
            .state
            .store
            .refresh_token(&hash(rt))
            .await
            .unwrap()
            .expect("the token is in the store");
        (record, grant.revoked_at.is_some())
    }
}

fn hash(rt: &str) -> TokenHash {
    OpaqueToken::parse_kind(rt, TokenKind::RefreshToken)
        .unwrap()
        .hash()
}

fn assert_unavailable(reply: (StatusCode, axum::http::HeaderMap, Value)) {
    let (status, headers, json) = reply;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(json["error"], "temporarily_unavailable");
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(
        !json.to_string().contains("injected"),
        "the cause is logged, not sent"
    );
}

#[tokio::test]
async fn a_rotation_whose_acknowledgement_was_lost_is_answered_once_on_retry() {
    let t = setup().await;
    let rt1 = t.login().await;
    let rotated_at = t.state.clock.now();
    t.faults
        .lose_next_rotation_ack
        .store(true, Ordering::SeqCst);
    assert_unavailable(t.refresh(&rt1).await);
    // It did commit: the token is spent.
    let (parent, _) = t.stored(&rt1).await;
    assert_eq!(parent.used_at, Some(rotated_at));

    // The retry, a little later, gets the successor that the lost commit stored (issued
    // then, not now), with a fresh access token.
    t.clock.advance(10);
    let rt2 = t.refreshed(&rt1).await;
    assert_eq!(
        rt2,
        crate::grants::successor(&t.state.refresh_key, &hash(&rt1))
            .unwrap()
            .expose()
    );
    let (next, revoked) = t.stored(&rt2).await;
    assert_eq!(next.issued_at, rotated_at);
    assert_eq!(next.used_at, None);
    assert!(!revoked);
    assert_eq!(next.grant_id, parent.grant_id);

    // Once only: presenting it a third time is reuse, which revokes the family.
    t.refused(&rt1).await;
    assert!(t.stored(&rt2).await.1, "the family is revoked");
    t.refused(&rt2).await;
}

#[tokio::test]
async fn reuse_of_a_confirmed_rotation_still_revokes_the_family() {
    let t = setup().await;
    // Another family's unconfirmed rotation is remembered meanwhile; it covers only its
    // own token.
    let other = t.login().await;
    t.faults
        .lose_next_rotation_ack
        .store(true, Ordering::SeqCst);
    assert_unavailable(t.refresh(&other).await);

    let rt1 = t.login().await;
    let rt2 = t.refreshed(&rt1).await;
    t.refused(&rt1).await;
    assert!(t.stored(&rt2).await.1, "the family is revoked");
    t.refused(&rt2).await;
    // The other family is untouched and its retry still gets its successor.
    t.refreshed(&other).await;
}

#[tokio::test]
async fn an_unconfirmed_rotation_that_had_not_committed_is_retried_as_a_first_use() {
    let t = setup().await;
    let rt1 = t.login().await;
    t.faults.fail_next_rotation.store(true, Ordering::SeqCst);
    assert_unavailable(t.refresh(&rt1).await);
    assert_eq!(t.stored(&rt1).await.0.used_at, None, "nothing committed");
    let rt2 = t.refreshed(&rt1).await;
    // That retry rotated for real, so the memory is gone: a replay is reuse.
    t.refused(&rt1).await;
    assert!(t.stored(&rt2).await.1, "the family is revoked");
}

#[tokio::test]
async fn an_unconfirmed_rotation_is_remembered_for_a_bounded_time() {
    let t = setup().await;
    let rt1 = t.login().await;
    t.faults
        .lose_next_rotation_ack
        .store(true, Ordering::SeqCst);
    assert_unavailable(t.refresh(&rt1).await);
    t.clock
        .advance(i64::try_from(crate::state::REMEMBER_SECS).unwrap());
    t.refused(&rt1).await;
    let successor = crate::grants::successor(&t.state.refresh_key, &hash(&rt1)).unwrap();
    assert!(
        t.stored(successor.expose()).await.1,
        "the family is revoked"
    );
}

#[tokio::test]
async fn a_retry_whose_successor_was_already_used_is_reuse() {
    let t = setup().await;
    let rt1 = t.login().await;
    t.faults
        .lose_next_rotation_ack
        .store(true, Ordering::SeqCst);
    assert_unavailable(t.refresh(&rt1).await);
    // Someone else holds the successor and uses it before the client retries.
    let successor = crate::grants::successor(&t.state.refresh_key, &hash(&rt1)).unwrap();
    let rt3 = t.refreshed(successor.expose()).await;
    t.refused(&rt1).await;
    assert!(t.stored(&rt3).await.1, "the family is revoked");
    t.refused(&rt3).await;
}

#[tokio::test]
async fn a_failure_after_the_rotation_committed_still_answers_200() {
    let t = setup().await;
    let rt1 = t.login().await;
    t.faults.fail_context_swaps.store(true, Ordering::SeqCst);
    let rt2 = t.refreshed(&rt1).await;
    assert!(t.stored(&rt1).await.0.used_at.is_some());
    let (next, revoked) = t.stored(&rt2).await;
    assert_eq!(next.used_at, None);
    assert!(!revoked);
    // The chain goes on, with the fault and without it.
    let rt3 = t.refreshed(&rt2).await;
    t.faults.fail_context_swaps.store(false, Ordering::SeqCst);
    t.refreshed(&rt3).await;
}

/// The answer itself can fail after the rotation committed (here: the client's tokens are
/// ES256 and no ES256 key is active yet). That rotation counts as unconfirmed too, so once
/// a key is there, the retry gets the successor instead of revoking the family.
#[tokio::test]
async fn a_rotation_whose_answer_failed_is_answered_on_retry() {
    use crate::store::{ClientRecord, GrantRecord, GrantType, NewRefreshToken};
    use tessera_token::Algorithm;
    let t = setup().await;
    let now = t.state.clock.now();
    let secret = OpaqueToken::generate(TokenKind::ClientSecret).unwrap();
    let client = ClientRecord {
        id: "es".into(),
        name: "es".into(),
        secret_hash: Some(secret.hash()),
        grant_types: vec![GrantType::RefreshToken],
        scope: "a".parse().unwrap(),
        audience: vec!["api".into()],
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        first_party: false,
        signing_alg: Some(Algorithm::Es256),
        id_token_alg: None,
        dpop_bound_access_tokens: false,
        created_at: now,
    };
    t.state.store.insert_client(&client).await.unwrap();
    let grant = GrantRecord {
        id: "g_es".into(),
        client_id: "es".into(),
        user_id: None,
        scope: "a".parse().unwrap(),
        audience: vec!["api".into()],
        created_at: now,
        expires_at: now.saturating_add(std::time::Duration::from_secs(86_400)),
        revoked_at: None,
        generation: 0,
        amr: crate::store::Amr::password(),
        dpop_jkt: None,
    };
    let rt1 = OpaqueToken::generate(TokenKind::RefreshToken).unwrap();
    let first = NewRefreshToken {
        hash: rt1.hash(),
        grant_id: grant.id.clone(),
        issued_at: now,
        expires_at: grant.expires_at,
    };
    t.state
        .store
        .insert_grant(&grant, Some(&first))
        .await
        .unwrap();
    let es = ("es".to_owned(), secret.expose().to_owned());

    let (status, headers, json) = t.refresh_as(&es, rt1.expose()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(json["error"], "temporarily_unavailable");
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(
        t.stored(rt1.expose()).await.0.used_at.is_some(),
        "the rotation committed"
    );

    // An ES256 key appears (as `tessera keys rotate --alg ES256` would make one).
    let sealer = crate::secrets::MasterKey::load(t._dir.path())
        .unwrap()
        .sealer()
        .unwrap();
    let timings = crate::keys::Timings::of(&t.state.config);
    crate::keys::load_or_create(&*t.state.store, &sealer, Algorithm::Es256, timings, now)
        .await
        .unwrap();
    let alg = t.state.config.signing.signing_alg;
    let clock = &*t.state.clock;
    crate::keys::refresh(&*t.state.store, &sealer, &t.state.keys, alg, timings, clock)
        .await
        .unwrap();

    let (status, _, json) = t.refresh_as(&es, rt1.expose()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let successor = crate::grants::successor(&t.state.refresh_key, &rt1.hash()).unwrap();
    assert_eq!(json["refresh_token"], successor.expose());
    let (status, _, json) = t.refresh_as(&es, rt1.expose()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(
        t.stored(successor.expose()).await.1,
        "the family is revoked"
    );
}

/// The database going away mid-login (after the throttle reservation, at the user
/// lookup) answers 503 and gives the reservation back: more such failures than the
/// per-account limit leave the right password working once the database is back, never
/// a 429 for attempts that were not evaluated.
#[tokio::test]
async fn a_store_failure_mid_login_is_503_and_leaves_no_reservation() {
    let s = setup().await;
    s.faults.fail_user_lookups.store(true, Ordering::SeqCst);
    for _ in 0..(s.state.config.login.throttle.per_account + 2) {
        let (status, headers, json) = send(
            &s.state,
            with_post_auth(
                "grant_type=password&username=alice&password=long+enough",
                &s.client.0,
                &s.client.1,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
        assert_eq!(headers[header::RETRY_AFTER], "1");
    }
    s.faults.fail_user_lookups.store(false, Ordering::SeqCst);
    s.login().await;
}
