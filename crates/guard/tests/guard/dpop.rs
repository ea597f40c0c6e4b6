//! DPoP at the guard (RFC 9449 section 7): bound tokens with their proofs, every refusal
//! with its error and challenge, the warm cache, replays, nonces, per-route policy, and
//! RFC 9728 metadata.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde_json::{Value, json};
use tessera_guard::{
    Auth, DpopPolicy, Guard, GuardError, ManualClock, RequireDpop, ResourceMetadata,
    RevocationCheck,
};
use tessera_token::dpop::{access_token_hash, sign_proof};
use tessera_token::{Algorithm, BearerToken, Claims, SigningKey, UnixTime};

use crate::common::*;

const BASE: &str = "https://api.test";

static PROOF_ID: AtomicU64 = AtomicU64::new(0);

fn client_key() -> SigningKey {
    SigningKey::generate(Algorithm::Es256).unwrap()
}

fn jkt(key: &SigningKey) -> String {
    key.public_jwk().unwrap().thumbprint().unwrap()
}

/// An access token bound to `client`'s key.
fn bound_token(issuer: &SigningKey, client: &SigningKey) -> String {
    token(issuer, json!({"cnf": {"jkt": jkt(client)}}))
}

/// A proof by `client` for `method url` carrying the hash of `token`, made at `iat`, with
/// `extra` merged into its claims.
fn proof_at(
    client: &SigningKey,
    method: &str,
    url: &str,
    token: &str,
    iat: i64,
    extra: Value,
) -> String {
    let mut c = json!({
        "jti": format!("proof-{}", PROOF_ID.fetch_add(1, Ordering::Relaxed)),
        "htm": method, "htu": url, "iat": iat, "ath": access_token_hash(token),
    });
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    sign_proof(client, &c).unwrap()
}

fn proof(client: &SigningKey, url: &str, token: &str) -> String {
    proof_at(client, "GET", url, token, NOW, json!({}))
}

fn dpop(t: &str) -> String {
    format!("DPoP {t}")
}

fn guard_with(issuer: &SigningKey, c: Arc<ManualClock>) -> tessera_guard::GuardBuilder {
    static_guard(issuer, c).public_base_url(BASE)
}

async fn me_dpop(app: &Router, t: &str, p: &str) -> Reply {
    send(
        app,
        get_with("/me", &[("authorization", &dpop(t)), ("dpop", p)]),
    )
    .await
}

