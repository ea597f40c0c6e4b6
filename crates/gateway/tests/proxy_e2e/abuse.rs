//! What an attacker sends through the proxy, and a bad upstream: request smuggling,
//! `Connection` naming the gateway's own headers, a token in the URL, an upstream that is
//! down, never answers or answers with a huge head, a client that sends its body slowly.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::{Gateway, free_port};
use crate::{Fixture, challenge, raw, seen_header};

/// Two `Content-Length`s: hyper answers 400 before the gateway sees the request. Length
/// and `chunked` together: hyper frames the body by `chunked` alone (RFC 9112 section 6.3
/// allows either refusing or that), drops the length, answers once and closes the
/// connection, so the bytes after the chunked body are never read as a request. Neither
/// smuggled request reaches the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_with_two_lengths_is_400_and_with_length_and_chunked_smuggles_nothing() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let cl_cl = format!(
        "POST /cl-cl HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd{smuggled}"
    );
    let answer = raw(f.gateway.addr, cl_cl.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");

    let cl_te = format!(
        "POST /cl-te HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    let answer = raw(f.gateway.addr, cl_te.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    if answer.starts_with("HTTP/1.1 200") {
        assert!(answer.contains("\"body_bytes\":0"), "{answer}");
    } else {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let seen = f.upstream.seen().await;
    for path in ["/cl-cl", "/smuggled"] {
        assert!(
            !seen.iter().any(|p| p == path),
            "{path} reached the app: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_remove_the_gateways_own_identity_and_forwarding_headers() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    let r = f
        .get(
            "/conn",
            Some(&token),
            &[(
                "connection",
                "X-Auth-Subject, X-Auth-Identity, X-Forwarded-For, Content-Length, Host",
            )],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(
        seen_header(&echo, "x-auth-subject"),
        std::slice::from_ref(&f.svc.0)
    );
    assert_eq!(seen_header(&echo, "x-auth-identity").len(), 1);
    assert_eq!(seen_header(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert!(
        seen_header(&echo, "connection")
            .iter()
            .all(|v| !v.contains("X-Auth"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_query_is_refused_on_every_route_and_never_forwarded() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    for path in ["/public/q", "/notes-q", "/public/q2"] {
        let param = if path.ends_with('2') {
            "access%5Ftoken"
        } else {
            "access_token"
        };
        let r = f.get(&format!("{path}?{param}={token}"), None, &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(
            challenge(&r).contains("invalid_request"),
            "{}",
            challenge(&r)
        );
    }
    let seen = f.upstream.seen().await;
    assert!(
        !seen.iter().any(|p| p.contains("/q") || p == "/notes-q"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_is_504_and_a_huge_response_head_is_502() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    // The app sleeps 30 s; response_timeout_secs is 3.
    let r = f.get("/slow", Some(&token), &[]).await;
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    // A 200 kB response header is over the 64 KiB head limit.
    let r = f.get("/big-header", Some(&token), &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    // The gateway still serves afterwards.
    assert_eq!(
        f.get("/after", Some(&token), &[]).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_is_502() {
    let down = free_port();
    let Some(f) = Fixture::start_with(|c| {
        c.replace(
            "upstream = \"http://127.0.0.1:",
            &format!("upstream = \"http://127.0.0.1:{down}\" # "),
        )
    })
    .await
    else {
        return;
    };
    let token = f.token("a").await;
    let r = f.get("/anything", Some(&token), &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    // Refused requests are still refused (401, not 502): the decision comes first.
    assert_eq!(
        f.get("/anything", None, &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_body_slowly_holds_up_nobody_and_its_body_arrives_whole() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let token = f.token("a").await;
    let mut slow = TcpStream::connect(f.gateway.addr).await.unwrap();
    let head = format!(
        "POST /slow-body HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 10\r\nConnection: close\r\n\r\nhello"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // Meanwhile others are served.
    for _ in 0..3 {
        assert_eq!(
            f.get("/other", Some(&token), &[]).await.status(),
            StatusCode::OK
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    slow.write_all(b"world").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut slow, &mut out),
    )
    .await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"body_bytes\":10"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_bytes_is_413_whether_it_has_a_length_or_is_chunked() {
    let Some(f) =
        Fixture::start_with(|c| c.replace("[proxy]\n", "[proxy]\nmax_body_bytes = 1000\n")).await
    else {
        return;
    };
    let token = f.token("a").await;
    let body = "x".repeat(2000);
    let r = f
        .http
        .post(f.url("/too-long"))
        .bearer_auth(&token)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!f.upstream.seen().await.iter().any(|p| p == "/too-long"));

    // Chunked (no length): cut off at the limit and answered 413 (not the 502 of a failed
    // upstream), so the app never gets 2000 bytes.
    let chunked = format!(
        "POST /too-long-chunked HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n7d0\r\n{body}\r\n0\r\n\r\n"
    );
    let answer = raw(f.gateway.addr, chunked.as_bytes(), Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let r = f
        .http
        .post(f.url("/short"))
        .bearer_auth(&token)
        .body("x".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_reaches_the_app_only_with_forward_token() {
    let Some(f) =
        Fixture::start_with(|c| c.replace("[identity]\n", "[identity]\nforward_token = true\n"))
            .await
    else {
        return;
    };
    let token = f.token("a").await;
    let r = f.get("/with-token", Some(&token), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(
        seen_header(&echo, "authorization"),
        [format!("Bearer {token}")]
    );
    // Still stripped: the identity prefix.
    let r = f
        .get("/with-token", Some(&token), &[("x-auth-subject", "admin")])
        .await;
    let echo: Value = r.json().await.unwrap();
    assert_eq!(
        seen_header(&echo, "x-auth-subject"),
        std::slice::from_ref(&f.svc.0)
    );
}

/// The issuer is down when the gateway starts: it serves, but answers 503 to every request
/// needing a token (a revoked one could otherwise pass) and its readiness probe says 503,
/// while a public route and the liveness probe still answer; nothing needing a token
/// reaches the upstream. The same gate as forward-auth mode, in the binary's proxy mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_issuer_down_at_start_requests_needing_a_token_get_503_and_readyz_says_so() {
    let dead = free_port();
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(move |uri: http::Uri| {
            log.lock().unwrap().push(uri.path().to_owned());
            async { "upstream" }
        });
        let _ = axum::serve(upstream, app).await;
    });
    let toml = format!(
        r#"
listen = "{{listen}}"
mode = "proxy"
issuer = "http://127.0.0.1:{dead}"
audience = "api"
public_base_url = "{{public}}"
[revocation]
client_id = "rs"
client_secret_env = "GW_FEED_SECRET"
[proxy]
upstream = "http://{up_addr}"
[[route]]
path = "/public"
public = true
[[route]]
path = "/notes"
"#
    );
    let gw = Gateway::start(&toml, &[("GW_FEED_SECRET", "x")]).await;
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{}{path}", gw.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = get("/notes", Some("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = get("/notes", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = get("/.well-known/tessera-gateway/readyz", None)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = get("/.well-known/tessera-gateway/healthz", None)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = get("/public/x", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(*seen.lock().unwrap(), ["/public/x"]);
    assert!(gw.log().contains("retrying"), "{}", gw.log());
}
