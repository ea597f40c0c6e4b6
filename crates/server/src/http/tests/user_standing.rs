//! A grant whose user no longer stands behind it (issue 14, item 1): one that escaped a
//! revoke-all, as a password grant still hashing while `user disable` ran would store it,
//! is refused at refresh (`invalid_grant`) and inactive at introspection.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use tessera_token::{OpaqueToken, TokenKind, UnixTime};

use super::{client_and_user, send, state_with_clock, with_post_auth};
use crate::Clock;
use crate::state::AppState;
use crate::store::{GrantRecord, NewRefreshToken};

/// Stores a live grant of alice (`u_1`) begun at `created_at`, straight in the store;
/// returns its refresh token.
async fn escaped_grant(s: &AppState, created_at: UnixTime) -> String {
    let rt = OpaqueToken::generate(TokenKind::RefreshToken).unwrap();
    let now = s.clock.now();
    let id = crate::ids::random_id("g_").unwrap();
    let grant = GrantRecord {
        id: id.clone(),
        client_id: "web".into(),
        user_id: Some("u_1".into()),
        scope: "a".parse().unwrap(),
        audience: vec!["api".into()],
        created_at,
        expires_at: now.saturating_add(std::time::Duration::from_secs(3600)),
        revoked_at: None,
    };
    let first = NewRefreshToken {
        hash: rt.hash(),
        grant_id: id,
        issued_at: now,
        expires_at: now.saturating_add(std::time::Duration::from_secs(3600)),
    };
    s.store.insert_grant(&grant, Some(&first)).await.unwrap();
    rt.expose().to_owned()
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
    let (s, _dir, clock) = state_with_clock().await;
    let client = client_and_user(&s).await;
    let refused = (
        StatusCode::BAD_REQUEST,
        "invalid_grant".to_owned(),
        json!(false),
    );

    // Disabled: a grant stored after the disable is dead.
    s.store
        .disable_user("alice", s.revoked_now())
        .await
        .unwrap();
    let rt = escaped_grant(&s, clock.now()).await;
    assert_eq!(refresh_and_introspect(&s, &client, &rt).await, refused);

    // Enabled again: a grant begun before the revoke-all stays dead, one begun at or
    // after it stands.
    clock.advance(10);
    s.store.enable_user("alice").await.unwrap();
    let before = escaped_grant(&s, UnixTime::from_secs(clock.now().secs() - 11)).await;
    assert_eq!(refresh_and_introspect(&s, &client, &before).await, refused);
    let after = escaped_grant(&s, clock.now()).await;
    let (status, error, active) = refresh_and_introspect(&s, &client, &after).await;
    assert_eq!((status, active), (StatusCode::OK, json!(true)), "{error}");

    // A revoke-all (`sessions revoke --user`): the same.
    let live = escaped_grant(&s, clock.now()).await;
    clock.advance(5);
    let cut = s.revoked_now();
    let older = escaped_grant(&s, UnixTime::from_secs(clock.now().secs() - 1)).await;
    s.store.revoke_user_grants("u_1", cut).await.unwrap();
    assert_eq!(refresh_and_introspect(&s, &client, &live).await, refused);
    let older_escaped = escaped_grant(&s, UnixTime::from_secs(cut.now.secs() - 1)).await;
    assert_eq!(refresh_and_introspect(&s, &client, &older).await, refused);
    assert_eq!(
        refresh_and_introspect(&s, &client, &older_escaped).await,
        refused
    );

    // Removed: nothing of theirs stands.
    clock.advance(5);
    s.store.remove_user("alice", s.revoked_now()).await.unwrap();
    let rt = escaped_grant(&s, clock.now()).await;
    assert_eq!(refresh_and_introspect(&s, &client, &rt).await, refused);
}
