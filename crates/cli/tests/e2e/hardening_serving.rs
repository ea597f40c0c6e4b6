//! Hardening (issue 14): see docs/security.md, "What was hardened and how it is tested".
//! HTTP serving: timeouts against slow clients, the connection cap with its probe reserve,
//! the lame-duck phase on SIGTERM, JSON 413 on OAuth endpoints, the metrics listener and
//! its bearer token. Raw `TcpStream`s play the attacker, so nothing is hidden by a client
//! library's own timeouts or retries.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Server, register_secret, run_cli};

/// How long a test waits for the server to close a connection it should close (the
/// configured timeouts are a few seconds; this only bounds a failing test).
const CLOSE_BOUND: Duration = Duration::from_secs(30);

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// Sends `request` on a fresh connection (which it asks to close) and returns the whole
/// answer; `Err` on a connection error.
fn exchange(addr: &str, request: &str) -> std::io::Result<String> {
    let mut c = TcpStream::connect(addr)?;
    c.set_read_timeout(Some(CLOSE_BOUND))?;
    c.write_all(request.as_bytes())?;
    let mut reply = String::new();
    c.read_to_string(&mut reply)?;
    Ok(reply)
}

fn get(addr: &str, path: &str) -> std::io::Result<String> {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

/// Reads from `c` until the server closes it (EOF or reset) and returns what came; panics
/// if it is still open after [`CLOSE_BOUND`].
fn read_until_closed(c: &mut TcpStream, what: &str) -> String {
    c.set_read_timeout(Some(CLOSE_BOUND)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: still open after {CLOSE_BOUND:?}")
            }
            Err(_) => break, // reset: closed too
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads one complete response with a `Content-Length` from a keep-alive connection.
fn read_response(c: &mut TcpStream) -> String {
    c.set_read_timeout(Some(CLOSE_BOUND)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
        let n = c.read(&mut buf).expect("response");
        assert!(n > 0, "closed mid-response: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn hardening_slow_heads_bodies_and_idle_keep_alive_are_closed_while_others_are_served() {
    let s = Server::start_with(
        "header_read_timeout_secs = 2\nrequest_timeout_secs = 3\n",
        &[],
    );
    let a = addr(&s);
    // Slowloris: request heads that never end.
    let mut heads: Vec<TcpStream> = (0..20)
        .map(|i| {
            let mut c = TcpStream::connect(&a).unwrap();
            write!(c, "GET /healthz HTTP/1.1\r\nHost: {a}\r\nX-Slow-{i}: 1").unwrap();
            c
        })
        .collect();
    // A connection that sends nothing at all.
    let mut silent = TcpStream::connect(&a).unwrap();
    // Slow bodies: a complete head, a body that stops early.
    let mut bodies: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut c = TcpStream::connect(&a).unwrap();
            write!(
                c,
                "POST /token HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 100\r\n\r\ngrant_type"
            )
            .unwrap();
            c
        })
        .collect();
    // An idle keep-alive connection after one good request.
    let mut idle = TcpStream::connect(&a).unwrap();
    write!(idle, "GET /healthz HTTP/1.1\r\nHost: {a}\r\n\r\n").unwrap();
    assert!(read_response(&mut idle).starts_with("HTTP/1.1 200"));

    // Meanwhile everyone else is served.
    for _ in 0..5 {
        let r = get(&a, "/healthz").unwrap();
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }

    for (i, c) in heads.iter_mut().enumerate() {
        let got = read_until_closed(c, &format!("partial head {i}"));
        assert!(!got.contains("200 OK"), "{got}");
    }
    read_until_closed(&mut silent, "silent connection");
    let mut answered = 0;
    for (i, c) in bodies.iter_mut().enumerate() {
        let got = read_until_closed(c, &format!("partial body {i}"));
        // The token endpoint answers the unfinished body in the OAuth shape, 408 Request
        // Timeout (it was 400 before the review), then closes.
        assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(
            got.is_empty() || got.contains("\"invalid_request\""),
            "{got}"
        );
        answered += usize::from(!got.is_empty());
    }
    assert!(answered > 0, "no unfinished body was answered");
    read_until_closed(&mut idle, "idle keep-alive connection");
    let r = get(&a, "/healthz").unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn hardening_connections_beyond_the_cap_are_refused_while_probes_answer() {
    let s = Server::start_with(
        "max_connections = 3\nmax_connections_per_ip = 100\nheader_read_timeout_secs = 120\n",
        &[],
    );
    let a = addr(&s);
    // Three keep-alive connections take every slot (each served once, so surely admitted).
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut c = TcpStream::connect(&a).unwrap();
            write!(c, "GET /healthz HTTP/1.1\r\nHost: {a}\r\n\r\n").unwrap();
            assert!(read_response(&mut c).starts_with("HTTP/1.1 200"));
            c
        })
        .collect();
    // Beyond the cap: the health probes still answer, anything else is 503.
    let r = get(&a, "/healthz").unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = get(&a, "/readyz").unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = get(&a, "/jwks.json").unwrap();
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.contains("temporarily_unavailable"), "{r}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 1"), "{r}");
    // A reserve connection serves one request and closes.
    let mut probe = TcpStream::connect(&a).unwrap();
    write!(probe, "GET /healthz HTTP/1.1\r\nHost: {a}\r\n\r\n").unwrap();
    let got = read_until_closed(&mut probe, "reserve connection");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");

    // Silent connections fill the reserve too; the next one is closed unanswered. A
    // reserve slot's head timeout is 1 s, so on a slow machine a silent one may be closed
    // before the next connects, freeing its slot: then try again (a few rounds at most).
    let mut silent: Vec<TcpStream> = Vec::new();
    let mut last = String::new();
    for _round in 0..5 {
        silent = (0..8).map(|_| TcpStream::connect(&a).unwrap()).collect();
        let mut refused = TcpStream::connect(&a).unwrap();
        let _ = write!(refused, "GET /healthz HTTP/1.1\r\nHost: {a}\r\n\r\n");
        last = read_until_closed(&mut refused, "connection beyond the cap and reserve");
        if last.is_empty() {
            break;
        }
        silent.clear();
    }
    assert!(
        last.is_empty(),
        "never refused beyond the cap and reserve: {last}"
    );

    // Once the holders go, everything is served again.
    held.clear();
    silent.clear();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&a, "/jwks.json").unwrap_or_default();
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still refusing: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = s.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn hardening_sigterm_lame_duck_keeps_serving_with_zero_connection_errors() {
    let mut s = Server::start_with("shutdown_delay_secs = 4\n", &[]);
    let a = addr(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (a, stop, done) = (a.clone(), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let r = get(&a, "/jwks.json");
                    outcomes.push(r.map(|t| t.lines().next().unwrap_or_default().to_owned()));
                    done.fetch_add(1, Ordering::Relaxed);
                }
                outcomes
            })
        })
        .collect();
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "requests stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(30);
    s.signal("TERM");
    // /readyz turns 503 at once while requests keep being served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&a, "/readyz").expect("connection refused during the lame-duck phase");
        if r.starts_with("HTTP/1.1 503") {
            break;
        }
        assert!(Instant::now() < deadline, "readyz never turned 503: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let healthz = get(&a, "/healthz").expect("healthz during the lame-duck phase");
    assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
    // The balancer has seen 503; a few more requests still land, as they would.
    let seen = done.load(Ordering::Relaxed);
    wait_for(seen + 30);
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        for outcome in w.join().unwrap() {
            total += 1;
            let line = outcome.expect("a request across SIGTERM failed to connect");
            assert_eq!(line, "HTTP/1.1 200 OK");
        }
    }
    assert!(total >= 60, "{total}");
    let status = s.wait_exit(Duration::from_secs(60)).expect("still running");
    assert!(status.success(), "exit {status:?}; log:\n{}", s.log());
    assert!(s.log().contains("shutdown_delay_secs"), "{}", s.log());
}

