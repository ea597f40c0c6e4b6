//! A grant whose user no longer stands behind it (issue 14, item 1): one that escaped a
//! revoke-all, as a password grant still hashing while `user disable` ran would store it,
//! is refused at refresh (`invalid_grant`) and inactive at introspection.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use tessera_token::{OpaqueToken, TokenKind};

use super::{client_and_user, send, state_over, with_post_auth};
use crate::http::AppState;
use crate::store::sqlite::SqliteStore;
use crate::store::{GrantRecord, NewRefreshToken};

/// Stores a live grant of alice (`u_1`) stamped with `generation`, straight in the store
/// (past the check a real sign-in meets); returns its refresh token.
async fn escaped_grant(s: &AppState, store: &SqliteStore, generation: i64) -> String {
    escaped(s, store, generation).await.0
}

/// As [`escaped_grant`]; returns the refresh token and an access token of the grant.
async fn escaped(s: &AppState, store: &SqliteStore, generation: i64) -> (String, String) {
    let rt = OpaqueToken::generate(TokenKind::RefreshToken).unwrap();
    let now = s.clock.now();
    let id = crate::ids::random_id("g_").unwrap();
    let grant = GrantRecord {
        id: id.clone(),
        client_id: "web".into(),
        user_id: Some("u_1".into()),
        scope: "a".parse().unwrap(),
        audience: vec!["api".into()],
        created_at: now,
        expires_at: now.saturating_add(std::time::Duration::from_secs(3600)),
        revoked_at: None,
        generation,
        amr: crate::store::Amr::password(),
        dpop_jkt: None,
    };
    let first = NewRefreshToken {
        hash: rt.hash(),
        grant_id: id,
        issued_at: now,
        expires_at: now.saturating_add(std::time::Duration::from_secs(3600)),
    };
    store
        .insert_grant_unchecked(&grant, Some(&first))
        .await
        .unwrap();
    let (access, _) = crate::grants::mint_access_token(
        s,
        &crate::grants::AccessGrant {
            sub: "u_1",
            client_id: "web",
            scope: &grant.scope,
            audience: &grant.audience,
            sid: &grant.id,
            auth_time: Some(now),
            amr: None,
            alg: None,
            jkt: None,
        },
    )
    .unwrap();
    (rt.expose().to_owned(), access)
}

/// `active` of `/introspect` for `token`, asked by `client`.
async fn introspect(s: &Arc<AppState>, (id, secret): &(String, String), token: &str) -> bool {
    let req = Request::post("/introspect")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "token={token}&client_id={id}&client_secret={secret}"
        )))
        .unwrap();
    let (status, _, v) = send(s, req).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["active"].as_bool().unwrap()
}

/// (status, error or "", introspection `active`) of refreshing and introspecting `rt`.
async fn refresh_and_introspect(
    s: &Arc<AppState>,
    (id, secret): &(String, String),
    rt: &str,
) -> (StatusCode, String, serde_json::Value) {
    let introspect = Request::post("/introspect")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "token={rt}&client_id={id}&client_secret={secret}"
        )))
        .unwrap();
    let (_, _, v) = send(s, introspect).await;
    let (status, _, body) = send(
        s,
        with_post_auth(
            &format!("grant_type=refresh_token&refresh_token={rt}"),
            id,
            secret,
        ),
    )
    .await;
    let error = body["error"].as_str().unwrap_or_default().to_owned();
    (status, error, v["active"].clone())
}

#[tokio::test]
async fn refresh_and_introspection_refuse_a_grant_its_user_no_longer_stands_behind() {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let (s, _dir, _clock) = state_over(store.clone()).await;
    let client = client_and_user(&s).await;
    let refused = (
        StatusCode::BAD_REQUEST,
        "invalid_grant".to_owned(),
        json!(false),
    );

    // Disabled: even a grant stamped with the current generation is dead.
    s.store
        .disable_user("alice", s.revoked_now())
        .await
        .unwrap();
    let rt = escaped_grant(&s, &store, 1).await;
    assert_eq!(refresh_and_introspect(&s, &client, &rt).await, refused);

    // Enabled again: a grant of a sign-in before the disable stays dead, one stamped
    // with the current generation stands.
    s.store.enable_user("alice").await.unwrap();
    let before = escaped_grant(&s, &store, 0).await;
    assert_eq!(refresh_and_introspect(&s, &client, &before).await, refused);
    let after = escaped_grant(&s, &store, 1).await;
    let (status, error, active) = refresh_and_introspect(&s, &client, &after).await;
    assert_eq!((status, active), (StatusCode::OK, json!(true)), "{error}");

    // A revoke-all (`sessions revoke --user`), in the same second as the grants: those
    // of the generation before it are dead, revoked or not.
    let live = escaped_grant(&s, &store, 1).await;
    s.store
        .revoke_user_grants("u_1", s.revoked_now())
        .await
        .unwrap();
    assert_eq!(refresh_and_introspect(&s, &client, &live).await, refused);
    let escaped = escaped_grant(&s, &store, 1).await;
    assert_eq!(refresh_and_introspect(&s, &client, &escaped).await, refused);
    let current = escaped_grant(&s, &store, 2).await;
    let (status, error, active) = refresh_and_introspect(&s, &client, &current).await;
    assert_eq!((status, active), (StatusCode::OK, json!(true)), "{error}");

    // Removed: nothing of theirs stands.
    s.store.remove_user("alice", s.revoked_now()).await.unwrap();
    let rt = escaped_grant(&s, &store, 3).await;
    assert_eq!(refresh_and_introspect(&s, &client, &rt).await, refused);
}

/// Item 1 (review): `/introspect` of an ACCESS token applies the same rule as a refresh,
/// not only the revocation feed: the token of a grant its user no longer stands behind
/// (disabled, removed, or a revoke-all since its sign-in) is inactive even when its `sid`
/// never reached the feed.
#[tokio::test]
async fn introspection_of_an_access_token_asks_whether_its_user_stands_behind_it() {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let (s, _dir, _clock) = state_over(store.clone()).await;
    let client = client_and_user(&s).await;

    let (_, current) = escaped(&s, &store, 0).await;
    assert!(introspect(&s, &client, &current).await, "a standing grant");
    // A revoke-all moves alice on; a grant of the generation before it that escaped the
    // revocation (not in the feed) is dead all the same.
    s.store
        .revoke_user_grants("u_1", s.revoked_now())
        .await
        .unwrap();
    let (_, stale) = escaped(&s, &store, 0).await;
    assert!(
        !introspect(&s, &client, &stale).await,
        "an older generation"
    );
    let (_, fresh) = escaped(&s, &store, 1).await;
    assert!(introspect(&s, &client, &fresh).await);
    // Disabled, then removed: nothing of theirs is active.
    s.store
        .disable_user("alice", s.revoked_now())
        .await
        .unwrap();
    let (_, disabled) = escaped(&s, &store, 2).await;
    assert!(!introspect(&s, &client, &disabled).await, "disabled");
    s.store.remove_user("alice", s.revoked_now()).await.unwrap();
    let (_, removed) = escaped(&s, &store, 2).await;
    assert!(!introspect(&s, &client, &removed).await, "removed");
}
