//! RFC 9470 step-up at the guard: `RequireAcr` and `RequireAuthAge` on routes behind the
//! layer; a token below the `acr` asked, too old, or without the claims gets 401
//! `insufficient_user_authentication` naming `acr_values` and `max_age` (an `auth_time` in
//! the future beyond the leeway is refused earlier, `invalid_token`, by the token
//! validation); another issuer's ladder can be configured.

use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get};
use http::StatusCode;
use serde_json::{Value, json};
use tessera_guard::{AcrLadder, Guard, RequireAcr, RequireAuthAge};

use crate::common::{NOW, bearer, clock, get_with, key, send, static_guard, token};

const PWD: &str = "urn:tessera:acr:pwd";
const MFA: &str = "urn:tessera:acr:mfa";

fn app(guard: &Guard) -> Router {
    Router::new()
        .route(
            "/notes/{id}",
            delete(|| async { "deleted" })
                .route_layer(RequireAcr::new(MFA).within(Duration::from_secs(300))),
        )
        .route(
            "/recent",
            get(|| async { "recent" }).route_layer(RequireAuthAge::new(Duration::from_secs(60))),
        )
        .route(
            "/gold",
            get(|| async { "gold" }).route_layer(RequireAcr::new("gold")),
        )
        .layer(guard.layer())
}

fn del(t: &str) -> http::Request<axum::body::Body> {
    http::Request::delete("/notes/1")
        .header("authorization", bearer(t))
        .body(axum::body::Body::empty())
        .unwrap()
}

const STEP_UP: &str = r#"Bearer realm="notes", error="insufficient_user_authentication", error_description="a stronger and more recent authentication is required", acr_values="urn:tessera:acr:mfa", max_age=300"#;

#[tokio::test]
async fn a_token_below_the_acr_or_too_old_gets_the_step_up_challenge() {
    let k = key("k1");
    let guard = static_guard(&k, clock())
        .dpop(tessera_guard::DpopPolicy::Disabled)
        .build()
        .unwrap();
    let app = app(&guard);
    let fresh_mfa = token(&k, json!({"acr": MFA, "auth_time": NOW - 10}));
    let r = send(&app, del(&fresh_mfa)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "deleted"));

    let refused: [(&str, Value); 5] = [
        ("password only", json!({"acr": PWD, "auth_time": NOW - 10})),
        ("too old", json!({"acr": MFA, "auth_time": NOW - 301})),
        ("no acr", json!({"auth_time": NOW - 10})),
        ("no auth_time", json!({"acr": MFA})),
        (
            "unknown acr",
            json!({"acr": "urn:other:gold", "auth_time": NOW}),
        ),
    ];
    for (why, extra) in refused {
        let r = send(&app, del(&token(&k, extra))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(r.challenge(), STEP_UP, "{why}");
        assert_eq!(r.json()["error"], "insufficient_user_authentication");
    }
    // An auth_time in the future beyond the leeway is refused by the token validation
    // (invalid_token) before the step-up layer is reached: no step-up could fix it. The
    // step-up rule's own refusal of it (defence in depth) is the unit test
    // assurance::tests::auth_age_needs_a_recent_past_auth_time.
    let future = token(&k, json!({"acr": MFA, "auth_time": NOW + 3600}));
    let r = send(&app, del(&future)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.challenge().contains(r#"error="invalid_token""#),
        "{}",
        r.challenge()
    );
    assert!(!r.challenge().contains("insufficient_user_authentication"));

    // RequireAuthAge alone names only max_age.
    let old = token(&k, json!({"acr": MFA, "auth_time": NOW - 61}));
    let r = send(
        &app,
        get_with("/recent", &[("authorization", &bearer(&old))]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.challenge().ends_with(
            r#"error_description="a more recent authentication is required", max_age=60"#
        ),
        "{}",
        r.challenge()
    );
    let r = send(
        &app,
        get_with("/recent", &[("authorization", &bearer(&fresh_mfa))]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // No token at all: the bare challenge, as for any protected route.
    let anonymous = http::Request::delete("/notes/1")
        .body(axum::body::Body::empty())
        .unwrap();
    let r = send(&app, anonymous).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.challenge(), r#"Bearer realm="notes""#);
}

#[tokio::test]
async fn another_issuers_ladder_is_configured_once() {
    let k = key("k1");
    let guard = static_guard(&k, clock())
        .dpop(tessera_guard::DpopPolicy::Disabled)
        .acr_ladder(AcrLadder::new(["bronze", "silver", "gold", "platinum"]))
        .build()
        .unwrap();
    let app = app(&guard);
    let get = |t: &str| get_with("/gold", &[("authorization", &bearer(t))]);
    let r = send(&app, get(&token(&k, json!({"acr": "platinum"})))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, get(&token(&k, json!({"acr": "silver"})))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.challenge().ends_with(r#"acr_values="gold""#),
        "{}",
        r.challenge()
    );
    // Tessera's values mean nothing on this ladder.
    let r = send(&app, get(&token(&k, json!({"acr": MFA})))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