#[tokio::test]
async fn hardening_sigint_skips_the_shutdown_delay() {
    let mut s = Server::start_with("shutdown_delay_secs = 600\n", &[]);
    let r = get(&addr(&s), "/healthz").unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    s.signal("INT");
    let status = s
        .wait_exit(Duration::from_secs(60))
        .expect("SIGINT waited for the shutdown delay");
    assert!(status.success(), "exit {status:?}; log:\n{}", s.log());
}

#[tokio::test]
async fn hardening_over_long_bodies_get_the_oauth_json_413() {
    let s = Server::start();
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    for path in ["/token", "/revoke", "/introspect"] {
        let r = s
            .http
            .post(s.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("application/json"), "{path}: {ct}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request", "{path}: {v}");
        assert!(v["error_description"].as_str().unwrap().contains("65536"));
    }
    // Chunked, with no Content-Length to refuse up front: the same answer.
    let a = addr(&s);
    let chunk = "a".repeat(70 * 1024);
    let r = exchange(
        &a,
        &format!(
            "POST /token HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        ),
    )
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("\"invalid_request\""), "{r}");
}

/// A `metrics_token_file` with `token` in a directory of its own.
fn token_file(token: &str) -> (tempfile::TempDir, String) {
    register_secret(token);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let shown = path.to_str().unwrap().to_owned();
    (dir, shown)
}

