//! Opaque tokens through RFC 7662 introspection against a fake authorization server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tessera_guard::{Guard, Introspection, Verifier};
use tessera_token::SecretString;

use crate::common::*;

#[derive(Default)]
struct Fake {
    calls: AtomicUsize,
}

// base64("rs-client:s3cret/+") with RFC 6749 form-urlencoding first: "s3cret%2F%2B".
const EXPECTED_AUTH: &str = "Basic cnMtY2xpZW50OnMzY3JldCUyRiUyQg==";

async fn introspect(State(f): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    f.calls.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(EXPECTED_AUTH) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = body
        .split('&')
        .find_map(|p| p.strip_prefix("token="))
        .unwrap_or("")
        .to_owned();
    let answer = match token.as_str() {
        // A server without token_use (RFC 7662's token_type only).
        "good-token" => {
            json!({"active": true, "sub": "bob", "client_id": "cli", "scope": "notes:read",
                               "iss": ISS, "aud": AUD, "exp": NOW + 3600, "tenant": "acme",
                               "token_type": "Bearer"})
        }
        "short-token" => {
            json!({"active": true, "sub": "bob", "scope": "notes:read", "exp": NOW + 10,
                   "tenant": "acme", "iss": ISS, "aud": [AUD], "token_use": "access_token"})
        }
        "other-aud" => json!({"active": true, "sub": "bob", "aud": "billing", "iss": ISS,
                              "exp": NOW + 3600, "token_use": "access_token"}),
        // Tessera's answer for a refresh token since issue 14 ...
        "refresh-token" => json!({"active": true, "token_use": "refresh_token", "sub": "bob",
                                  "client_id": "cli", "iss": ISS, "aud": [AUD],
                                  "exp": NOW + 3600, "scope": "notes:read"}),
        // ... and before it: no aud, no token_type, no token_use.
        "old-refresh-token" => json!({"active": true, "sub": "bob", "client_id": "cli",
                                      "iss": ISS, "exp": NOW + 3600, "scope": "notes:read"}),
        // A DPoP-bound token (RFC 9449 section 6.2).
        "bound-token" => json!({"active": true, "sub": "bob", "iss": ISS, "aud": AUD,
                                "exp": NOW + 3600, "token_use": "access_token",
                                "token_type": "DPoP", "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
        "no-iss" => json!({"active": true, "sub": "bob", "aud": AUD, "exp": NOW + 3600,
                           "token_use": "access_token"}),
        "no-aud" => json!({"active": true, "sub": "bob", "iss": ISS, "exp": NOW + 3600,
                           "token_use": "access_token"}),
        _ => json!({"active": false}),
    };
    Json(answer).into_response()
}

async fn setup(secret: &str) -> (Arc<Fake>, Guard, Arc<tessera_guard::ManualClock>) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/introspect", post(introspect))
        .with_state(fake.clone());
    let base = serve(app).await;
    let config = Introspection::new(
        &format!("{base}/introspect"),
        "rs-client",
        SecretString::new(secret),
    )
    .unwrap()
    .max_cache_ttl(Duration::from_secs(60));
    assert!(
        !format!("{config:?}").contains(secret),
        "Debug redacts the secret"
    );
    let c = clock();
    let guard = Guard::builder(Verifier::introspection(config), policy())
        .realm("notes")
        .clock(c.clone())
        .build()
        .unwrap();
    (fake, guard, c)
}

async fn me(guard: &Guard, t: &str) -> Reply {
    send(
        &app(guard),
        get_with("/me", &[("authorization", &bearer(t))]),
    )
    .await
}

#[tokio::test]
async fn active_tokens_accepted_and_cached_up_to_max_ttl() {
    let (fake, guard, c) = setup("s3cret/+").await;
    let r = me(&guard, "good-token").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"sub": "bob", "tenant": "acme", "scope": "notes:read"})
    );
    assert_eq!(me(&guard, "good-token").await.status, StatusCode::OK);
    assert_eq!(
        fake.calls.load(Ordering::SeqCst),
        1,
        "positive answer cached"
    );
    c.advance(Duration::from_secs(60));
    assert_eq!(me(&guard, "good-token").await.status, StatusCode::OK);
    assert_eq!(
        fake.calls.load(Ordering::SeqCst),
        2,
        "no longer than max_cache_ttl"
    );
}

#[tokio::test]
async fn cache_never_outlives_exp() {
    let (fake, guard, c) = setup("s3cret/+").await;
    assert_eq!(me(&guard, "short-token").await.status, StatusCode::OK);
    c.advance(Duration::from_secs(10));
    let r = me(&guard, "short-token").await;
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error_description"], "token expired");
}

#[tokio::test]
async fn inactive_and_foreign_tokens_refused() {
    let (fake, guard, _c) = setup("s3cret/+").await;
    let r = me(&guard, "unknown-token").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.challenge(),
        r#"Bearer realm="notes", error="invalid_token", error_description="token is not active""#
    );
    let r = me(&guard, "other-aud").await;
    assert_eq!(r.json()["error_description"], "audience not accepted");
    assert_eq!(
        me(&guard, "unknown-token").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fake.calls.load(Ordering::SeqCst),
        3,
        "negative answers are not cached"
    );
    // A Tessera-format opaque token with a bad checksum never reaches the network.
    let r = me(
        &guard,
        "tsr_at_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn bad_client_credentials_are_an_outage_not_a_bad_token() {
    let (_fake, guard, _c) = setup("wrong").await;
    let r = me(&guard, "good-token").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// Issue 14, item 6: a refresh token introspected as active is not an access token, and an
/// answer without `iss` or `aud` is refused instead of skipping the check.
#[tokio::test]
async fn refresh_tokens_and_answers_without_iss_or_aud_are_refused() {
    let (_fake, guard, _c) = setup("s3cret/+").await;
    for token in ["refresh-token", "old-refresh-token", "no-iss", "no-aud"] {
        let r = me(&guard, token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_token", "{token}");
    }
    assert_eq!(me(&guard, "good-token").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_introspected_bound_token_is_refused_as_bearer() {
    let (_fake, guard, _c) = setup("s3cret/+").await;
    let r = me(&guard, "bound-token").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_token");
    assert!(r.body.contains("DPoP scheme"), "{}", r.body);
}
