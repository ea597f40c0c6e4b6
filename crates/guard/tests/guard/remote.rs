//! The remote-issuer verifier against a fake issuer on a loopback socket: discovery,
//! JWKS caching, key rotation, the unknown-kid rate limit, an issuer that is down.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{Value, json};
use tessera_guard::{BuildError, Guard, ManualClock, RemoteIssuer, Verifier};
use tessera_token::{SigningKey, Validation};

use crate::common::*;

#[derive(Default)]
struct Fake {
    base: Mutex<String>,
    jwks: Mutex<Value>,
    cache_control: Mutex<String>,
    issuer_override: Mutex<Option<String>>,
    jwks_uri_override: Mutex<Option<String>>,
    down: AtomicBool,
    fetches: AtomicUsize,
}

fn jwks(keys: &[&SigningKey]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::from_str(&k.public_jwk().unwrap().to_json()).unwrap())
        .collect();
    json!({ "keys": keys })
}

async fn metadata(State(f): State<Arc<Fake>>) -> Response {
    if f.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let base = f.base.lock().unwrap().clone();
    let issuer = f
        .issuer_override
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(base.clone());
    let jwks_uri = f
        .jwks_uri_override
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(format!("{base}/jwks"));
    Json(json!({"issuer": issuer, "jwks_uri": jwks_uri})).into_response()
}

async fn jwks_endpoint(State(f): State<Arc<Fake>>) -> Response {
    f.fetches.fetch_add(1, Ordering::SeqCst);
    if f.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let cc = f.cache_control.lock().unwrap().clone();
    let body = f.jwks.lock().unwrap().clone();
    ([("cache-control", cc)], Json(body)).into_response()
}

async fn fake_issuer(keys: &[&SigningKey]) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    *fake.jwks.lock().unwrap() = jwks(keys);
    *fake.cache_control.lock().unwrap() = "max-age=300".into();
    let app = Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/jwks", get(jwks_endpoint))
        .with_state(fake.clone());
    let base = serve(app).await;
    *fake.base.lock().unwrap() = base.clone();
    (fake, base)
}

fn remote_guard(base: &str, clock: Arc<ManualClock>) -> Guard {
    Guard::builder(
        Verifier::remote(RemoteIssuer::new(base)).unwrap(),
        Validation::access_token(base, AUD),
    )
    .clock(clock)
    .build()
    .unwrap()
}

async fn status(guard: &Guard, t: &str) -> StatusCode {
    send(
        &app(guard),
        get_with("/me", &[("authorization", &bearer(t))]),
    )
    .await
    .status
}

#[tokio::test]
async fn discovery_jwks_and_key_rotation() {
    let k1 = key("k1");
    let (fake, base) = fake_issuer(&[&k1]).await;
    let guard = remote_guard(&base, clock());
    let iss = json!({"iss": base});
    assert_eq!(
        status(&guard, &token(&k1, iss.clone())).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&guard, &token(&k1, iss.clone())).await,
        StatusCode::OK
    );
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 1, "keys are cached");
    // Rotation: a new kid appears in the JWKS and is picked up on first sight.
    let k2 = key("k2");
    *fake.jwks.lock().unwrap() = jwks(&[&k1, &k2]);
    assert_eq!(
        status(&guard, &token(&k2, iss.clone())).await,
        StatusCode::OK
    );
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(status(&guard, &token(&k1, iss)).await, StatusCode::OK);
    assert_eq!(guard.key_fetches(), 2);
}

