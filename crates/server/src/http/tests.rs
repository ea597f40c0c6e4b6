//! In-process router tests with `tower::ServiceExt::oneshot` (no socket).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::clock::ManualClock;
use crate::http::AppState;
use crate::store::sqlite::SqliteStore;

mod code_issuance;
mod feed_push;
mod login_cancel;
mod refresh_retry;
mod user_standing;

pub(super) async fn state() -> (Arc<AppState>, tempfile::TempDir) {
    let (state, dir, _) = state_with_clock().await;
    (state, dir)
}

pub(crate) async fn state_with_clock() -> (Arc<AppState>, tempfile::TempDir, Arc<ManualClock>) {
    state_over(Arc::new(SqliteStore::in_memory().await.unwrap())).await
}

/// The state over `store`, with a manual clock and the default configuration.
async fn state_over(
    store: Arc<dyn crate::store::Store>,
) -> (Arc<AppState>, tempfile::TempDir, Arc<ManualClock>) {
    let (core, dir, clock) = crate::state::testing::core_over(store).await;
    (Arc::new(AppState::around(core)), dir, clock)
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

/// JSON answers carry `nosniff` as the pages do.
#[tokio::test]
async fn json_answers_are_not_sniffed() {
    let (s, _d) = state().await;
    for path in ["/.well-known/openid-configuration", "/jwks.json"] {
        let (_, headers, _) = send(&s, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
    }
    let (_, headers, _) = send(&s, form("grant_type=nonsense")).await;
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
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
    // No `none` algorithm anywhere; `none` appears only as the token endpoint auth method
    // of public clients (PKCE) and as `prompt=none`.
    for key in [
        "id_token_signing_alg_values_supported",
        "tessera_access_token_signing_alg_values_supported",
    ] {
        assert!(
            !doc[key].to_string().to_lowercase().contains("none"),
            "{key}"
        );
    }
    // RS256 first for ID tokens (OpenID Connect Discovery section 3), then the others.
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "EdDSA"])
    );
    let (status, _, jwks) = send(&s, Request::get("/jwks.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // The EdDSA access-token key and the RS256 ID-token key, public halves only.
    let keys = jwks["keys"].as_array().unwrap();
    let mut algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort_unstable();
    assert_eq!(algs, ["EdDSA", "RS256"]);
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "{private}");
        }
    }
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
        "grant_type=password&username=a%00&password=p",
        "grant_type=client_credentials&client_id=x%00&client_secret=s",
        "grant_type=client_credentials&client_id=nobody&client_secret=s",
    ] {
        let (status, headers, json) = send(&s, form(body)).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "{body}: {status}"
        );
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 11.6.1 (issue 14, item 7): every 401 carries a challenge.
            assert!(headers.contains_key(header::WWW_AUTHENTICATE), "{body}");
        }
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

/// Registers a confidential client (password + refresh_token) and a user, straight in the store.
async fn client_and_user(state: &AppState) -> (String, String) {
    use crate::store::{ClientRecord, GrantType, UserRecord};
    use tessera_token::{OpaqueToken, SecretString, TokenKind};
    let secret = OpaqueToken::generate(TokenKind::ClientSecret).unwrap();
    let client = ClientRecord {
        id: "web".into(),
        name: "web".into(),
        secret_hash: Some(secret.hash()),
        grant_types: vec![GrantType::Password, GrantType::RefreshToken],
        scope: "a".parse().unwrap(),
        audience: vec!["api".into()],
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        first_party: false,
        signing_alg: None,
        id_token_alg: None,
        dpop_bound_access_tokens: false,
        created_at: state.clock.now(),
    };
    state.store.insert_client(&client).await.unwrap();
    let hash = crate::password::hash_one(SecretString::new("long enough"))
        .await
        .unwrap();
    let user = UserRecord {
        id: "u_1".into(),
        name: "alice".into(),
        password_hash: hash,
        disabled: false,
        created_at: state.clock.now(),
        generation: 0,
    };
    state.store.insert_user(&user).await.unwrap();
    ("web".into(), secret.expose().to_owned())
}

fn with_post_auth(body: &str, id: &str, secret: &str) -> Request<Body> {
    form(&format!("{body}&client_id={id}&client_secret={secret}"))
}

