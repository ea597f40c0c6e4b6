//! Start-up against a fake issuer on loopback: with the issuer down at start the gateway
//! answers 503 (never allow), retries, and decides once the issuer is up and its feed
//! read; with the issuer gone mid-run, tokens signed by a key it never fetched get 503;
//! a missing secret variable and a wrong issuer fail the start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use http::StatusCode;
use serde_json::json;
use tessera_gateway::startup::{self, StartError};
use tessera_gateway::{GatewayConfig, forward_auth};
use tessera_token::{Algorithm, Clock, SigningKey, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::common::{bearer, nginx};

const WAIT: Duration = Duration::from_secs(30);

/// A port nothing listens on now (bound, then released).
async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A fake issuer at `http://127.0.0.1:port`: discovery, one key's JWKS, an empty
/// revocation feed page (its push subscription is refused, so the gateway polls).
async fn fake_issuer(port: u16, key: &SigningKey, advertised: Option<&str>) -> oneshot::Sender<()> {
    let base = format!("http://127.0.0.1:{port}");
    let issuer = advertised.map_or(base.clone(), str::to_owned);
    let meta = json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/jwks"),
        "tessera_revocation_feed_endpoint": format!("{base}/revocations"),
    });
    let jwks = json!({"keys": [serde_json::to_value(key.public_jwk().unwrap()).unwrap()]});
    let app = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { axum::Json(meta) }),
        )
        .route("/jwks", get(move || async move { axum::Json(jwks) }))
        .route(
            "/revocations",
            get(|headers: http::HeaderMap| async move {
                if headers
                    .get("accept")
                    .is_some_and(|a| a.as_bytes().starts_with(b"text/event-stream"))
                {
                    return (StatusCode::NOT_ACCEPTABLE, axum::Json(json!({}))).into_response();
                }
                axum::Json(json!({"revoked": [], "cursor": "0", "has_more": false})).into_response()
            }),
        );
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    stop
}

fn config(port: u16, revocation: Option<&str>) -> GatewayConfig {
    let mut text = format!(
        r#"
listen = "127.0.0.1:0"
mode = "forward_auth"
issuer = "http://127.0.0.1:{port}"
audience = "notes-api"
[forward_auth]
proxy = "nginx"
[[route]]
path = "/notes"
scopes = ["notes:read"]
"#
    );
    if let Some(var) = revocation {
        text.push_str(&format!(
            "[revocation]\nclient_id = \"rs\"\nclient_secret_env = \"{var}\"\n"
        ));
    }
    GatewayConfig::parse(&text).unwrap()
}

fn token(port: u16, key: &SigningKey) -> String {
    let now = SystemClock.now().secs();
    key.sign(
        &json!({"iss": format!("http://127.0.0.1:{port}"), "aud": "notes-api", "sub": "alice",
                "client_id": "cli", "scope": "notes:read", "iat": now, "exp": now + 600,
                "jti": format!("j-{now}-{}", rand_suffix())}),
        Some("at+jwt"),
    )
    .unwrap()
}

fn rand_suffix() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

