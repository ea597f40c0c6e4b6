//! RFC 6750 section 3 responses, one test per row, through the router in-process.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use tessera_guard::RevocationList;
use tessera_token::UnixTime;

use crate::common::*;

#[tokio::test]
async fn no_token_is_401_with_bare_challenge_and_no_body() {
    let k = key("k1");
    let app = app(&static_guard(&k, clock()).build().unwrap());
    let r = send(&app, get_with("/me", &[])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.challenge(), r#"Bearer realm="notes""#);
    assert_eq!(r.body, "");
}

#[tokio::test]
async fn other_scheme_is_no_bearer_credentials() {
    let k = key("k1");
    let app = app(&static_guard(&k, clock()).build().unwrap());
    let r = send(
        &app,
        get_with("/me", &[("authorization", "Basic YWxpY2U6c2VjcmV0")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.challenge(), r#"Bearer realm="notes""#);
}

#[tokio::test]
async fn malformed_requests_are_400_invalid_request() {
    let k = key("k1");
    let guard = static_guard(&k, clock()).build().unwrap();
    let app = app(&guard);
    let t = token(&k, json!({}));
    for value in ["Bearer", "Bearer a b", "Bearer a,b", "Bearer ä"] {
        let r = send(&app, get_with("/me", &[("authorization", value)])).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{value}");
        assert!(
            r.challenge().contains(r#"error="invalid_request""#),
            "{value}"
        );
        assert_eq!(r.json()["error"], "invalid_request");
    }
    let two = get_with(
        "/me",
        &[
            ("authorization", &bearer(&t)),
            ("authorization", &bearer(&t)),
        ],
    );
    let r = send(&app, two).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error_description"],
        "more than one Authorization header"
    );
}

#[tokio::test]
async fn valid_token_reaches_the_handler_with_typed_custom_claims() {
    let k = key("k1");
    let app = app(&static_guard(&k, clock()).build().unwrap());
    let t = token(&k, json!({}));
    let r = send(&app, get_with("/me", &[("authorization", &bearer(&t))])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"sub": "alice", "tenant": "acme", "scope": "notes:read"})
    );
    // Custom claims that do not fit the handler's type: invalid_token.
    let t = token(&k, json!({"tenant": null}));
    let r = send(&app, get_with("/me", &[("authorization", &bearer(&t))])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_expired_and_foreign_tokens_are_401_invalid_token() {
    let k = key("k1");
    let c = clock();
    let app = app(&static_guard(&k, c.clone()).build().unwrap());
    let other = key("k1");
    let cases = [
        (token(&other, json!({})), "invalid signature"),
        (
            token(&k, json!({"aud": "other-api"})),
            "audience not accepted",
        ),
        (
            token(&k, json!({"iss": "https://evil.test"})),
            "issuer not accepted",
        ),
        (token(&k, json!({"exp": NOW - 3600})), "token expired"),
        ("abc.def".to_owned(), "malformed token"),
    ];
    for (t, desc) in cases {
        let r = send(&app, get_with("/me", &[("authorization", &bearer(&t))])).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{desc}");
        assert_eq!(
            r.challenge(),
            format!(r#"Bearer realm="notes", error="invalid_token", error_description="{desc}""#)
        );
        assert_eq!(
            r.json(),
            json!({"error": "invalid_token", "error_description": desc})
        );
        assert!(!r.body.contains(&t) && !r.challenge().contains(&t));
    }
}

#[tokio::test]
async fn missing_scope_is_403_with_scope_attribute() {
    let k = key("k1");
    let app = app(&static_guard(&k, clock()).build().unwrap());
    let t = token(&k, json!({"scope": "profile"}));
    // Scoped extractor (all-of).
    let r = send(&app, get_with("/notes", &[("authorization", &bearer(&t))])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.challenge(),
        r#"Bearer realm="notes", error="insufficient_scope", error_description="the token lacks the required scope", scope="notes:read""#
    );
    assert_eq!(r.json()["error"], "insufficient_scope");
    // RequireScope layer (any-of).
    let post = http::Request::post("/notes")
        .header("authorization", bearer(&t))
        .body(axum::body::Body::from("n1"))
        .unwrap();
    let r = send(&app, post).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.challenge()
            .ends_with(r#"scope="notes:write notes:admin""#)
    );
    let t = token(&k, json!({"scope": "notes:read notes:admin"}));
    let post = http::Request::post("/notes")
        .header("authorization", bearer(&t))
        .body(axum::body::Body::from("n1"))
        .unwrap();
    let r = send(&app, post).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "created n1"));
    let r = send(&app, get_with("/notes", &[("authorization", &bearer(&t))])).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "notes of alice")
    );
}

#[tokio::test]
async fn revoked_tokens_are_refused_even_when_cached() {
    let k = key("k1");
    let list = std::sync::Arc::new(RevocationList::new());
    let guard = static_guard(&k, clock())
        .revocation(list.clone())
        .build()
        .unwrap();
    let app = app(&guard);
    let t = token(&k, json!({"jti": "leaked"}));
    let req = || get_with("/me", &[("authorization", &bearer(&t))]);
    assert_eq!(send(&app, req()).await.status, StatusCode::OK);
    assert_eq!(guard.cached_tokens(), 1);
    list.revoke_jti("leaked", UnixTime::from_secs(NOW + 600));
    let r = send(&app, req()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error_description"], "token revoked");
    assert_eq!(guard.cached_tokens(), 0, "evicted from the cache");
}

#[tokio::test]
async fn cache_entries_never_outlive_exp() {
    let k = key("k1");
    let c = clock();
    let keys = tessera_token::KeySet::new(vec![k.verifying_key().unwrap()]).unwrap();
    let guard = tessera_guard::Guard::builder(
        tessera_guard::Verifier::keys(keys),
        policy().leeway(Duration::ZERO),
    )
    .clock(c.clone())
    .build()
    .unwrap();
    let app = app(&guard);
    let t = token(&k, json!({"exp": NOW + 60}));
    let req = || get_with("/me", &[("authorization", &bearer(&t))]);
    assert_eq!(send(&app, req()).await.status, StatusCode::OK);
    assert_eq!(send(&app, req()).await.status, StatusCode::OK);
    assert_eq!(guard.cached_tokens(), 1);
    c.advance(Duration::from_secs(60));
    let r = send(&app, req()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error_description"], "token expired");
}

#[tokio::test]
async fn quoted_strings_escaped_and_json_body_optional() {
    let k = key("k1");
    let guard = static_guard(&k, clock())
        .realm(r#"my "api" \ v2"#)
        .json_body(false)
        .build()
        .unwrap();
    let app = app(&guard);
    let r = send(&app, get_with("/me", &[])).await;
    assert_eq!(r.challenge(), r#"Bearer realm="my \"api\" \\ v2""#);
    let r = send(&app, get_with("/me", &[("authorization", "Bearer x.y.z")])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, "");
}

#[tokio::test]
async fn public_and_optional_routes() {
    let k = key("k1");
    let app = app(&static_guard(&k, clock()).build().unwrap());
    let r = send(&app, get_with("/healthz", &[])).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    let r = send(&app, get_with("/optional", &[])).await;
    assert_eq!(r.body, "hello anonymous");
    let t = token(&k, json!({}));
    let r = send(
        &app,
        get_with("/optional", &[("authorization", &bearer(&t))]),
    )
    .await;
    assert_eq!(r.body, "hello alice");
    let r = send(
        &app,
        get_with("/optional", &[("authorization", "Bearer bad.token.x")]),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a bad token is not anonymous"
    );
}

#[tokio::test]
async fn extractor_without_guard_is_500() {
    use axum::routing::get;
    let app = axum::Router::new().route("/me", get(|_a: tessera_guard::Auth| async { "x" }));
    let r = send(&app, get_with("/me", &[])).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    // With Extension(guard) the extractor verifies lazily.
    let k = key("k1");
    let guard = static_guard(&k, clock()).build().unwrap();
    let app = app_lazy(guard);
    let t = token(&k, json!({}));
    let r = send(&app, get_with("/me", &[("authorization", &bearer(&t))])).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, get_with("/me", &[])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

fn app_lazy(guard: tessera_guard::Guard) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/me", get(|_a: tessera_guard::Auth| async { "x" }))
        .layer(axum::Extension(guard))
}

#[tokio::test]
async fn a_handler_can_look_at_the_typed_rejection_before_answering() {
    use axum::response::IntoResponse;
    use axum::routing::get;
    use tessera_guard::{AuthRejection, GuardError, Scoped};
    async fn notes(r: Result<Scoped<NotesRead>, AuthRejection>) -> axum::response::Response {
        match r {
            Ok(s) => format!("notes of {}", s.auth.sub.as_deref().unwrap_or("")).into_response(),
            Err(e) if matches!(e.error(), GuardError::InsufficientScope { .. }) => {
                "public notes only".into_response()
            }
            Err(e) => e.into_response(),
        }
    }
    let k = key("k1");
    let guard = static_guard(&k, clock()).build().unwrap();
    let app = axum::Router::new()
        .route("/notes", get(notes))
        .layer(axum::Extension(guard.clone()));
    let t = token(&k, json!({"scope": "profile"}));
    let r = send(&app, get_with("/notes", &[("authorization", &bearer(&t))])).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "public notes only")
    );
    // Any other refusal, turned into a response, is the guard's own RFC 6750 response.
    let r = send(&app, get_with("/notes", &[])).await;
    let expected = guard.error_response(&GuardError::MissingToken);
    assert_eq!(r.status, expected.status());
    assert_eq!(r.challenge(), r#"Bearer realm="notes""#);
    for name in expected.headers().keys() {
        let got: Vec<_> = r.headers.get_all(name).iter().collect();
        let want: Vec<_> = expected.headers().get_all(name).iter().collect();
        assert_eq!(got, want, "{name}");
    }
}