#[tokio::test]
async fn unknown_kid_refetch_is_rate_limited() {
    let k1 = key("k1");
    let (fake, base) = fake_issuer(&[&k1]).await;
    let c = clock();
    let guard = remote_guard(&base, c.clone());
    let iss = json!({"iss": base});
    guard.warm_up().await.unwrap();
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 1);
    for i in 0..20 {
        let attacker = key(&format!("random-{i}"));
        let r = send(
            &app(&guard),
            get_with(
                "/me",
                &[("authorization", &bearer(&token(&attacker, iss.clone())))],
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.json()["error_description"], "unknown signing key");
    }
    assert_eq!(
        fake.fetches.load(Ordering::SeqCst),
        2,
        "one refetch per interval"
    );
    c.advance(Duration::from_secs(5));
    assert_eq!(
        status(&guard, &token(&key("r"), iss.clone())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 2);
    c.advance(Duration::from_secs(5));
    assert_eq!(
        status(&guard, &token(&key("r"), iss.clone())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fake.fetches.load(Ordering::SeqCst),
        3,
        "allowed again after 10 s"
    );
    assert_eq!(status(&guard, &token(&k1, iss)).await, StatusCode::OK);
}

#[tokio::test]
async fn issuer_down_keys_served_from_cache() {
    let k1 = key("k1");
    let (fake, base) = fake_issuer(&[&k1]).await;
    *fake.cache_control.lock().unwrap() = "max-age=60".into();
    let c = clock();
    let guard = remote_guard(&base, c.clone());
    let iss = json!({"iss": base});
    assert_eq!(
        status(&guard, &token(&k1, iss.clone())).await,
        StatusCode::OK
    );
    fake.down.store(true, Ordering::SeqCst);
    c.advance(Duration::from_secs(120));
    // Stale keys: a background refresh starts (and fails); the request is served.
    assert_eq!(
        status(&guard, &token(&k1, iss.clone())).await,
        StatusCode::OK
    );
    eventually(|| guard.key_fetches() >= 2).await;
    assert_eq!(
        status(&guard, &token(&k1, iss.clone())).await,
        StatusCode::OK
    );
    // Unknown kid while down: still a plain invalid_token, not an outage.
    c.advance(Duration::from_secs(10));
    assert_eq!(
        status(&guard, &token(&key("kx"), iss.clone())).await,
        StatusCode::UNAUTHORIZED
    );
    // Back up: the next refresh installs new keys.
    fake.down.store(false, Ordering::SeqCst);
    c.advance(Duration::from_secs(10));
    let before = fake.fetches.load(Ordering::SeqCst);
    // Traffic goes on; a refresh (background, at most one at a time) lands soon.
    for _ in 0..200 {
        assert_eq!(
            status(&guard, &token(&k1, iss.clone())).await,
            StatusCode::OK
        );
        if fake.fetches.load(Ordering::SeqCst) > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("keys never refreshed after the issuer came back");
}

#[tokio::test]
async fn cold_start_with_issuer_down_is_503() {
    let k1 = key("k1");
    let (fake, base) = fake_issuer(&[&k1]).await;
    fake.down.store(true, Ordering::SeqCst);
    let guard = remote_guard(&base, clock());
    let r = send(
        &app(&guard),
        get_with(
            "/me",
            &[("authorization", &bearer(&token(&k1, json!({"iss": base}))))],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers.get("www-authenticate").is_none());
    assert_eq!(r.headers.get("retry-after").unwrap(), "5");
    assert_eq!(r.json()["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn cache_control_within_floor_and_ceiling() {
    let k1 = key("k1");
    let (fake, base) = fake_issuer(&[&k1]).await;
    *fake.cache_control.lock().unwrap() = "max-age=1".into();
    let c = clock();
    let guard = remote_guard(&base, c.clone());
    let iss = json!({"iss": base});
    assert_eq!(
        status(&guard, &token(&k1, iss.clone())).await,
        StatusCode::OK
    );
    c.advance(Duration::from_secs(30));
    assert_eq!(
        status(&guard, &token(&k1, iss.clone())).await,
        StatusCode::OK
    );
    tokio::task::yield_now().await;
    assert_eq!(
        fake.fetches.load(Ordering::SeqCst),
        1,
        "max-age=1 raised to the 60 s floor"
    );
    c.advance(Duration::from_secs(31));
    assert_eq!(
        status(&guard, &token(&k1, iss.clone())).await,
        StatusCode::OK
    );
    eventually(|| guard.key_fetches() == 2).await;
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 2);

    *fake.cache_control.lock().unwrap() = "public, max-age=999999".into();
    c.advance(Duration::from_secs(61));
    assert_eq!(
        status(&guard, &token(&k1, iss.clone())).await,
        StatusCode::OK
    );
    eventually(|| guard.key_fetches() == 3).await;
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 3);
    c.advance(Duration::from_secs(24 * 3600));
    let now = NOW + 122 + 24 * 3600;
    let fresh = json!({"iss": base, "iat": now, "exp": now + 600});
    assert_eq!(status(&guard, &token(&k1, fresh)).await, StatusCode::OK);
    eventually(|| guard.key_fetches() == 4).await;
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn metadata_must_name_the_issuer_and_https_is_required() {
    let k1 = key("k1");
    let (fake, base) = fake_issuer(&[&k1]).await;
    *fake.issuer_override.lock().unwrap() = Some("https://evil.test".into());
    let guard = remote_guard(&base, clock());
    let t = token(&k1, json!({"iss": base}));
    assert_eq!(status(&guard, &t).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 0);

    *fake.issuer_override.lock().unwrap() = None;
    *fake.jwks_uri_override.lock().unwrap() = Some("http://keys.example/jwks".into());
    let guard = remote_guard(&base, clock());
    assert_eq!(status(&guard, &t).await, StatusCode::SERVICE_UNAVAILABLE);

    let other = Guard::builder(
        Verifier::remote(RemoteIssuer::new(base.clone())).unwrap(),
        Validation::access_token("https://elsewhere.test", AUD),
    )
    .build();
    assert!(matches!(other, Err(BuildError::Invalid(_))));

    let err = Verifier::remote(RemoteIssuer::new("http://as.example")).unwrap_err();
    assert_eq!(err, BuildError::InsecureUrl { field: "issuer" });
    let err =
        Verifier::remote(RemoteIssuer::new("https://as.example").jwks_uri("http://x.example/k"))
            .unwrap_err();
    assert_eq!(err, BuildError::InsecureUrl { field: "jwks_uri" });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_new_kid_requests_makes_one_fetch() {
    let k1 = key("k1");
    let (fake, base) = fake_issuer(&[&k1]).await;
    let guard = remote_guard(&base, clock());
    guard.warm_up().await.unwrap();
    let k2 = key("k2");
    *fake.jwks.lock().unwrap() = jwks(&[&k1, &k2]);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let guard = guard.clone();
            let t = token(&k2, json!({"iss": base}));
            tokio::spawn(async move { status(&guard, &t).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(fake.fetches.load(Ordering::SeqCst), 2, "single flight");
}