async fn scrape(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn hardening_metrics_listen_moves_metrics_off_the_main_listener_behind_a_token() {
    let token = "metrics-e2e-token-5f0c9a1b7d";
    let (_dir, path) = token_file(token);
    let s = Server::start_with(
        &format!("metrics_listen = \"127.0.0.1:0\"\nmetrics_token_file = {path:?}\n"),
        &[],
    );
    let log = s.log_until(|l| l.contains("metrics on "));
    let metrics_url = log
        .lines()
        .find_map(|l| l.strip_prefix("metrics on "))
        .expect("metrics address printed")
        .to_owned();
    // The main listener no longer serves it.
    assert_eq!(scrape(&s.url("/metrics"), Some(token)).await.status(), 404);
    // The metrics listener wants the token, and serves nothing else.
    let r = scrape(&metrics_url, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"tessera-metrics\""
    );
    let r = scrape(&metrics_url, Some("metrics-e2e-token-5f0c9a1b7e")).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let r = scrape(&metrics_url, Some(token)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("tessera_http_requests_total")
    );
    let other = metrics_url.replace("/metrics", "/jwks.json");
    assert_eq!(scrape(&other, Some(token)).await.status(), 404);
    let log = s.log();
    assert!(!log.contains(token), "token in the log");
}

#[tokio::test]
async fn hardening_metrics_token_guards_metrics_on_the_main_listener() {
    let token = "metrics-e2e-token-main-8e2d4c";
    let (_dir, path) = token_file(token);
    let s = Server::start_with(&format!("metrics_token_file = {path:?}\n"), &[]);
    assert_eq!(scrape(&s.url("/metrics"), None).await.status(), 401);
    assert_eq!(
        scrape(&s.url("/metrics"), Some("Basic x")).await.status(),
        401
    );
    let r = scrape(&s.url("/metrics"), Some(token)).await;
    assert_eq!(r.status(), 200);
    let r = get(&addr(&s), "/healthz").unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(!s.log().contains(token), "token in the log");
}

#[tokio::test]
async fn hardening_tls_clients_that_never_finish_the_handshake_are_closed() {
    let certs = tempfile::tempdir().unwrap();
    let pem = crate::tls::self_signed(certs.path(), "c");
    let (crt, key) = (certs.path().join("c.crt"), certs.path().join("c.key"));
    let s = Server::start_with(
        &format!(
            "tls_cert = {crt:?}\ntls_key = {key:?}\nmax_connections = 4\nmax_connections_per_ip = 100\n"
        ),
        &[],
    );
    let a = s.base.trim_start_matches("https://").to_owned();
    // Silent clients and a ClientHello cut short, more than max_connections of them.
    let mut slow: Vec<TcpStream> = (0..6)
        .map(|i| {
            let mut c = TcpStream::connect(&a).unwrap();
            if i % 2 == 0 {
                c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            }
            c
        })
        .collect();
    for (i, c) in slow.iter_mut().enumerate() {
        read_until_closed(c, &format!("stalled handshake {i}"));
    }
    // Their slots are free again: HTTPS is served.
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(s.url("/jwks.json")).send().await {
            Ok(r) if r.status() == 200 => break,
            other => assert!(Instant::now() < deadline, "{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection from the loopback address `src` (127.0.0.2 and so on are other sources
/// of the same host), with a receive buffer of `rcvbuf` bytes if given.
async fn connect_from(src: &str, to: &str, rcvbuf: Option<u32>) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(n) = rcvbuf {
        socket.set_recv_buffer_size(n)?;
    }
    socket.bind(format!("{src}:0").parse().unwrap())?;
    let stream = socket.connect(to.parse().unwrap()).await?.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Asks `path` (closing) from the loopback address `src`; the status line, or the error.
async fn get_from(src: &str, a: &str, path: &str) -> String {
    let mut c = match connect_from(src, a, None).await {
        Ok(c) => c,
        Err(e) => return format!("connect: {e}"),
    };
    let _ = write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n"
    );
    let got = read_until_closed(&mut c, path);
    got.lines()
        .next()
        .unwrap_or("<closed unanswered>")
        .to_owned()
}

/// Clients that pipeline many requests and never read the answers: their writes stall,
/// and after `request_timeout_secs` without progress the server closes them, so every
/// slot is free again (before, they held every slot for ever and all but the probes got
/// 503).
#[tokio::test]
async fn hardening_clients_that_never_read_their_answers_are_closed() {
    let s = Server::start_with(
        "max_connections = 3\nmax_connections_per_ip = 100\nrequest_timeout_secs = 2\nheader_read_timeout_secs = 120\n",
        &[],
    );
    let a = addr(&s);
    let pipelined = format!("GET /openapi.json HTTP/1.1\r\nHost: {a}\r\n\r\n").repeat(600);
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from("127.0.0.1", &a, Some(4096)).await.unwrap();
        c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        // The server stops reading once its answers back up; what is not sent is fine.
        let _ = c.write_all(pipelined.as_bytes());
        stalled.push(c);
    }
    // They hold every slot now; soon they are closed and others are served again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(&a, "/jwks.json").unwrap_or_default();
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refusing while nobody reads: {}",
            r.lines().next().unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(stalled);
    let log = s.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// One source opening connection after connection with a partial head cannot take the
/// slots (nor the probe reserve) from everyone else: it holds at most
/// `max_connections_per_ip`, the rest are closed at once and counted.
#[tokio::test]
async fn hardening_one_source_cannot_take_every_connection_slot() {
    // Two per source (the default would be one, an eighth of 8): a closed connection whose
    // slot is not given back yet must not refuse the victim's next one.
    let s = Server::start_with(
        "max_connections = 8\nmax_connections_per_ip = 2\nheader_read_timeout_secs = 120\n",
        &[],
    );
    let a = addr(&s);
    let mut held = Vec::new();
    for _ in 0..40 {
        if let Ok(mut c) = connect_from("127.0.0.2", &a, None).await {
            let _ = c.write_all(b"G");
            held.push(c);
        }
    }
    // Churn: more partial heads from the same source while others ask.
    let churn = {
        let a = a.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            for _ in 0..200 {
                if Instant::now() > deadline {
                    break;
                }
                if let Ok(mut c) = connect_from("127.0.0.2", &a, None).await {
                    let _ = c.write_all(b"GET / HTTP/1.1\r\n");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
    };
    for _ in 0..5 {
        let r = get_from("127.0.0.3", &a, "/healthz").await;
        assert_eq!(r, "HTTP/1.1 200 OK");
        let r = get_from("127.0.0.3", &a, "/jwks.json").await;
        assert_eq!(r, "HTTP/1.1 200 OK");
    }
    churn.abort();
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = get(&a, "/metrics").unwrap_or_default();
        if m.contains("tessera_connections_refused_total{reason=\"max_connections_per_ip\"}") {
            break;
        }
        assert!(Instant::now() < deadline, "refusals not counted: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A reserve connection (probes only) gets a short header timeout, so partial heads
/// cannot keep the reserve for the full `header_read_timeout_secs`; a 503 on the reserve
/// is counted and logged.
#[tokio::test]
async fn hardening_the_probe_reserve_closes_partial_heads_quickly_and_counts_its_503s() {
    let s = Server::start_with(
        "max_connections = 2\nmax_connections_per_ip = 1\nheader_read_timeout_secs = 120\n",
        &[],
    );
    let a = addr(&s);
    // Two sources take both full slots with served keep-alive connections.
    let mut full = Vec::new();
    for src in ["127.0.0.2", "127.0.0.3"] {
        let mut c = connect_from(src, &a, None).await.unwrap();
        write!(c, "GET /healthz HTTP/1.1\r\nHost: {a}\r\n\r\n").unwrap();
        assert!(read_response(&mut c).starts_with("HTTP/1.1 200"));
        full.push(c);
    }
    // A partial head on a reserve slot is closed long before 120 s.
    let mut partial = connect_from("127.0.0.4", &a, None).await.unwrap();
    write!(partial, "GET /healthz HTTP/1.1\r\nHost: {a}\r\n").unwrap();
    let got = read_until_closed(&mut partial, "partial head on a reserve slot");
    assert!(!got.contains("200 OK"), "{got}");
    // Anything but a probe on the reserve: 503, counted and logged.
    assert_eq!(
        get_from("127.0.0.5", &a, "/jwks.json").await,
        "HTTP/1.1 503 Service Unavailable"
    );
    let log = s.log_until(|l| l.contains("tessera_reserve_busy_total"));
    assert!(log.contains("WARN"), "{log}");
    drop(full);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // (A scrape that lands on the reserve before the holders are gone counts too.)
        let m = get(&a, "/metrics").unwrap_or_default();
        let counted = m
            .lines()
            .find_map(|l| l.strip_prefix("tessera_reserve_busy_total "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if counted.is_some_and(|n| n >= 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "503s not counted: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Persistent (keep-alive) clients across SIGTERM: during the lame-duck phase every
/// answer says `Connection: close`, so no connection is left idle for the stop to close
/// under a client sending on it. A request on a reused connection never fails; new
/// connections are refused only once the listener has stopped.
#[tokio::test]
async fn hardening_sigterm_lame_duck_keep_alive_clients_see_no_errors() {
    let mut s = Server::start_with("shutdown_delay_secs = 3\n", &[]);
    let a = addr(&s);
    let exited = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (a, exited, done) = (a.clone(), Arc::clone(&exited), Arc::clone(&done));
            std::thread::spawn(move || {
                let (mut reused_errors, mut closes) = (Vec::new(), 0usize);
                let mut conn: Option<(TcpStream, usize)> = None;
                let deadline = Instant::now() + Duration::from_secs(120);
                while !exited.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let (mut c, used) = match conn.take() {
                        Some(c) => c,
                        None => match TcpStream::connect(&a) {
                            Ok(c) => (c, 0),
                            Err(_) => {
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    c.set_read_timeout(Some(CLOSE_BOUND)).unwrap();
                    let sent = write!(c, "GET /jwks.json HTTP/1.1\r\nHost: {a}\r\n\r\n");
                    let answer = sent.ok().and_then(|()| read_one(&mut c));
                    match answer {
                        Some(head) => {
                            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                            done.fetch_add(1, Ordering::Relaxed);
                            if head.to_ascii_lowercase().contains("connection: close") {
                                closes += 1;
                            } else {
                                conn = Some((c, used + 1));
                            }
                        }
                        // A fresh connection racing the listener's close may be reset;
                        // a reused one must never fail.
                        None if used > 0 => reused_errors.push(used),
                        None => {}
                    }
                }
                (reused_errors, closes)
            })
        })
        .collect();
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "requests stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(50);
    s.signal("TERM");
    let status = s.wait_exit(Duration::from_secs(60)).expect("still running");
    exited.store(true, Ordering::Relaxed);
    let (mut errors, mut closes) = (Vec::new(), 0);
    for w in workers {
        let (e, c) = w.join().unwrap();
        errors.extend(e);
        closes += c;
    }
    assert!(status.success(), "exit {status:?}; log:\n{}", s.log());
    assert!(
        errors.is_empty(),
        "requests failed on reused connections: {errors:?}"
    );
    assert!(closes > 0, "no answer said Connection: close");
}

/// Reads one response (head and `Content-Length` body); `None` if the connection ends
/// first.
fn read_one(c: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse::<usize>().ok())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return Some(text[..end].to_owned());
            }
        }
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Eight addresses of one /24 (or a few sources at the old default of a quarter of
/// `max_connections` each) cannot hold every slot: a source holds at most 32 and at most
/// an eighth of `max_connections`, a /24 four times that; another network is still served
/// in full, and the WARN tells the operator about `trusted_proxies`.
#[tokio::test]
async fn hardening_a_few_sources_of_one_network_cannot_take_every_slot() {
    let s = Server::start_with(
        "max_connections = 64\nheader_read_timeout_secs = 120\n",
        &[],
    );
    let a = addr(&s);
    let mut held = Vec::new();
    for src in 1..=8 {
        for _ in 0..16 {
            if let Ok(mut c) = connect_from(&format!("127.0.50.{src}"), &a, None).await {
                let _ = c.write_all(b"G");
                held.push(c);
            }
        }
    }
    // Another network gets a full slot (not the reserve's 503).
    for _ in 0..3 {
        let r = get_from("127.0.60.1", &a, "/jwks.json").await;
        assert_eq!(r, "HTTP/1.1 200 OK");
    }
    let log = s.log_until(|l| l.contains("set trusted_proxies"));
    assert!(
        log.contains("if a proxy is in front, set trusted_proxies"),
        "no WARN naming trusted_proxies; log:\n{log}"
    );
    drop(held);
}

/// One keep-alive connection is answered at most 100 requests (the 100th with
/// `Connection: close`), however many it pipelines: a client cannot keep its slot by
/// pipelining and reading slowly for hours.
#[tokio::test]
async fn hardening_a_connection_serves_at_most_100_pipelined_requests() {
    let s = Server::start_with("", &[]);
    let a = addr(&s);
    let mut c = TcpStream::connect(&a).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {a}\r\n\r\n");
    c.write_all(req.repeat(150).as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && got.len() < 1 << 22 {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 100, "{text}");
    assert_eq!(text.matches("connection: close").count(), 1);
}

/// After SIGTERM, Ctrl-C ends the shutdown delay at once; a second SIGTERM (a preStop
/// hook's kill duplicated by the kubelet's) is ignored: the server keeps serving, not ready.
#[tokio::test]
async fn hardening_a_second_signal_ends_the_shutdown_delay() {
    let mut s = Server::start_with("shutdown_delay_secs = 600\n", &[]);
    let a = addr(&s);
    s.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&a, "/readyz").unwrap();
        if r.starts_with("HTTP/1.1 503") {
            break;
        }
        assert!(Instant::now() < deadline, "readyz never turned 503: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.signal("TERM");
    // The duplicate is logged and ignored: the server still serves (and still says it is
    // not ready) once the log shows it was handled.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s
        .log()
        .contains("another SIGTERM during the shutdown delay")
    {
        assert!(
            Instant::now() < deadline,
            "the second SIGTERM was never logged; log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = get(&a, "/readyz").unwrap();
    assert!(
        r.starts_with("HTTP/1.1 503"),
        "a second SIGTERM ended the delay: {r}"
    );
    let r = get(&a, "/jwks.json").unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    s.signal("INT");
    let status = s
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("SIGINT during the delay was ignored"));
    assert!(status.success(), "exit {status:?}; log:\n{}", s.log());
}

/// `config check` reports what `serve` would refuse about the metrics options: a missing
/// token file, one others may read, a token a client cannot send, and metrics_listen on
/// the main listen address; never the token itself.
#[tokio::test]
async fn hardening_config_check_reports_bad_metrics_options() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = dir.path().join("metrics.token");
    let check = |set: &[String]| {
        let mut args: Vec<&str> = Vec::new();
        for s in set {
            args.extend(["--set", s.as_str()]);
        }
        args.extend(["config", "check"]);
        let out = run_cli(&data, &args, None);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), err)
    };
    let file = format!("metrics_token_file={}", token.display());
    let (ok, err) = check(std::slice::from_ref(&file));
    assert!(
        !ok && err.contains("metrics_token_file") && err.contains("cannot be read"),
        "{err}"
    );
    std::fs::write(&token, "s3cret-metrics-token-0123\n").unwrap();
    let mode = |m: u32| {
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    mode(0o644);
    let (ok, err) = check(std::slice::from_ref(&file));
    assert!(
        !ok && err.contains("chmod 600") && !err.contains("s3cret"),
        "{err}"
    );
    mode(0o600);
    std::fs::write(&token, "s3cret-métrique-token-0123\n").unwrap();
    let (ok, err) = check(std::slice::from_ref(&file));
    assert!(
        !ok && err.contains("RFC 6750") && !err.contains("s3cret"),
        "{err}"
    );
    std::fs::write(&token, "s3cret-metrics-token-0123\n").unwrap();
    let (ok, err) = check(std::slice::from_ref(&file));
    assert!(ok, "{err}");
    let same = [
        "listen=127.0.0.1:18099".to_owned(),
        "metrics_listen=127.0.0.1:18099".to_owned(),
    ];
    let (ok, err) = check(&same);
    assert!(!ok && err.contains("metrics_listen"), "{err}");
}

/// The same over TLS, after the handshake: clients that pipeline requests and never read
/// are closed once their writes stall for `request_timeout_secs`, and HTTPS is served
/// again.
#[tokio::test]
async fn hardening_tls_clients_that_never_read_after_the_handshake_are_closed() {
    use tokio::io::AsyncWriteExt;
    use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::pem::PemObject};
    let certs = tempfile::tempdir().unwrap();
    let pem = crate::tls::self_signed(certs.path(), "c");
    let (crt, key) = (certs.path().join("c.crt"), certs.path().join("c.key"));
    let s = Server::start_with(
        &format!(
            "tls_cert = {crt:?}\ntls_key = {key:?}\nmax_connections = 2\n\
             max_connections_per_ip = 100\nrequest_timeout_secs = 2\n"
        ),
        &[],
    );
    let a = s.base.trim_start_matches("https://").to_owned();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let pipelined = format!("GET /openapi.json HTTP/1.1\r\nHost: {a}\r\n\r\n").repeat(600);
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(a.parse().unwrap()).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        // The server stops reading once its answers back up; what is not sent is fine.
        let _ =
            tokio::time::timeout(Duration::from_secs(5), tls.write_all(pipelined.as_bytes())).await;
        stalled.push(tls);
    }
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.get(s.url("/jwks.json")).send().await {
            Ok(r) if r.status() == 200 => break,
            other => assert!(
                Instant::now() < deadline,
                "still refused while nobody reads: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(stalled);
}

/// A head trickled a byte at a time (progress, but never finished) is closed after
/// `header_read_timeout_secs` all the same: the timeout bounds the whole head.
#[tokio::test]
async fn hardening_a_head_trickled_byte_by_byte_is_closed() {
    let s = Server::start_with("header_read_timeout_secs = 2\n", &[]);
    let a = addr(&s);
    let mut c = TcpStream::connect(&a).unwrap();
    let mut writer = c.try_clone().unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {a}\r\nX-Pad: {}",
        "a".repeat(400)
    );
    let trickle = std::thread::spawn(move || {
        // One byte every 100 ms: 40 s for the whole head, far past the timeout.
        for b in head.bytes() {
            if writer.write_all(&[b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    let got = read_until_closed(&mut c, "trickled head");
    assert!(!got.contains("200 OK"), "{got}");
    assert!(
        trickle.join().unwrap(),
        "the whole head went out before the close"
    );
    let r = get(&a, "/healthz").unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}