/// Every `WWW-Authenticate` value of a reply.
fn challenges(r: &Reply) -> Vec<String> {
    r.headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The error of the `DPoP` challenge.
fn dpop_challenge(r: &Reply) -> String {
    challenges(r)
        .into_iter()
        .find(|c| c.starts_with("DPoP "))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_bound_token_with_its_proof_is_accepted_and_unbound_bearer_tokens_still_are() {
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).build().unwrap();
    let app = app(&guard);
    let t = bound_token(&k, &client);
    let r = me_dpop(&app, &t, &proof(&client, &format!("{BASE}/me"), &t)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["sub"], "alice");
    // RSA and EdDSA proof keys too.
    for alg in [Algorithm::EdDsa, Algorithm::Rs256] {
        let client = SigningKey::generate(alg).unwrap();
        let t = bound_token(&k, &client);
        let r = me_dpop(&app, &t, &proof(&client, &format!("{BASE}/me"), &t)).await;
        assert_eq!(r.status, StatusCode::OK, "{alg:?}: {}", r.body);
    }
    let plain = token(&k, json!({}));
    let r = send(&app, get_with("/me", &[("authorization", &bearer(&plain))])).await;
    assert_eq!(r.status, StatusCode::OK);
    // The scheme name is case-insensitive (RFC 9110 section 11.1); a token68 it must be.
    let t = bound_token(&k, &client);
    let p = proof(&client, &format!("{BASE}/me"), &t);
    let r = send(
        &app,
        get_with(
            "/me",
            &[("authorization", &format!("dpop  {t}")), ("dpop", &p)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(
        &app,
        get_with("/me", &[("authorization", "DPoP a b"), ("dpop", &p)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        &app,
        get_with("/me", &[("authorization", "DPoP "), ("dpop", &p)]),
    )
    .await;
    // A bare scheme is no credentials: 401 without an error code.
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn a_bound_token_presented_as_bearer_is_refused_with_both_challenges() {
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).build().unwrap();
    let t = bound_token(&k, &client);
    let r = send(
        &app(&guard),
        get_with("/me", &[("authorization", &bearer(&t))]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_token");
    let all = challenges(&r);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], r#"Bearer realm="notes""#);
    assert!(
        all[1].starts_with(r#"DPoP algs="EdDSA ES256 RS256 PS256", error="invalid_token""#),
        "{all:?}"
    );
    // Guard::verify (a token without its request) refuses it too.
    let e = guard
        .verify(&BearerToken::new(&t).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, GuardError::TokenBinding(_)), "{e:?}");
}

#[tokio::test]
async fn an_unbound_token_with_the_dpop_scheme_is_refused() {
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).build().unwrap();
    let t = token(&k, json!({}));
    let r = me_dpop(&app(&guard), &t, &proof(&client, &format!("{BASE}/me"), &t)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_token");
    assert!(dpop_challenge(&r).contains(r#"error="invalid_token""#));
}

#[tokio::test]
async fn a_proof_with_the_bearer_scheme_and_several_proofs_are_refused() {
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).build().unwrap();
    let app = app(&guard);
    let url = format!("{BASE}/me");
    let plain = token(&k, json!({}));
    let r = send(
        &app,
        get_with(
            "/me",
            &[
                ("authorization", &bearer(&plain)),
                ("dpop", &proof(&client, &url, &plain)),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_request");

    let t = bound_token(&k, &client);
    let (p1, p2) = (proof(&client, &url, &t), proof(&client, &url, &t));
    let r = send(
        &app,
        get_with(
            "/me",
            &[("authorization", &dpop(&t)), ("dpop", &p1), ("dpop", &p2)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_dpop_proof");
    assert_eq!(r.json()["error_description"], "more than one DPoP header");
    // Neither proof was spent by the refused request.
    assert_eq!(me_dpop(&app, &t, &p1).await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_proof_mismatch_is_invalid_dpop_proof() {
    let (k, client) = (key("k1"), client_key());
    let c = clock();
    let guard = guard_with(&k, c.clone()).build().unwrap();
    let app = app(&guard);
    let url = format!("{BASE}/me");
    let t = bound_token(&k, &client);
    let other = bound_token(&k, &client);
    let thief = client_key();
    let cases: Vec<(&str, String)> = vec![
        ("no proof", String::new()),
        ("another key", proof(&thief, &url, &t)),
        ("another URL", proof(&client, &format!("{BASE}/notes"), &t)),
        ("another host", proof(&client, "https://other.test/me", &t)),
        (
            "another method",
            proof_at(&client, "POST", &url, &t, NOW, json!({})),
        ),
        (
            "stale iat",
            proof_at(&client, "GET", &url, &t, NOW - 600, json!({})),
        ),
        (
            "future iat",
            proof_at(&client, "GET", &url, &t, NOW + 600, json!({})),
        ),
        ("another token's ath", proof(&client, &url, &other)),
        (
            "no ath",
            proof_at(&client, "GET", &url, &t, NOW, json!({"ath": null})),
        ),
        ("garbage", "not.a.proof".into()),
        ("oversized", "a".repeat(20_000)),
    ];
    for (why, p) in cases {
        let r = if p.is_empty() {
            send(&app, get_with("/me", &[("authorization", &dpop(&t))])).await
        } else {
            me_dpop(&app, &t, &p).await
        };
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{why}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_dpop_proof", "{why}");
        assert!(
            dpop_challenge(&r).contains(r#"error="invalid_dpop_proof""#),
            "{why}: {:?}",
            challenges(&r)
        );
        assert!(!r.body.contains(&t), "{why}: the token is never echoed");
    }
}

#[tokio::test]
async fn a_replayed_proof_is_refused_even_concurrently() {
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).build().unwrap();
    let app = app(&guard);
    let t = bound_token(&k, &client);
    let p = proof(&client, &format!("{BASE}/me"), &t);
    assert_eq!(me_dpop(&app, &t, &p).await.status, StatusCode::OK);
    let r = me_dpop(&app, &t, &p).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error_description"], "the proof was already used");

    // Twenty requests racing with one fresh proof: exactly one passes.
    let p = proof(&client, &format!("{BASE}/me"), &t);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, t, p) = (app.clone(), t.clone(), p.clone());
        tasks.push(tokio::spawn(
            async move { me_dpop(&app, &t, &p).await.status },
        ));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}

/// A revocation check switched from the test.
struct Switch(AtomicBool);

impl RevocationCheck for Switch {
    fn is_revoked(&self, _: &Claims, _: UnixTime) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_proof_is_spent_only_when_every_other_check_passed() {
    let (k, client) = (key("k1"), client_key());
    let revoked = Arc::new(Switch(AtomicBool::new(true)));
    let guard = guard_with(&k, clock())
        .revocation(revoked.clone())
        .build()
        .unwrap();
    let app = app(&guard);
    let t = bound_token(&k, &client);
    let p = proof(&client, &format!("{BASE}/me"), &t);
    let r = me_dpop(&app, &t, &p).await;
    assert_eq!(r.json()["error_description"], "token revoked");
    revoked.0.store(false, Ordering::SeqCst);
    assert_eq!(me_dpop(&app, &t, &p).await.status, StatusCode::OK);
}

#[tokio::test]
async fn confirmation_methods_the_guard_cannot_check_are_refused() {
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).build().unwrap();
    let app = app(&guard);
    for cnf in [
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"jkt": jkt(&client), "kmac": "x"}),
        json!({}),
    ] {
        let t = token(&k, json!({ "cnf": cnf }));
        for r in [
            send(&app, get_with("/me", &[("authorization", &bearer(&t))])).await,
            me_dpop(&app, &t, &proof(&client, &format!("{BASE}/me"), &t)).await,
        ] {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{cnf}");
            assert_eq!(r.json()["error"], "invalid_token", "{cnf}");
        }
    }
}

#[tokio::test]
async fn the_warm_cache_saves_the_signature_check_never_the_proof_check() {
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).build().unwrap();
    let app = app(&guard);
    let url = format!("{BASE}/me");
    let t = bound_token(&k, &client);
    let first = proof(&client, &url, &t);
    assert_eq!(me_dpop(&app, &t, &first).await.status, StatusCode::OK);
    assert_eq!(guard.cached_tokens(), 1, "the token is cached");
    // Cached: a fresh proof passes, the first one replayed does not, nor none, nor
    // another key's, nor Bearer.
    assert_eq!(
        me_dpop(&app, &t, &proof(&client, &url, &t)).await.status,
        StatusCode::OK
    );
    let replay = me_dpop(&app, &t, &first).await;
    assert_eq!(replay.json()["error"], "invalid_dpop_proof");
    let none = send(&app, get_with("/me", &[("authorization", &dpop(&t))])).await;
    assert_eq!(none.json()["error"], "invalid_dpop_proof");
    let stolen = me_dpop(&app, &t, &proof(&client_key(), &url, &t)).await;
    assert_eq!(stolen.json()["error"], "invalid_dpop_proof");
    let as_bearer = send(&app, get_with("/me", &[("authorization", &bearer(&t))])).await;
    assert_eq!(as_bearer.json()["error"], "invalid_token");
    // The cache's hash of the token is the `ath` checked: a proof made for another
    // token of the same key is refused on the warm path too.
    let other = bound_token(&k, &client);
    let wrong_ath = me_dpop(&app, &t, &proof(&client, &url, &other)).await;
    assert_eq!(wrong_ath.json()["error"], "invalid_dpop_proof");
    assert_eq!(guard.cached_tokens(), 1);
}

#[tokio::test]
async fn with_the_cache_off_ath_is_checked_against_the_presented_token() {
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).cache_capacity(0).build().unwrap();
    let app = app(&guard);
    let url = format!("{BASE}/me");
    let (t, other) = (bound_token(&k, &client), bound_token(&k, &client));
    let r = me_dpop(&app, &t, &proof(&client, &url, &other)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_dpop_proof");
    assert_eq!(
        me_dpop(&app, &t, &proof(&client, &url, &t)).await.status,
        StatusCode::OK
    );
    assert_eq!(guard.cached_tokens(), 0);
}

#[tokio::test]
async fn nonces_are_required_when_configured_and_shared_by_instances_with_one_secret() {
    let (k, client) = (key("k1"), client_key());
    let c = clock();
    let secret = b"a 32-byte secret shared by the api fleet".to_vec();
    let step = Duration::from_secs(60);
    let build = |secret: Vec<u8>| {
        guard_with(&k, c.clone())
            .dpop_nonce(secret, step)
            .build()
            .unwrap()
    };
    let (a, b) = (app(&build(secret.clone())), app(&build(secret)));
    let other = app(&build(b"another deployment's 32-byte secret!!".to_vec()));
    let url = format!("{BASE}/me");
    let t = bound_token(&k, &client);
    let r = me_dpop(&a, &t, &proof(&client, &url, &t)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "use_dpop_nonce");
    assert!(dpop_challenge(&r).contains(r#"error="use_dpop_nonce""#));
    let nonce = r
        .headers
        .get("dpop-nonce")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let with = |n: &str| proof_at(&client, "GET", &url, &t, NOW, json!({ "nonce": n }));
    assert_eq!(me_dpop(&a, &t, &with(&nonce)).await.status, StatusCode::OK);
    assert_eq!(
        me_dpop(&b, &t, &with(&nonce)).await.status,
        StatusCode::OK,
        "another instance"
    );
    let r = me_dpop(&other, &t, &with(&nonce)).await;
    assert_eq!(r.json()["error"], "use_dpop_nonce", "another secret");
    assert_eq!(
        me_dpop(&a, &t, &with("made-up")).await.json()["error"],
        "use_dpop_nonce"
    );
    // Two steps later the nonce is stale (the proof's iat is fresh).
    c.advance(Duration::from_secs(121));
    let later = NOW + 121;
    let p = proof_at(&client, "GET", &url, &t, later, json!({ "nonce": nonce }));
    assert_eq!(me_dpop(&a, &t, &p).await.json()["error"], "use_dpop_nonce");
    // A short secret is a configuration error.
    let e = guard_with(&k, clock())
        .dpop_nonce(b"short".to_vec(), step)
        .build();
    assert!(e.is_err());
}

/// /me accepts both schemes; /transfer requires DPoP.
fn policy_app(guard: &Guard) -> Router {
    async fn me(auth: Auth) -> String {
        auth.sub.clone().unwrap_or_default()
    }
    Router::new()
        .route("/me", get(me))
        .route("/transfer", get(me).route_layer(RequireDpop))
        .layer(guard.layer())
}

#[tokio::test]
async fn require_dpop_on_one_route_refuses_bearer_tokens_with_a_dpop_challenge_only() {
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).build().unwrap();
    let app = policy_app(&guard);
    let plain = token(&k, json!({}));
    assert_eq!(
        send(&app, get_with("/me", &[("authorization", &bearer(&plain))]))
            .await
            .status,
        StatusCode::OK
    );
    let r = send(
        &app,
        get_with("/transfer", &[("authorization", &bearer(&plain))]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_token");
    let all = challenges(&r);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].starts_with("DPoP algs="), "{all:?}");
    let t = bound_token(&k, &client);
    let p = proof(&client, &format!("{BASE}/transfer"), &t);
    let r = send(
        &app,
        get_with("/transfer", &[("authorization", &dpop(&t)), ("dpop", &p)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_guard_can_require_dpop_everywhere_or_refuse_it() {
    let (k, client) = (key("k1"), client_key());
    let url = format!("{BASE}/me");
    let t = bound_token(&k, &client);
    let plain = token(&k, json!({}));

    let required = app(&guard_with(&k, clock())
        .dpop(DpopPolicy::Required)
        .build()
        .unwrap());
    let r = send(
        &required,
        get_with("/me", &[("authorization", &bearer(&plain))]),
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(challenges(&r).len(), 1);
    let r = send(&required, get_with("/me", &[])).await;
    assert_eq!(challenges(&r), [r#"DPoP algs="EdDSA ES256 RS256 PS256""#]);
    assert_eq!(
        me_dpop(&required, &t, &proof(&client, &url, &t))
            .await
            .status,
        StatusCode::OK
    );

    let bearer_only = app(&guard_with(&k, clock())
        .dpop(DpopPolicy::Disabled)
        .build()
        .unwrap());
    let r = me_dpop(&bearer_only, &t, &proof(&client, &url, &t)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = send(
        &bearer_only,
        get_with("/me", &[("authorization", &bearer(&t))]),
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(challenges(&r).len(), 1, "Bearer only");
    assert!(challenges(&r)[0].starts_with("Bearer "));
}

#[tokio::test]
async fn htu_is_the_public_url_behind_a_proxy_and_nested_routers() {
    let (k, client) = (key("k1"), client_key());
    let guard = static_guard(&k, clock())
        .public_base_url("https://api.example/notes-api/")
        .build()
        .unwrap();
    let app = Router::new().nest("/v1", policy_app(&guard));
    let t = bound_token(&k, &client);
    let public = "https://api.example/notes-api/v1/me";
    let r = send(
        &app,
        get_with(
            "/v1/me",
            &[
                ("authorization", &dpop(&t)),
                ("dpop", &proof(&client, public, &t)),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The internal URL (what the proxy forwards to) is not the public one.
    let internal = proof(&client, "http://10.0.0.7:8080/v1/me", &t);
    let r = send(
        &app,
        get_with(
            "/v1/me",
            &[("authorization", &dpop(&t)), ("dpop", &internal)],
        ),
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_dpop_proof");
    // A bad base URL is a start-up error.
    assert!(
        static_guard(&k, clock())
            .public_base_url("ftp://api.example")
            .build()
            .is_err()
    );
    assert!(
        static_guard(&k, clock())
            .public_base_url("https://api.example/?q")
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn without_a_base_url_htu_comes_from_the_host_header() {
    let (k, client) = (key("k1"), client_key());
    let guard = static_guard(&k, clock()).build().unwrap();
    let app = app(&guard);
    let t = bound_token(&k, &client);
    let send_to = |host: &'static str, htu: &'static str| {
        let (app, t, p) = (app.clone(), t.clone(), proof(&client, htu, &t));
        async move {
            send(
                &app,
                get_with(
                    "/me",
                    &[("host", host), ("authorization", &dpop(&t)), ("dpop", &p)],
                ),
            )
            .await
        }
    };
    assert_eq!(
        send_to("api.test", "https://api.test/me").await.status,
        StatusCode::OK
    );
    assert_eq!(
        send_to("127.0.0.1:3000", "http://127.0.0.1:3000/me")
            .await
            .status,
        StatusCode::OK
    );
    let r = send_to("api.test", "http://api.test/me").await;
    assert_eq!(
        r.json()["error"],
        "invalid_dpop_proof",
        "https is assumed off loopback"
    );
    let r = send(
        &app,
        get_with(
            "/me",
            &[
                ("authorization", &dpop(&t)),
                ("dpop", &proof(&client, "https://api.test/me", &t)),
            ],
        ),
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_dpop_proof", "no Host, no URL");
}

#[tokio::test]
async fn protected_resource_metadata_is_served_and_named_in_challenges() {
    let k = key("k1");
    let meta = ResourceMetadata::new("https://api.test/notes")
        .authorization_server(ISS)
        .scopes(["notes:read", "notes:write"])
        .resource_name("Notes");
    let guard = guard_with(&k, clock())
        .resource_metadata(meta)
        .build()
        .unwrap();
    let app = app(&guard).merge(guard.metadata_router());
    let r = send(
        &app,
        get_with("/.well-known/oauth-protected-resource/notes", &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.json(),
        json!({
            "resource": "https://api.test/notes",
            "authorization_servers": [ISS],
            "scopes_supported": ["notes:read", "notes:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Notes",
            "dpop_signing_alg_values_supported": ["EdDSA", "ES256", "RS256", "PS256"],
            "dpop_bound_access_tokens_required": false,
        })
    );
    let r = send(&app, get_with("/me", &[])).await;
    let url = r#"resource_metadata="https://api.test/.well-known/oauth-protected-resource/notes""#;
    for c in challenges(&r) {
        assert!(c.ends_with(url), "{c}");
    }
    // Required DPoP says so; a plain-http resource off loopback is refused at start-up.
    let required = guard_with(&k, clock())
        .dpop(DpopPolicy::Required)
        .resource_metadata(ResourceMetadata::new("https://api.test"))
        .build()
        .unwrap();
    let meta = required.resource_metadata().unwrap();
    assert!(meta.dpop_bound_access_tokens_required);
    assert_eq!(
        meta.url(),
        "https://api.test/.well-known/oauth-protected-resource"
    );
    let e = guard_with(&k, clock())
        .resource_metadata(ResourceMetadata::new("http://api.test"))
        .build();
    assert!(e.is_err());
}

/// A flood of fresh proofs by one key fills its share of the replay cache: further proofs
/// are refused with 503 and `Retry-After`, and a captured proof is still a replay (an
/// evicting cache would forget it and accept it again).
#[tokio::test]
async fn a_full_replay_cache_refuses_new_proofs_and_still_knows_the_old_ones() {
    let (k, client, other) = (key("k1"), client_key(), client_key());
    let guard = guard_with(&k, clock())
        .dpop_replay_capacity(8)
        .build()
        .unwrap();
    let app = app(&guard);
    let t = bound_token(&k, &client);
    let url = format!("{BASE}/me");
    let captured = proof(&client, &url, &t);
    assert_eq!(me_dpop(&app, &t, &captured).await.status, StatusCode::OK);
    // Its share is a quarter of 8: one more proof fits, the next is refused.
    assert_eq!(
        me_dpop(&app, &t, &proof(&client, &url, &t)).await.status,
        StatusCode::OK
    );
    for _ in 0..20 {
        let r = me_dpop(&app, &t, &proof(&client, &url, &t)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert!(r.headers.contains_key("retry-after"));
    }
    let r = me_dpop(&app, &t, &captured).await;
    assert_eq!(r.json()["error"], "invalid_dpop_proof", "still a replay");
    // Another key still has room.
    let t2 = bound_token(&k, &other);
    assert_eq!(
        me_dpop(&app, &t2, &proof(&other, &url, &t2)).await.status,
        StatusCode::OK
    );
}

/// Without a base URL, a `Host` that is not a bare host[:port] would move the path the
/// proof is checked against (`Host: api.test/admin` with `GET /me` checks `/admin/me`).
#[tokio::test]
async fn a_host_with_a_path_or_userinfo_is_refused() {
    let (k, client) = (key("k1"), client_key());
    let guard = static_guard(&k, clock()).build().unwrap();
    let app = app(&guard);
    let t = bound_token(&k, &client);
    for (host, htu) in [
        ("api.test/admin", "https://api.test/admin/me"),
        ("api.test?x=", "https://api.test?x=/me"),
        ("user@api.test", "https://user@api.test/me"),
        ("api.test#", "https://api.test#/me"),
    ] {
        let p = proof(&client, htu, &t);
        let r = send(
            &app,
            get_with(
                "/me",
                &[("host", host), ("authorization", &dpop(&t)), ("dpop", &p)],
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{host}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request", "{host}");
    }
}

/// The same guard as an optional layer on the app and a required one on a nested router:
/// the second passes the request on instead of spending its proof again.
#[tokio::test]
async fn the_same_guard_layered_twice_checks_a_proof_once() {
    async fn me(auth: Auth) -> String {
        auth.sub.clone().unwrap_or_default()
    }
    let (k, client) = (key("k1"), client_key());
    let guard = guard_with(&k, clock()).build().unwrap();
    let other = guard_with(&k, clock()).build().unwrap();
    let api = Router::new().route("/me", get(me)).layer(guard.layer());
    let app = Router::new().nest("/v1", api).layer(guard.optional_layer());
    let t = bound_token(&k, &client);
    let p = proof(&client, &format!("{BASE}/v1/me"), &t);
    let r = send(
        &app,
        get_with("/v1/me", &[("authorization", &dpop(&t)), ("dpop", &p)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The proof is spent all the same.
    let r = send(
        &app,
        get_with("/v1/me", &[("authorization", &dpop(&t)), ("dpop", &p)]),
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_dpop_proof");
    // An anonymous request passes the optional layer and meets the required one.
    let r = send(&app, get_with("/v1/me", &[])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Another guard (its own replay cache) checks for itself.
    let app = Router::new()
        .route("/me", get(me))
        .layer(other.layer())
        .layer(guard.layer());
    let p = proof(&client, &format!("{BASE}/me"), &t);
    let r = me_dpop(&app, &t, &p).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn an_oversized_proof_window_is_a_build_error_not_a_panic() {
    let k = key("k1");
    for (window, leeway) in [
        (Duration::MAX, Duration::from_secs(5)),
        (Duration::from_secs(60), Duration::MAX),
        (Duration::from_secs(301), Duration::ZERO),
        (Duration::from_secs(60), Duration::from_secs(61)),
    ] {
        let built = guard_with(&k, clock())
            .dpop_proof_window(window, leeway)
            .build();
        assert!(built.is_err(), "{window:?} {leeway:?}");
    }
    assert!(
        guard_with(&k, clock())
            .dpop_proof_window(Duration::from_secs(300), Duration::from_secs(60))
            .build()
            .is_ok()
    );
}

/// RFC 6750 section 3.1: a request that sent no credentials gets no error code.
#[tokio::test]
async fn require_dpop_on_an_anonymous_request_is_a_bare_challenge() {
    async fn me(auth: Option<Auth>) -> String {
        auth.and_then(|a| a.sub.clone()).unwrap_or_default()
    }
    let k = key("k1");
    let guard = guard_with(&k, clock()).build().unwrap();
    let app = Router::new()
        .route("/transfer", get(me).route_layer(RequireDpop))
        .layer(guard.optional_layer());
    let r = send(&app, get_with("/transfer", &[])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        challenges(&r).iter().all(|c| !c.contains("error=")),
        "{:?}",
        challenges(&r)
    );
}

/// A proof is accepted until its `iat` is window + leeway away, that second included; its
/// replay-cache entry must outlive that second.
#[tokio::test]
async fn a_proof_is_remembered_through_the_last_second_it_could_pass() {
    let (k, client) = (key("k1"), client_key());
    let c = clock();
    let guard = guard_with(&k, c.clone()).build().unwrap();
    let app = app(&guard);
    let t = bound_token(&k, &client);
    let p = proof(&client, &format!("{BASE}/me"), &t);
    assert_eq!(me_dpop(&app, &t, &p).await.status, StatusCode::OK);
    c.set(UnixTime::from_secs(NOW + 65));
    let r = me_dpop(&app, &t, &p).await;
    assert_eq!(r.json()["error"], "invalid_dpop_proof");
    assert_eq!(r.json()["error_description"], "the proof was already used");
}

/// A guard rebuilt with its predecessor's replay cache (the server's `/userinfo` does it
/// on every key rotation) still refuses the proofs its predecessor accepted.
#[tokio::test]
async fn a_rebuilt_guard_sharing_the_replay_cache_refuses_earlier_proofs() {
    let (k, client) = (key("k1"), client_key());
    let shared = tessera_guard::DpopReplayCache::new(1000);
    let before = guard_with(&k, clock())
        .dpop_replay_cache(shared.clone())
        .build()
        .unwrap();
    let after = guard_with(&k, clock())
        .dpop_replay_cache(shared)
        .build()
        .unwrap();
    let t = bound_token(&k, &client);
    let p = proof(&client, &format!("{BASE}/me"), &t);
    assert_eq!(me_dpop(&app(&before), &t, &p).await.status, StatusCode::OK);
    let r = me_dpop(&app(&after), &t, &p).await;
    assert_eq!(r.json()["error"], "invalid_dpop_proof");
    // Without sharing, each guard has its own.
    let alone = guard_with(&k, clock()).build().unwrap();
    assert_eq!(me_dpop(&app(&alone), &t, &p).await.status, StatusCode::OK);
}
