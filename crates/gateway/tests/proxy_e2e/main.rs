//! Reverse-proxy mode end to end (issue 18 section 3): the real `tessera` server issues
//! tokens, the real `tessera-gateway` binary in proxy mode guards a real FastAPI app
//! under uvicorn that only reads the identity headers. Valid, missing, expired, wrong
//! audience, wrong scope and revoked tokens; spoofed identity headers; WebSockets; a large
//! streamed body; the identity JWT verified by PyJWT; and the abuse cases in `abuse.rs`.

#![allow(
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod abuse;
mod harness;
mod readme;
mod review;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use harness::{Gateway, Issuer, Upstream, eventually, free_port, python, tessera_bin};

/// Everything one test needs, torn down on drop.
pub struct Fixture {
    pub issuer: Issuer,
    pub upstream: Upstream,
    pub gateway: Gateway,
    /// A client with scopes `a admin`, audience `api`.
    pub svc: (String, String),
    pub http: reqwest::Client,
}

const CONFIG: &str = r#"
listen = "{listen}"
mode = "proxy"
issuer = "ISSUER"
audience = "api"
public_base_url = "{public}"
default = "authenticated"

[revocation]
client_id = "FEED_CLIENT"
client_secret_env = "GW_FEED_SECRET"

[identity]
jwt = true

[proxy]
upstream = "UPSTREAM"
connect_timeout_secs = 2
response_timeout_secs = 3

[[route]]
path = "/public"
public = true

[[route]]
path = "/admin"
scopes = ["admin"]
"#;

impl Fixture {
    /// Starts the three processes; `None` (skipped) without the `tessera` binary or Python.
    pub async fn start() -> Option<Fixture> {
        Self::start_with(|c| c).await
    }

