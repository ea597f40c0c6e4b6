//! In-process router tests with `tower::ServiceExt::oneshot` (no socket).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::clock::ManualClock;
use crate::config::{FileConfig, Overrides, ServerConfig};
use crate::keys::{self, Keys};
use crate::password::Passwords;
use crate::secrets::MasterKey;
use crate::state::AppState;
use crate::store::sqlite::SqliteStore;

async fn state() -> (Arc<AppState>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::in_memory().await.unwrap();
    let master = MasterKey::load(dir.path()).unwrap();
    let clock = Arc::new(ManualClock::new(tessera_token::UnixTime::from_secs(
        1_800_000_000,
    )));
    let config = ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
    let ring = keys::load_or_create(
        &store,
        &master.sealer().unwrap(),
        config.signing_alg,
        config.access_token_ttl,
        crate::Clock::now(&*clock),
    )
    .await
    .unwrap();
    let state = AppState::new(
        "http://127.0.0.1:8080".into(),
        config,
        Arc::new(store),
        Arc::new(Keys::new(ring)),
        clock,
        Passwords::new(1).await.unwrap(),
        master.refresh_key(),
    );
    (Arc::new(state), dir)
}

async fn send(
    state: &Arc<AppState>,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let resp = super::router(Arc::clone(state)).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

fn form(body: &str) -> Request<Body> {
    Request::post("/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn discovery_names_the_endpoints_and_never_none() {
    let (s, _d) = state().await;
    let (status, _, doc) = send(
        &s,
        Request::get("/.well-known/openid-configuration")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["issuer"], "http://127.0.0.1:8080");
    assert_eq!(doc["token_endpoint"], "http://127.0.0.1:8080/token");
    assert_eq!(
        doc["tessera_revocation_feed_endpoint"],
        "http://127.0.0.1:8080/revocations"
    );
    assert!(!doc.to_string().contains("\"none\""));
    let (status, _, jwks) = send(&s, Request::get("/jwks.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert!(jwks["keys"][0].get("d").is_none());
}

#[tokio::test]
async fn bad_input_never_500s() {
    let (s, _d) = state().await;
    for body in [
        "",
        "grant_type=password&grant_type=password",
        "%%%",
        "grant_type=nope",
        "grant_type=password",
    ] {
        let (status, headers, json) = send(&s, form(body)).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "{body}: {status}"
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(json["error"].is_string());
    }
    let req = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, json) = send(&s, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_request");
    let req = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, "Basic !!!")
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    let (status, headers, json) = send(&s, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"], "invalid_client");
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=")
    );
}