async fn until_status(router: &Router, auth: &str, want: StatusCode) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = nginx(router, "GET", "/notes", &[("authorization", auth)]).await;
        if r.status == want {
            return;
        }
        assert_ne!(r.status, StatusCode::OK, "allowed while waiting for {want}");
        assert!(
            Instant::now() < deadline,
            "still {} ({}) after {WAIT:?}",
            r.status,
            r.challenge()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// PATH is set in every test environment: it stands in for the secret variable (the
// fake issuer checks no credentials), since tests may not set variables (`set_var` is
// unsafe in edition 2024 and the workspace forbids unsafe code).
const SECRET_VAR: &str = "PATH";

#[tokio::test]
async fn with_the_issuer_down_at_start_tokens_get_503_until_it_is_up() {
    let port = free_port().await;
    let key = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid("k1");
    let config = config(port, Some(SECRET_VAR));
    let gateway = Arc::new(startup::gateway_from_config(&config).await.unwrap());
    assert!(!gateway.is_ready());
    let router = forward_auth::router(gateway.clone(), config.forward_auth.as_ref().unwrap());
    let auth = bearer(&token(port, &key));
    let r = nginx(&router, "GET", "/notes", &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let stop = fake_issuer(port, &key, None).await;
    until_status(&router, &auth, StatusCode::OK).await;
    assert!(gateway.is_ready());
    // Mid-run, the issuer goes away: tokens under the keys already fetched still verify
    // (the guard keeps its key set, as any JWT verifier does), a token under a key the
    // gateway never fetched is refused, never allowed.
    let _ = stop.send(());
    let stranger = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid("k2");
    let auth2 = bearer(&token(port, &stranger));
    for _ in 0..3 {
        let r = nginx(&router, "GET", "/notes", &[("authorization", &auth2)]).await;
        assert!(
            matches!(
                r.status,
                StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{}",
            r.status
        );
        let r = nginx(&router, "GET", "/notes", &[("authorization", &auth)]).await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_feed_out_of_reach_past_max_staleness_gives_503_until_it_is_back() {
    let port = free_port().await;
    let key = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid("k1");
    let mut config = config(port, Some(SECRET_VAR));
    if let Some(r) = config.revocation.as_mut() {
        r.max_staleness_secs = 10;
    }
    let stop = fake_issuer(port, &key, None).await;
    let gateway = Arc::new(startup::gateway_from_config(&config).await.unwrap());
    let router = forward_auth::router(gateway.clone(), config.forward_auth.as_ref().unwrap());
    let auth = bearer(&token(port, &key));
    until_status(&router, &auth, StatusCode::OK).await;
    // The issuer goes away mid-run: tokens keep passing up to max_staleness, then get 503
    // (revocations committed meanwhile are unknown), and /readyz says so.
    let _ = stop.send(());
    let deadline = Instant::now() + WAIT;
    loop {
        let r = nginx(&router, "GET", "/notes", &[("authorization", &auth)]).await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
        assert!(Instant::now() < deadline, "still allowed after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!gateway.is_ready());
    let readyz = crate::common::send(&router, "GET", "/readyz", &[]).await;
    assert_eq!(readyz.status, StatusCode::SERVICE_UNAVAILABLE);
    // Public paths and liveness are unaffected; the feed back: tokens pass again.
    let _back = fake_issuer(port, &key, None).await;
    until_status(&router, &auth, StatusCode::OK).await;
    let readyz = crate::common::send(&router, "GET", "/readyz", &[]).await;
    assert_eq!(readyz.status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_feed_an_unreachable_issuer_gives_503_not_allow() {
    let port = free_port().await;
    let key = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid("k1");
    let config = config(port, None);
    let gateway = Arc::new(startup::gateway_from_config(&config).await.unwrap());
    assert!(gateway.is_ready());
    let router = forward_auth::router(gateway, config.forward_auth.as_ref().unwrap());
    let r = nginx(
        &router,
        "GET",
        "/notes",
        &[("authorization", &bearer(&token(port, &key)))],
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_missing_secret_variable_fails_the_start_naming_it() {
    let config = config(free_port().await, Some("TESSERA_GATEWAY_TEST_NEVER_SET"));
    match startup::gateway_from_config(&config).await {
        Err(e @ StartError::MissingSecret(_)) => {
            assert!(
                e.to_string().contains("TESSERA_GATEWAY_TEST_NEVER_SET"),
                "{e}"
            );
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("started without the secret"),
    }
}

#[tokio::test]
async fn an_issuer_naming_another_issuer_fails_the_start() {
    let port = free_port().await;
    let key = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid("k1");
    let _stop = fake_issuer(port, &key, Some("https://elsewhere.example")).await;
    let config = config(port, Some(SECRET_VAR));
    match startup::gateway_from_config(&config).await {
        Err(StartError::IssuerMismatch(_)) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("started with a mismatched issuer"),
    }
}