    /// [`Fixture::start`] with the gateway's TOML changed by `edit`.
    pub async fn start_with(edit: impl Fn(String) -> String) -> Option<Fixture> {
        let bin = tessera_bin()?;
        let python = python()?;
        let issuer = Issuer::start(bin);
        let svc = issuer.add_client("svc", "a admin", Some("api"));
        let feed = issuer.add_client("rs", "a", None);
        let port = free_port();
        let config = CONFIG
            .replace("ISSUER", &issuer.base)
            .replace("FEED_CLIENT", &feed.0)
            .replace("UPSTREAM", &format!("http://127.0.0.1:{port}"));
        let gateway = Gateway::start(&edit(config), &[("GW_FEED_SECRET", &feed.1)]).await;
        let upstream = Upstream::start(&python, port, &gateway.base);
        Some(Fixture {
            issuer,
            upstream,
            gateway,
            svc,
            http: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.base)
    }

    /// GET `path` through the gateway with `token` (if any) and extra headers.
    pub async fn get(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    pub async fn token(&self, scope: &str) -> String {
        self.issuer.token(&self.svc, scope).await
    }
}

/// The `WWW-Authenticate` of a response ("" if none).
pub fn challenge(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// All values of header `name` the app saw (from the echo's raw header list).
pub fn seen_header(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap().to_owned())
        .collect()
}

/// Sends raw bytes to `addr` and reads until the peer closes or `within` passes.
pub async fn raw(addr: std::net::SocketAddr, request: &[u8], within: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_reaches_fastapi_as_identity_headers_and_the_token_does_not() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    let r = f
        .get(
            "/notes/7?x=1&y=%C3%A9",
            Some(&token),
            &[
                ("proxy-authorization", "Basic c3B5OnNweQ=="),
                ("keep-alive", "timeout=1"),
                ("te", "trailers"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["path"], "/notes/7");
    assert_eq!(echo["query"], "x=1&y=%C3%A9");
    assert_eq!(echo["identity"]["subject"], f.svc.0.as_str());
    assert_eq!(echo["identity"]["client_id"], f.svc.0.as_str());
    assert_eq!(echo["identity"]["scope"], "a");
    for gone in [
        "authorization",
        "proxy-authorization",
        "keep-alive",
        "te",
        "dpop",
    ] {
        assert!(
            seen_header(&echo, gone).is_empty(),
            "{gone} reached the app"
        );
    }
    assert_eq!(seen_header(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen_header(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(
        seen_header(&echo, "x-forwarded-host"),
        [f.gateway.addr.to_string()]
    );
    assert_eq!(
        seen_header(&echo, "host"),
        [format!("127.0.0.1:{}", f.upstream.port)]
    );
    assert!(
        !echo.to_string().contains(&token),
        "the token reached the app"
    );
    assert!(
        !f.gateway.log().contains(&token),
        "the token reached the gateway's log"
    );

    // The gateway's own probes: live, and ready (the revocation feed was read at start).
    for probe in ["healthz", "readyz"] {
        let r = f
            .get(&format!("/.well-known/tessera-gateway/{probe}"), None, &[])
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{probe}");
    }

    // A public route passes without a token and without identity headers.
    let r = f.get("/public/hello", None, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let echo: Value = r.json().await.unwrap();
    assert!(echo["identity"]["subject"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_are_stripped_in_every_spelling() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    let spoofed = [
        ("X-Auth-Subject", "admin"),
        ("x-auth-subject", "root"),
        ("X-AUTH-SCOPE", "admin"),
        ("x-auth-client-id", "other"),
        ("X-Auth-Claim-role", "root"),
        ("X-Auth-Identity", "forged.jwt.value"),
        ("x-forwarded-for", "10.9.9.9"),
        ("forwarded", "for=10.9.9.9"),
        ("x-real-ip", "10.9.9.9"),
        // `_` spellings, which WSGI/CGI servers read as the `-` ones.
        ("x_auth_subject", "root"),
        ("X_Auth_Identity", "forged"),
        ("x-auth_scope", "admin"),
        ("x_forwarded_for", "6.6.6.6"),
        ("X_Forwarded_Host", "evil.example"),
        ("x_real_ip", "6.6.6.6"),
        // Restating the method or the path behind the route table's back.
        ("x-forwarded-prefix", "/evil"),
        ("x_forwarded_prefix", "/evil"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-uri", "/admin"),
        ("x-forwarded-method", "DELETE"),
        ("x-original-uri", "/admin"),
        ("x_original_uri", "/admin"),
        ("x-original-url", "/admin"),
        ("x-original-method", "DELETE"),
        ("x-http-method-override", "DELETE"),
        ("x_http_method_override", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
    ];
    for (path, token) in [("/notes", Some(token.as_str())), ("/public/x", None)] {
        let r = f.get(path, token, &spoofed).await;
        assert_eq!(r.status(), StatusCode::OK);
        let echo: Value = r.json().await.unwrap();
        let expected_subject: Vec<String> = token.map(|_| f.svc.0.clone()).into_iter().collect();
        assert_eq!(
            seen_header(&echo, "x-auth-subject"),
            expected_subject,
            "{path}"
        );
        let scope: Vec<&str> = token.map(|_| "a").into_iter().collect();
        assert_eq!(seen_header(&echo, "x-auth-scope"), scope, "{path}");
        assert!(seen_header(&echo, "x-auth-claim-role").is_empty(), "{path}");
        assert!(
            !seen_header(&echo, "x-auth-identity").contains(&"forged.jwt.value".to_owned()),
            "{path}"
        );
        assert_eq!(
            seen_header(&echo, "x-forwarded-for"),
            ["127.0.0.1"],
            "{path}"
        );
        assert!(seen_header(&echo, "forwarded").is_empty(), "{path}");
        assert!(seen_header(&echo, "x-real-ip").is_empty(), "{path}");
        let forwarding: Vec<_> = echo["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                h[0].as_str()
                    .unwrap()
                    .to_ascii_lowercase()
                    .replace('_', "-")
            })
            .filter(|n| {
                n.starts_with("x-auth")
                    && ![
                        "x-auth-subject",
                        "x-auth-scope",
                        "x-auth-client-id",
                        "x-auth-identity",
                    ]
                    .contains(&n.as_str())
                    || n.starts_with("x-original")
                    || n.contains("method")
                    || (n.starts_with("x-forwarded-")
                        && !["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
                            .contains(&n.as_str()))
            })
            .collect();
        assert!(forwarding.is_empty(), "{path}: {forwarding:?}");
        for name in [
            "x-forwarded-host",
            "x-auth-subject",
            "x-auth-identity",
            "x-auth-scope",
        ] {
            assert!(
                seen_header(&echo, &name.replace('-', "_")).is_empty(),
                "{path}: {name} with underscores"
            );
        }
        assert_eq!(
            seen_header(&echo, "x-forwarded-host"),
            [f.gateway.addr.to_string()],
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_audience_wrong_scope_and_garbage_tokens_get_the_right_challenge() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let other = f.issuer.add_client("other", "a", Some("elsewhere"));
    let elsewhere = f.issuer.token(&other, "a").await;
    let only_a = f.token("a").await;

    let r = f.get("/missing", None, &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let c = challenge(&r);
    assert!(c.starts_with("Bearer") && !c.contains("error="), "{c}");

    let r = f.get("/wrong-audience", Some(&elsewhere), &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&r).contains("error=\"invalid_token\""),
        "{}",
        challenge(&r)
    );

    let r = f.get("/admin/users", Some(&only_a), &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let c = challenge(&r);
    assert!(
        c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"admin\""),
        "{c}"
    );

    let r = f.get("/garbage", Some("not.a.jwt"), &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("invalid_token"), "{}", challenge(&r));

    let seen = f.upstream.seen().await;
    for path in ["/missing", "/wrong-audience", "/admin/users", "/garbage"] {
        assert!(
            !seen.iter().any(|p| p == path),
            "{path} reached the app: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_with_invalid_token() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    // The shortest lifetime the CLI mints; the guard's leeway is 30 s, so this waits ~31 s.
    let token = f.issuer.mint(&f.svc.0, "a", "api", 1);
    let refused = eventually(Duration::from_secs(45), || async {
        f.get("/exp", Some(&token), &[]).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "an expired token was still accepted after 45 s");
    let r = f.get("/exp-after", Some(&token), &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&r).contains("error=\"invalid_token\""),
        "{}",
        challenge(&r)
    );
    assert!(!f.upstream.seen().await.iter().any(|p| p == "/exp-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_within_the_poll_bound() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    assert_eq!(
        f.get("/before", Some(&token), &[]).await.status(),
        StatusCode::OK
    );
    // Let the push subscription come up (a revocation before it would arrive by poll).
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.issuer.revoke(&f.svc, &token).await;
    let revoked_at = Instant::now();
    let refused = eventually(Duration::from_secs(3), || async {
        f.get("/after", Some(&token), &[]).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        refused,
        "a revoked token was still accepted 3 s after /revoke answered"
    );
    eprintln!(
        "revoked token refused {:?} after /revoke answered",
        revoked_at.elapsed()
    );
    let r = f.get("/after-revoked", Some(&token), &[]).await;
    assert!(challenge(&r).contains("invalid_token"), "{}", challenge(&r));
    assert!(
        !f.upstream
            .seen()
            .await
            .iter()
            .any(|p| p == "/after-revoked")
    );
}

/// A WebSocket handshake to `/ws` through the gateway; returns the stream after the head.
async fn ws_handshake(f: &Fixture, token: Option<&str>) -> (TcpStream, String) {
    ws_handshake_at(f.gateway.addr, token).await
}

/// A WebSocket handshake to `/ws` of the gateway at `addr`.
pub async fn ws_handshake_at(
    addr: std::net::SocketAddr,
    token: Option<&str>,
) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n",
        addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("handshake answer")
            .unwrap();
        assert_eq!(
            n,
            1,
            "closed during the handshake: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// Reads one unmasked server text frame (payload under 126 bytes).
pub async fn ws_read(s: &mut TcpStream) -> String {
    let mut h = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut h))
        .await
        .expect("a frame")
        .unwrap();
    assert_eq!(h[0], 0x81, "a final text frame");
    let mut payload = vec![0u8; usize::from(h[1] & 0x7f)];
    s.read_exact(&mut payload).await.unwrap();
    String::from_utf8(payload).unwrap()
}

/// Writes one masked client text frame.
async fn ws_write(s: &mut TcpStream, text: &str) {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_passes_for_an_authorized_client_and_is_refused_without_a_token() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let (s, head) = ws_handshake(&f, None).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    drop(s);
    assert!(!f.upstream.seen().await.iter().any(|p| p == "/ws"));

    let token = f.token("a").await;
    let (mut s, head) = ws_handshake(&f, Some(&token)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert_eq!(ws_read(&mut s).await, format!("hello {}", f.svc.0));
    for text in ["one", "two"] {
        ws_write(&mut s, text).await;
        assert_eq!(ws_read(&mut s).await, format!("echo {text}"));
    }
}

/// The peak resident set of this process in KiB (`VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_body_streams_through_without_being_held_whole() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    const SIZE: usize = 50 * 1024 * 1024;
    let before = peak_rss_kib();
    let mut s = TcpStream::connect(f.gateway.addr).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {SIZE}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'z'; 64 * 1024];
    for _ in 0..SIZE / chunk.len() {
        s.write_all(&chunk).await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains(&format!("\"body_bytes\":{SIZE}")), "{out}");
    // The gateway runs in this process: had it held the body, the peak would have grown by
    // at least 50 MiB.
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        let grew = after.saturating_sub(before);
        assert!(
            grew < 25 * 1024,
            "peak RSS grew by {grew} KiB for a 50 MiB body"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_jwt_verifies_with_pyjwt_against_the_gateways_jwks() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    let r = f
        .get(
            "/identity-jwt",
            Some(&token),
            &[("x-auth-identity", "forged.jwt.value")],
        )
        .await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["typ"], "tessera-identity+jwt");
    assert_eq!(v["claims"]["sub"], f.svc.0.as_str());
    assert_eq!(v["claims"]["client_id"], f.svc.0.as_str());
    assert_eq!(v["claims"]["scope"], "a");
    assert_eq!(v["claims"]["iss"], f.gateway.base.as_str());
    let ttl = v["claims"]["exp"].as_i64().unwrap() - v["claims"]["iat"].as_i64().unwrap();
    assert_eq!(ttl, 60);

    // The JWKS is the gateway's own answer, public, never proxied.
    let r = f
        .get("/.well-known/tessera-gateway/jwks.json", None, &[])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let jwks: Value = r.json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "a private key in the JWKS"
    );
    assert!(
        !f.upstream
            .seen()
            .await
            .iter()
            .any(|p| p.starts_with("/.well-known"))
    );

    // Without a token the upstream gets no identity JWT (a public route).
    let r = f
        .get(
            "/public/identity-jwt",
            None,
            &[("x-auth-identity", "forged")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let echo: Value = r.json().await.unwrap();
    assert!(seen_header(&echo, "x-auth-identity").is_empty(), "{echo}");
}
