//! Token source rules: header, cookie with CSRF defences, never the query, form body
//! only when enabled.

use axum::body::Body;
use http::{HeaderName, Request, StatusCode};
use serde_json::json;
use tessera_guard::{CookieSource, TokenSources};

use crate::common::*;

fn double_submit() -> TokenSources {
    TokenSources::header_only().cookie(CookieSource::double_submit(
        "at",
        "csrf",
        HeaderName::from_static("x-csrf-token"),
    ))
}

fn post(uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut b = Request::post(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn query_tokens_always_refused() {
    let k = key("k1");
    let app = app(&static_guard(&k, clock()).build().unwrap());
    let t = token(&k, json!({}));
    // Cached first, so the warm path is the one that must refuse.
    let ok = send(&app, get_with("/me", &[("authorization", &bearer(&t))])).await;
    assert_eq!(ok.status, StatusCode::OK);
    for uri in [
        format!("/me?access_token={t}"),
        format!("/me?x=1&access%5Ftoken={t}"),
        format!("/healthz?access_token={t}").replace("/healthz", "/optional"),
    ] {
        let r = send(&app, get_with(&uri, &[("authorization", &bearer(&t))])).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(r.json()["error"], "invalid_request");
        assert_eq!(
            r.json()["error_description"],
            "access tokens in the URL are not accepted"
        );
    }
}

#[tokio::test]
async fn cookie_ignored_unless_configured() {
    let k = key("k1");
    let app = app(&static_guard(&k, clock()).build().unwrap());
    let t = token(&k, json!({}));
    let r = send(&app, get_with("/me", &[("cookie", &format!("at={t}"))])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.challenge(), r#"Bearer realm="notes""#);
}

#[tokio::test]
async fn cookie_with_double_submit_csrf() {
    let k = key("k1");
    let app = app(&static_guard(&k, clock())
        .sources(double_submit())
        .build()
        .unwrap());
    let t = token(&k, json!({"scope": "notes:read notes:write"}));
    let cookie = format!("theme=dark; at={t}; csrf=c5rf-v4lue");
    // Safe method: no CSRF check.
    let r = send(&app, get_with("/me", &[("cookie", &cookie)])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Unsafe method without the header: the error names it.
    let r = send(&app, post("/notes", &[("cookie", &cookie)], "n")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error_description"],
        "CSRF check failed: missing x-csrf-token header"
    );
    let r = send(
        &app,
        post(
            "/notes",
            &[("cookie", &cookie), ("x-csrf-token", "nope")],
            "n",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        &app,
        post(
            "/notes",
            &[("cookie", &cookie), ("x-csrf-token", "c5rf-v4lue")],
            "n",
        ),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "created n"));
    // The same cookie twice (cookie tossing) is refused.
    let tossed = format!("at={t}; at={t}");
    let r = send(&app, get_with("/me", &[("cookie", &tossed)])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The Authorization header wins over the cookie.
    let r = send(
        &app,
        get_with(
            "/me",
            &[("cookie", "at=garbage"), ("authorization", &bearer(&t))],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn cookie_with_fetch_metadata_csrf() {
    let k = key("k1");
    let sources =
        TokenSources::header_only().cookie(CookieSource::same_origin("at", ["https://app.test"]));
    let app = app(&static_guard(&k, clock()).sources(sources).build().unwrap());
    let t = token(&k, json!({"scope": "notes:write"}));
    let cookie = format!("at={t}");
    let r = send(&app, post("/notes", &[("cookie", &cookie)], "n")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error_description"],
        "CSRF check failed: missing Origin or Sec-Fetch-Site header"
    );
    let cross = [
        ("cookie", cookie.as_str()),
        ("sec-fetch-site", "cross-site"),
    ];
    assert_eq!(
        send(&app, post("/notes", &cross, "n")).await.status,
        StatusCode::BAD_REQUEST
    );
    let evil = [("cookie", cookie.as_str()), ("origin", "https://evil.test")];
    assert_eq!(
        send(&app, post("/notes", &evil, "n")).await.status,
        StatusCode::BAD_REQUEST
    );
    let same = [
        ("cookie", cookie.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    assert_eq!(
        send(&app, post("/notes", &same, "n")).await.status,
        StatusCode::OK
    );
    let origin = [("cookie", cookie.as_str()), ("origin", "https://app.test")];
    assert_eq!(
        send(&app, post("/notes", &origin, "n")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn form_body_token_refused_unless_enabled() {
    let k = key("k1");
    let t = token(&k, json!({"scope": "notes:write"}));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let body = format!("title=hi&access_token={t}");

    let app_off = app(&static_guard(&k, clock()).build().unwrap());
    let r = send(&app_off, post("/notes", &form, &body)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error_description"],
        "tokens in a form body are not accepted"
    );
    // A form without a token is simply unauthenticated.
    let r = send(&app_off, post("/notes", &form, "title=hi")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let sources = TokenSources::header_only().accept_form_body(true);
    let app_on = app(&static_guard(&k, clock()).sources(sources).build().unwrap());
    let r = send(&app_on, post("/notes", &form, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        format!("created {body}"),
        "the handler still gets the body"
    );
}

#[tokio::test]
async fn sensitive_headers_are_marked() {
    use axum::routing::get;
    let k = key("k1");
    let guard = static_guard(&k, clock()).build().unwrap();
    let app = axum::Router::new()
        .route(
            "/h",
            get(|h: http::HeaderMap| async move {
                format!(
                    "{}",
                    h.get("authorization").is_some_and(|v| v.is_sensitive())
                )
            }),
        )
        .layer(guard.layer());
    let t = token(&k, json!({}));
    let r = send(&app, get_with("/h", &[("authorization", &bearer(&t))])).await;
    assert_eq!(r.body, "true");
}
