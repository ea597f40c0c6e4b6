//! Fixtures: a forward-auth gateway over static keys and a manual clock, tokens, and a
//! helper sending one sub-request through the router in process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use tessera_gateway::{Gateway, GatewayConfig, forward_auth, startup};
use tessera_guard::{Guard, ManualClock, ResourceMetadata, RevocationList, Verifier};
use tessera_token::{Algorithm, KeySet, SigningKey, UnixTime, Validation};
use tower::ServiceExt;

pub(crate) const ISS: &str = "https://as.test";
pub(crate) const AUD: &str = "notes-api";
pub(crate) const NOW: i64 = 1_800_000_000;

/// The route table the tests share (any proxy kind; `PROXY` is replaced).
pub(crate) const CONFIG: &str = r#"
listen = "127.0.0.1:0"
mode = "forward_auth"
issuer = "https://as.test"
audience = "notes-api"
public_base_url = "https://api.example"
realm = "notes"

[forward_auth]
PROXY

[identity]
claims = ["tenant"]

[[route]]
path = "/public"
public = true

[[route]]
methods = ["GET"]
path = "/notes"
scopes = ["notes:read"]

[[route]]
methods = ["POST"]
path = "/notes"
scopes = ["notes:write"]

[[route]]
path = "/export"
scopes = ["notes:read"]
dpop = "require"
"#;

pub(crate) struct Fixture {
    pub(crate) key: SigningKey,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) revoked: Arc<RevocationList>,
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) router: Router,
}

/// A gateway behind `proxy` (`nginx`, `traefik` or `envoy` with prefix `/check`).
pub(crate) fn fixture(proxy: &str) -> Fixture {
    let section = match proxy {
        "envoy" => "proxy = \"envoy\"\nenvoy_path_prefix = \"/check\"".to_owned(),
        other => format!("proxy = \"{other}\""),
    };
    fixture_from(&CONFIG.replace("PROXY", &section))
}

/// A gateway from a whole configuration file's text.
pub(crate) fn fixture_from(text: &str) -> Fixture {
    let config = GatewayConfig::parse(text).unwrap();
    let (routes, identity) = startup::offline_parts(&config).unwrap();
    let key = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid("k1");
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(NOW)));
    let revoked = Arc::new(RevocationList::new());
    let keys = KeySet::new(vec![key.verifying_key().unwrap()]).unwrap();
    let guard = Guard::builder(Verifier::keys(keys), Validation::access_token(ISS, AUD))
        .realm("notes")
        .public_base_url("https://api.example")
        .resource_metadata(ResourceMetadata::new("https://api.example").authorization_server(ISS))
        .clock(clock.clone())
        .revocation(revoked.clone())
        .build()
        .unwrap();
    let ready = Arc::new(AtomicBool::new(true));
    let gateway = Gateway::new(guard, routes, identity).ready_when(ready.clone());
    let router = forward_auth::router(Arc::new(gateway), config.forward_auth.as_ref().unwrap());
    Fixture {
        key,
        clock,
        revoked,
        ready,
        router,
    }
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// An RFC 9068 access token valid at NOW for 10 minutes, `extra` merged in (null removes).
pub(crate) fn token(key: &SigningKey, extra: Value) -> String {
    let mut c = json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "cli",
        "scope": "notes:read", "iat": NOW, "exp": NOW + 600,
        "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::Relaxed)),
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
    key.sign(&c, Some("at+jwt")).unwrap()
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub(crate) fn challenge(&self) -> String {
        let all: Vec<&str> = self
            .headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        all.join(" | ")
    }
}

/// Sends `method path` with raw `headers` to the router.
pub(crate) async fn send(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
) -> Reply {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, http::HeaderValue::from_bytes(v).unwrap());
    }
    let resp = router
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    Reply {
        status: resp.status(),
        headers: resp.headers().clone(),
    }
}

/// An nginx sub-request for `method uri` with the client's `headers`.
pub(crate) async fn nginx(
    router: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut all: Vec<(&str, &[u8])> = vec![
        ("x-original-method", method.as_bytes()),
        ("x-original-uri", uri.as_bytes()),
        ("x-forwarded-host", b"api.example"),
    ];
    all.extend(headers.iter().map(|(k, v)| (*k, v.as_bytes())));
    send(router, "GET", "/auth", &all).await
}

/// `Bearer <token>`.
pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
