//! Shared fixtures: keys, tokens, a router, a request helper, a loopback server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::handler::Handler;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_guard::{Auth, Guard, ManualClock, MaybeAuth, RequireScope, Scoped, Verifier};
use tessera_token::{Algorithm, KeySet, SigningKey, UnixTime, Validation};
use tower::ServiceExt;

pub(crate) const ISS: &str = "https://as.test";
pub(crate) const AUD: &str = "notes-api";
pub(crate) const NOW: i64 = 1_800_000_000;

tessera_guard::scope_requirement!(pub(crate) NotesRead = all["notes:read"]);

pub(crate) fn key(kid: &str) -> SigningKey {
    SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid(kid)
}

pub(crate) fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(UnixTime::from_secs(NOW)))
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// RFC 9068 claims valid at NOW for 10 minutes, with `extra` merged in.
pub(crate) fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "cli",
        "scope": "notes:read", "iat": NOW, "exp": NOW + 600,
        "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::Relaxed)), "sid": "sid-1",
        "tenant": "acme",
    });
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        for (k, v) in e {
            if v.is_null() {
                c.remove(&k);
            } else {
                c.insert(k, v);
            }
        }
    }
    c
}

pub(crate) fn token(key: &SigningKey, extra: Value) -> String {
    key.sign(&claims(extra), Some("at+jwt")).unwrap()
}

pub(crate) fn policy() -> Validation {
    Validation::access_token(ISS, AUD)
}

pub(crate) fn static_guard(
    key: &SigningKey,
    clock: Arc<ManualClock>,
) -> tessera_guard::GuardBuilder {
    let keys = KeySet::new(vec![key.verifying_key().unwrap()]).unwrap();
    Guard::builder(Verifier::keys(keys), policy())
        .realm("notes")
        .clock(clock)
}

#[derive(Deserialize)]
pub(crate) struct Custom {
    pub(crate) tenant: String,
}

/// The app under test: /me (Auth with custom claims), /notes GET (Scoped extractor) and
/// POST (RequireScope layer, echoes the body), all behind the guard layer; /optional
/// (MaybeAuth, optional layer) and /healthz public.
pub(crate) fn app(guard: &Guard) -> Router {
    async fn me(auth: Auth<Custom>) -> Json<Value> {
        Json(json!({"sub": auth.sub, "tenant": auth.custom.tenant,
                    "scope": auth.scope.as_ref().map(ToString::to_string)}))
    }
    async fn list(s: Scoped<NotesRead>) -> String {
        format!("notes of {}", s.auth.sub.as_deref().unwrap_or(""))
    }
    async fn create(body: String) -> String {
        format!("created {body}")
    }
    async fn optional(auth: MaybeAuth) -> String {
        match auth.0 {
            Some(a) => format!("hello {}", a.sub.as_deref().unwrap_or("")),
            None => "hello anonymous".into(),
        }
    }
    let protected = Router::new()
        .route("/me", get(me))
        .route(
            "/notes",
            get(list).post(create.layer(RequireScope::any(["notes:write", "notes:admin"]))),
        )
        .layer(guard.layer());
    let optional = Router::new()
        .route("/optional", get(optional))
        .layer(guard.optional_layer());
    Router::new()
        .merge(protected)
        .merge(optional)
        .route("/healthz", get(|| async { "ok" }))
        .route("/echo", post(|b: String| async move { b }))
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn challenge(&self) -> &str {
        self.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

pub(crate) async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

pub(crate) fn get_with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

pub(crate) fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// Serves `app` on 127.0.0.1 port 0; returns its base URL.
pub(crate) async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// Waits (briefly, polling) until `f` holds; for effects of background tasks.
pub(crate) async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}
