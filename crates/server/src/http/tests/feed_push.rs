//! The push subscription at the router: negotiation, authentication, cursor checks, the
//! per-client limit and draining, before any stream starts.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use futures_util::StreamExt;
use tessera_token::{OpaqueToken, TokenKind, UnixTime};
use tower::ServiceExt;

use crate::http::AppState;
use crate::store::sqlite::SqliteStore;
use crate::store::{ClientRecord, GrantType};

/// A state whose clients may hold `per_client` subscriptions, with confidential client
/// `rs` (secret returned).
async fn state(per_client: usize) -> (Arc<AppState>, tempfile::TempDir, String) {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let (mut core, dir, _) = crate::state::testing::core_over(store).await;
    core.config.revocation.feed_subscriptions_per_client = per_client;
    let state = Arc::new(AppState::around(core));
    let secret = OpaqueToken::generate(TokenKind::ClientSecret).unwrap();
    state
        .store
        .insert_client(&ClientRecord {
            id: "rs".into(),
            name: "rs".into(),
            secret_hash: Some(secret.hash()),
            grant_types: vec![GrantType::ClientCredentials],
            scope: "feed".parse().unwrap(),
            audience: vec![],
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            first_party: false,
            signing_alg: None,
            id_token_alg: None,
            dpop_bound_access_tokens: false,
            created_at: UnixTime::from_secs(0),
        })
        .await
        .unwrap();
    (state, dir, secret.expose().to_owned())
}

fn subscribe(secret: &str, last_event_id: Option<&str>) -> Request<Body> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("rs:{secret}"));
    let mut r = Request::get("/revocations")
        .header(header::ACCEPT, "text/event-stream")
        .header(header::AUTHORIZATION, format!("Basic {basic}"));
    if let Some(id) = last_event_id {
        r = r.header("last-event-id", id);
    }
    r.body(Body::empty()).unwrap()
}

async fn call(state: &Arc<AppState>, req: Request<Body>) -> axum::response::Response {
    crate::http::router(Arc::clone(state))
        .oneshot(req)
        .await
        .unwrap()
}

async fn error_of(resp: axum::response::Response) -> (StatusCode, String) {
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    (status, v["error"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_subscription_opens_with_its_cursor_as_the_first_event() {
    let (s, _d, secret) = state(4).await;
    s.store
        .revoke_jti("j1", UnixTime::from_secs(i64::MAX / 2), s.clock.now())
        .await
        .unwrap();
    let resp = call(&s, subscribe(&secret, None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    let mut body = resp.into_body().into_data_stream();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8(first.to_vec()).unwrap();
    assert!(text.starts_with("event: revoked\n"), "{text}");
    assert!(text.contains("\"jti\":\"j1\""), "{text}");
    assert!(text.contains("id: 1\n"), "{text}");
}

#[tokio::test]
async fn bogus_cursors_are_refused_before_any_subscription() {
    let (s, _d, secret) = state(4).await;
    for bad in [
        "abc",
        "-1",
        "+0",
        "1.0",
        "999999",
        "18446744073709551616",
        " 0",
    ] {
        let (status, error) = error_of(call(&s, subscribe(&secret, Some(bad))).await).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad:?}"
        );
    }
    // Not UTF-8 at all.
    let mut req = subscribe(&secret, None);
    req.headers_mut().insert(
        "last-event-id",
        axum::http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    let (status, _) = error_of(call(&s, req).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(s.feed_hub.open(), 0, "a refused request holds no place");
}

#[tokio::test]
async fn a_client_that_cannot_read_the_feed_is_refused() {
    let (s, _d, _) = state(4).await;
    let (status, error) = error_of(call(&s, subscribe("wrong", None)).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let anonymous = Request::get("/revocations")
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .unwrap();
    let (status, _) = error_of(call(&s, anonymous).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(s.feed_hub.open(), 0);
}

#[tokio::test]
async fn a_client_past_its_subscriptions_is_refused_until_one_ends() {
    let (s, _d, secret) = state(2).await;
    let first = call(&s, subscribe(&secret, None)).await;
    let second = call(&s, subscribe(&secret, None)).await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = call(&s, subscribe(&secret, None)).await;
    assert!(third.headers().contains_key(header::RETRY_AFTER));
    let (status, error) = error_of(third).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable")
    );
    // A subscriber that goes away gives its place back.
    drop(first);
    assert_eq!(
        call(&s, subscribe(&secret, None)).await.status(),
        StatusCode::OK
    );
    drop(second);
}

#[tokio::test]
async fn a_draining_server_opens_no_subscription_but_still_answers_pulls() {
    let (s, _d, secret) = state(4).await;
    s.start_draining();
    let resp = call(&s, subscribe(&secret, None)).await;
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    let (status, error) = error_of(resp).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("rs:{secret}"));
    let pull = Request::get("/revocations")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&s, pull).await.status(), StatusCode::OK);
}