#[tokio::test]
async fn lifetimes_follow_the_injected_clock() {
    let (s, _d, clock) = state_with_clock().await;
    let (id, secret) = client_and_user(&s).await;
    let (status, _, login) = send(
        &s,
        with_post_auth(
            "grant_type=password&username=alice&password=long+enough",
            &id,
            &secret,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let at = login["access_token"].as_str().unwrap().to_owned();
    let rt = login["refresh_token"].as_str().unwrap().to_owned();
    let introspect = |token: String| {
        Request::post("/introspect")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "token={token}&client_id={id}&client_secret={secret}"
            )))
            .unwrap()
    };
    let (_, _, v) = send(&s, introspect(at.clone())).await;
    assert_eq!(v["active"], true);
    // The access token expires after its 600 s lifetime: inactive, with no leeway.
    clock.advance(600);
    let (_, _, v) = send(&s, introspect(at)).await;
    assert_eq!(v, serde_json::json!({ "active": false }));
    // The refresh token still works within its idle lifetime (14 days) ...
    let (status, _, next) = send(
        &s,
        with_post_auth(
            &format!("grant_type=refresh_token&refresh_token={rt}"),
            &id,
            &secret,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let rt2 = next["refresh_token"].as_str().unwrap().to_owned();
    // ... and not after it.
    clock.advance(14 * 86_400 + 1);
    let (status, _, err) = send(
        &s,
        with_post_auth(
            &format!("grant_type=refresh_token&refresh_token={rt2}"),
            &id,
            &secret,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
}

#[tokio::test]
async fn the_absolute_lifetime_ends_a_family_however_often_it_refreshes() {
    let (s, _d, clock) = state_with_clock().await;
    let (id, secret) = client_and_user(&s).await;
    let (_, _, login) = send(
        &s,
        with_post_auth(
            "grant_type=password&username=alice&password=long+enough",
            &id,
            &secret,
        ),
    )
    .await;
    let mut rt = login["refresh_token"].as_str().unwrap().to_owned();
    // Refresh every 10 days: each use is within the idle lifetime, but the family ends at 90 days.
    for day in (10..=80).step_by(10) {
        clock.advance(10 * 86_400);
        let (status, _, next) = send(
            &s,
            with_post_auth(
                &format!("grant_type=refresh_token&refresh_token={rt}"),
                &id,
                &secret,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "day {day}: {next}");
        rt = next["refresh_token"].as_str().unwrap().to_owned();
    }
    clock.advance(10 * 86_400);
    let (status, _, err) = send(
        &s,
        with_post_auth(
            &format!("grant_type=refresh_token&refresh_token={rt}"),
            &id,
            &secret,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
}

/// The client cache (docs/server.md, `client_cache_ttl_secs`): a rotated-away secret and a
/// removed client keep working for at most the TTL, measured on the injected clock; a new
/// secret works at once; a wrong secret never does.
#[tokio::test]
async fn cached_clients_follow_secret_rotation_and_removal_within_the_ttl() {
    use tessera_token::{OpaqueToken, TokenKind};
    let (s, _d, clock) = state_with_clock().await;
    let ttl = i64::try_from(s.config.store.client_cache_ttl.as_secs()).unwrap();
    assert!(ttl > 0, "the cache is on by default");
    let (id, old) = client_and_user(&s).await;
    let introspect = |secret: &str| {
        Request::post("/introspect")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "token=tsr_rt_nothing&client_id={id}&client_secret={secret}"
            )))
            .unwrap()
    };
    let status = |r: (StatusCode, _, _)| r.0;
    // Authenticating once caches the record.
    assert_eq!(status(send(&s, introspect(&old)).await), StatusCode::OK);
    let wrong = OpaqueToken::generate(TokenKind::ClientSecret).unwrap();
    assert_eq!(
        status(send(&s, introspect(wrong.expose())).await),
        StatusCode::UNAUTHORIZED
    );

    // Rotation behind the server's back (the CLI writes the store directly).
    let new = OpaqueToken::generate(TokenKind::ClientSecret).unwrap();
    s.store.set_client_secret(&id, &new.hash()).await.unwrap();
    // The new secret works at once: a mismatch re-reads the store ...
    assert_eq!(
        status(send(&s, introspect(new.expose())).await),
        StatusCode::OK
    );
    // ... which also refreshed the cached record, so the old secret is refused now.
    assert_eq!(
        status(send(&s, introspect(&old)).await),
        StatusCode::UNAUTHORIZED
    );

    // Another rotation, with the old record cached and nobody presenting the new secret:
    // the old one works until the entry is `ttl` seconds old, and not after.
    let newer = OpaqueToken::generate(TokenKind::ClientSecret).unwrap();
    s.store.set_client_secret(&id, &newer.hash()).await.unwrap();
    assert_eq!(
        status(send(&s, introspect(new.expose())).await),
        StatusCode::OK
    );
    clock.advance(ttl);
    assert_eq!(
        status(send(&s, introspect(new.expose())).await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(send(&s, introspect(newer.expose())).await),
        StatusCode::OK
    );

    // Removal: refused once the cached record has aged out.
    s.store.remove_client(&id, s.revoked_now()).await.unwrap();
    clock.advance(ttl);
    assert_eq!(
        status(send(&s, introspect(newer.expose())).await),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_client_whose_algorithm_has_no_active_key_gets_503_not_500() {
    use crate::store::{ClientRecord, GrantType};
    use tessera_token::{Algorithm, OpaqueToken, TokenKind};
    let (s, _d) = state().await;
    let secret = OpaqueToken::generate(TokenKind::ClientSecret).unwrap();
    // Only the default EdDSA key exists; this client asks for ES256 tokens.
    let client = ClientRecord {
        id: "svc".into(),
        name: "svc".into(),
        secret_hash: Some(secret.hash()),
        grant_types: vec![GrantType::ClientCredentials],
        scope: "a".parse().unwrap(),
        audience: vec!["api".into()],
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        first_party: false,
        signing_alg: Some(Algorithm::Es256),
        id_token_alg: None,
        dpop_bound_access_tokens: false,
        created_at: s.clock.now(),
    };
    s.store.insert_client(&client).await.unwrap();
    let (status, headers, body) = send(
        &s,
        with_post_auth("grant_type=client_credentials", "svc", secret.expose()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(
        !body.to_string().contains("keys rotate"),
        "detail is logged, not sent"
    );
}

/// A full password queue answers 503 `temporarily_unavailable` with `Retry-After` at once,
/// and the refused attempts give their throttle reservations back: more of them than the
/// per-account limit leave the right password working, not blocked (no half-written
/// state). Without the bound the requests would wait for a hashing thread instead.
#[tokio::test]
async fn a_full_password_queue_answers_503_and_counts_nothing() {
    let (s, _d) = state().await;
    let (id, secret) = client_and_user(&s).await;
    let held: Vec<_> = std::iter::from_fn(|| s.passwords.admit())
        .take(1000)
        .collect();
    assert!(!held.is_empty() && held.len() < 1000);
    let right = "grant_type=password&username=alice&password=long%20enough";
    for _ in 0..(s.config.login.throttle.per_account + 3) {
        let (status, headers, json) = send(&s, with_post_auth(right, &id, &secret)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
        assert_eq!(json["error"], "temporarily_unavailable");
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
    drop(held);
    let (status, _, json) = send(&s, with_post_auth(right, &id, &secret)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

/// Review of issue 14 item 4: `/revoke`'s rate is timed by a monotonic clock. On the first
/// version it followed the wall clock, and a step back of the system time refused every
/// recently seen client for the size of the step (here: after two hours up, a step back
/// of one hour answered 429 for an hour).
#[tokio::test]
async fn a_wall_clock_step_back_does_not_stop_revocations() {
    let (s, _d, clock) = state_with_clock().await;
    let (id, secret) = client_and_user(&s).await;
    let login = || {
        with_post_auth(
            "grant_type=password&username=alice&password=long+enough",
            &id,
            &secret,
        )
    };
    let revoke = |token: &str| {
        let mut req = with_post_auth(&format!("token={token}"), &id, &secret);
        *req.uri_mut() = "/revoke".parse().unwrap();
        req
    };
    for step in [7200, -3600] {
        clock.advance(step);
        let (status, _, tokens) = send(&s, login()).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let rt = tokens["refresh_token"].as_str().unwrap();
        let (status, _, err) = send(&s, revoke(rt)).await;
        assert_eq!(status, StatusCode::OK, "after a step of {step} s: {err}");
    }
}
