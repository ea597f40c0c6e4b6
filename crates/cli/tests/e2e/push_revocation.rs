//! Push revocation (docs/revocation-feed.md, "Push"): a guard subscribed to the feed gets
//! a revocation while its poll interval is an hour, so only the push can have brought
//! it; a dropped subscription misses nothing and applies nothing twice; two replicas on
//! one PostgreSQL; refusals (credentials, the per-client limit, bogus cursors, a
//! draining server); a subscriber that never reads; subscriptions at shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_guard::{RevocationCheck, RevocationFeed, SystemClock};
use tessera_token::{Claims, SecretString, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Server, basic_header, jwt_claims};

/// Longest wait for anything to happen; what does not happen fails the test at this bound.
const WAIT: Duration = Duration::from_secs(60);
/// A poll interval no test outlasts: what arrives, arrived by push.
const HOUR: Duration = Duration::from_secs(3600);

/// Waits (at most [`WAIT`]) until `done`.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A service client `svc` whose tokens get revoked, and a resource server client `rs`
/// that reads the feed.
struct Clients {
    svc: (String, String),
    rs: (String, String),
}

fn clients(s: &Server) -> Clients {
    let (svc, svc_secret) = s.add_client("svc", "client_credentials", "a", &["--audience", "api"]);
    let (rs, rs_secret) = s.add_client("rs", "client_credentials", "", &[]);
    Clients {
        svc: (svc, svc_secret.unwrap()),
        rs: (rs, rs_secret.unwrap()),
    }
}

/// A fresh access token of `svc` and its `jti`.
async fn token(s: &Server, c: &Clients) -> (String, String) {
    let r = s
        .token(
            &[("grant_type", "client_credentials")],
            Some((&c.svc.0, &c.svc.1)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let at = r.str("access_token");
    let jti = jwt_claims(&at)["jti"].as_str().unwrap().to_owned();
    (at, jti)
}

async fn revoke(s: &Server, c: &Clients, at: &str) {
    let r = s
        .post_form("/revoke", &[("token", at)], Some((&c.svc.0, &c.svc.1)))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
}

fn revoked(feed: &RevocationFeed, jti: &str) -> bool {
    let claims = Claims {
        jti: Some(jti.to_owned()),
        ..Claims::default()
    };
    feed.list().is_revoked(&claims, UnixTime::from_secs(0))
}

/// A guard's feed client at `base` as `rs`, polling once an hour, following the feed.
async fn subscribed_guard(base: &str, c: &Clients) -> Arc<RevocationFeed> {
    let feed = Arc::new(
        RevocationFeed::new(
            &format!("{base}/revocations"),
            c.rs.0.clone(),
            SecretString::new(c.rs.1.clone()),
        )
        .unwrap()
        .interval(HOUR),
    );
    Arc::clone(&feed).spawn(Arc::new(SystemClock));
    until("the guard to subscribe", || feed.subscribed()).await;
    feed
}

/// A client for subscriptions: no overall timeout.
fn streaming() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// Opens a subscription as `id`/`secret`, with `Last-Event-ID` when given.
async fn subscribe(
    http: &reqwest::Client,
    s: &Server,
    id: &str,
    secret: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut r = http
        .get(s.url("/revocations"))
        .header("authorization", basic_header(id, secret))
        .header("accept", "text/event-stream");
    if let Some(l) = last_event_id {
        r = r.header("last-event-id", l);
    }
    r.send().await.unwrap()
}

/// Reads `resp` until its text so far contains `needle` (bounded by [`WAIT`]).
async fn read_until(resp: &mut reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !text.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {text:?}"))
            .unwrap();
        let Some(chunk) = chunk else {
            panic!("stream ended without {needle:?}: {text:?}")
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn push_a_subscribed_guard_gets_a_revocation_without_polling() {
    let s = Server::start();
    let c = clients(&s);
    let feed = subscribed_guard(&s.base, &c).await;
    let applied = feed.applied();
    let (at, jti) = token(&s, &c).await;
    revoke(&s, &c, &at).await;
    until("the revocation to reach the guard", || revoked(&feed, &jti)).await;
    assert_eq!(feed.applied(), applied + 1);
}

#[tokio::test]
async fn push_a_guard_renews_its_subscription_and_misses_nothing() {
    // Subscriptions end after a second: the guard renews each from its cursor.
    let s = Server::start_with("feed_subscription_max_secs = 1\n", &[]);
    let c = clients(&s);
    let feed = subscribed_guard(&s.base, &c).await;
    let start = feed.applied();
    for round in 1..=3u64 {
        // Across at least one renewal.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let (at, jti) = token(&s, &c).await;
        revoke(&s, &c, &at).await;
        until("the revocation after a renewal", || revoked(&feed, &jti)).await;
        assert_eq!(feed.applied(), start + round);
    }
    // Each renewal is a poll and a subscription: more than the first two feed requests.
    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let feed_requests: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("tessera_http_requests_total{") && l.contains("route=\"/revocations\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        feed_requests >= 4.0,
        "{feed_requests} feed requests:\n{metrics}"
    );
}

/// A TCP relay in front of the server whose connections can be cut and refused.
struct Relay {
    base: String,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: &str) -> Self {
        let target = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let open = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (o, l) = (Arc::clone(&open), Arc::clone(&links));
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                l.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                }));
            }
        });
        Relay { base, open, links }
    }

    /// Cuts every connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn push_a_dropped_subscription_misses_nothing_and_applies_nothing_twice() {
    let s = Server::start();
    let c = clients(&s);
    let relay = Relay::start(&s.base).await;
    let feed = subscribed_guard(&relay.base, &c).await;
    let start = feed.applied();

    let (at1, jti1) = token(&s, &c).await;
    revoke(&s, &c, &at1).await;
    until("the first revocation", || revoked(&feed, &jti1)).await;
    assert_eq!(feed.applied(), start + 1);

    // The connection drops; a revocation is committed while the guard is cut off.
    relay.cut();
    until("the guard to notice", || !feed.subscribed()).await;
    let (at2, jti2) = token(&s, &c).await;
    revoke(&s, &c, &at2).await;
    assert!(!revoked(&feed, &jti2));
    relay.restore();
    // Back: the poll resumes from the cursor, then the guard subscribes again after it.
    until("the missed revocation", || revoked(&feed, &jti2)).await;
    until("the guard to subscribe again", || feed.subscribed()).await;

    let (at3, jti3) = token(&s, &c).await;
    revoke(&s, &c, &at3).await;
    until("the third revocation", || revoked(&feed, &jti3)).await;
    assert_eq!(
        feed.applied(),
        start + 3,
        "each entry applied once, whether it came by push or by poll"
    );
}

#[tokio::test]
async fn push_replicas_an_entry_committed_on_one_reaches_a_guard_of_the_other() {
    let Some(pg) = tokio::task::spawn_blocking(crate::postgres::cluster)
        .await
        .unwrap()
    else {
        eprintln!("skipped: no PostgreSQL installed");
        return;
    };
    let url = pg.fresh_database("push").unwrap();
    let key = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [9u8; 32]);
    let env = [("TESSERA_MASTER_KEY", key.as_str())];
    let config = "issuer = \"http://localhost:8080\"\n";
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Server::start_on(Some(&url), config, &env));
        let b = scope.spawn(|| Server::start_on(Some(&url), config, &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    let c = clients(&a);
    let on_a = subscribed_guard(&a.base, &c).await;
    let on_b = subscribed_guard(&b.base, &c).await;
    let (at, jti) = token(&a, &c).await;
    revoke(&a, &c, &at).await;
    until("replica b's guard", || revoked(&on_b, &jti)).await;
    until("replica a's guard", || revoked(&on_a, &jti)).await;
    let (at, jti) = token(&b, &c).await;
    revoke(&b, &c, &at).await;
    until("replica a's guard, from b", || revoked(&on_a, &jti)).await;
    until("replica b's guard, from b", || revoked(&on_b, &jti)).await;
}

#[tokio::test]
async fn push_a_client_that_cannot_read_the_feed_is_refused() {
    let s = Server::start();
    let c = clients(&s);
    let http = streaming();
    let r = subscribe(&http, &s, &c.rs.0, "not-the-secret", None).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let anonymous = http
        .get(s.url("/revocations"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // A public client has no secret to authenticate with.
    let (public, _) = s.add_client(
        "spa",
        "authorization_code",
        "a",
        &["--public", "--redirect-uri", "https://spa.example/cb"],
    );
    let r = subscribe(&http, &s, &public, "", None).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn push_many_subscriptions_from_one_client_stop_at_its_limit() {
    let s = Server::start_with("feed_subscriptions_per_client = 3\n", &[]);
    let c = clients(&s);
    let http = streaming();
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..12 {
        let r = subscribe(&http, &s, &c.rs.0, &c.rs.1, None).await;
        match r.status().as_u16() {
            200 => open.push(r),
            429 => {
                assert!(r.headers().contains_key("retry-after"));
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["error"], "temporarily_unavailable");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((open.len(), refused), (3, 9));
    // Another client has its own count.
    let (other, other_secret) = s.add_client("rs2", "client_credentials", "", &[]);
    let r = subscribe(&http, &s, &other, &other_secret.unwrap(), None).await;
    assert_eq!(r.status(), 200);
    // A subscriber that goes away gives its place back (the server notices the closed
    // connection at its next keep-alive at the latest).
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let r = subscribe(&http, &s, &c.rs.0, &c.rs.1, None).await;
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never given back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn push_bogus_cursors_are_refused() {
    let s = Server::start();
    let c = clients(&s);
    let (at, _) = token(&s, &c).await;
    revoke(&s, &c, &at).await;
    let http = streaming();
    for bad in [
        "garbage",
        "-1",
        "+1",
        "1.5",
        "2",
        "9223372036854775807",
        "99999999999999999999999",
        "0x1",
    ] {
        let r = subscribe(&http, &s, &c.rs.0, &c.rs.1, Some(bad)).await;
        assert_eq!(r.status(), 400, "{bad:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{bad:?}");
    }
    // The cursors it issued are fine, from the start or from the last entry.
    for good in ["0", "1"] {
        let mut r = subscribe(&http, &s, &c.rs.0, &c.rs.1, Some(good)).await;
        assert_eq!(r.status(), 200, "{good:?}");
        read_until(&mut r, "event: revoked").await;
    }
}

#[tokio::test]
async fn push_a_subscriber_that_never_reads_holds_up_nobody() {
    let s = Server::start_with(
        "feed_subscriptions_per_client = 1\nfeed_subscription_max_secs = 2\nfeed_keepalive_secs = 1\n",
        &[],
    );
    let c = clients(&s);
    let (stall, stall_secret) = s.add_client("stall", "client_credentials", "", &[]);
    let stall_secret = stall_secret.unwrap();
    // A subscriber that sends its request and never reads a byte of the answer.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut raw = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /revocations HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\nauthorization: {}\r\n\r\n",
        basic_header(&stall, &stall_secret)
    );
    raw.write_all(request.as_bytes()).await.unwrap();
    // Others are served meanwhile: a guard subscribes and gets a revocation by push.
    let feed = subscribed_guard(&s.base, &c).await;
    let (at, jti) = token(&s, &c).await;
    revoke(&s, &c, &at).await;
    until("the revocation to reach the reading guard", || {
        revoked(&feed, &jti)
    })
    .await;
    // The stalled subscription still ends at its time: its client's one place comes back.
    let http = streaming();
    let deadline = Instant::now() + WAIT;
    loop {
        let r = subscribe(&http, &s, &stall, &stall_secret, None).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429);
        assert!(
            Instant::now() < deadline,
            "the stalled subscription kept its place"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What it was sent is a bounded stream that ended, not an ever-growing buffer.
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut seen)).await;
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("event: end"), "{seen}");
}

/// Lame duck for 3 s, then up to 120 s for requests in flight.
const SHUTDOWN: &str = "shutdown_delay_secs = 3\nshutdown_timeout_secs = 120\n";

#[tokio::test]
async fn push_subscriptions_end_at_shutdown_without_delaying_it() {
    ends_at_shutdown(Server::start_with(SHUTDOWN, &[])).await;
}

#[tokio::test]
async fn push_postgres_subscriptions_end_at_shutdown_and_the_listener_lets_the_store_close() {
    let Some(pg) = tokio::task::spawn_blocking(crate::postgres::cluster)
        .await
        .unwrap()
    else {
        eprintln!("skipped: no PostgreSQL installed");
        return;
    };
    let url = pg.fresh_database("push_stop").unwrap();
    let key = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [5u8; 32]);
    ends_at_shutdown(Server::start_on(
        Some(&url),
        SHUTDOWN,
        &[("TESSERA_MASTER_KEY", key.as_str())],
    ))
    .await;
}

/// An open subscription ends at SIGTERM, a new one is refused while pulls are served, and
/// the server exits without waiting for `shutdown_timeout_secs`.
async fn ends_at_shutdown(mut s: Server) {
    let c = clients(&s);
    let http = streaming();
    let mut open = subscribe(&http, &s, &c.rs.0, &c.rs.1, None).await;
    assert_eq!(open.status(), 200);
    read_until(&mut open, "event: revoked").await;
    s.signal("TERM");
    // The open subscription ends with its final event at once...
    let text = read_until(&mut open, "event: end").await;
    assert!(text.contains("draining"), "{text}");
    // ...a new one is refused during the lame-duck delay, while pulls still work...
    let r = subscribe(&http, &s, &c.rs.0, &c.rs.1, None).await;
    if r.status() != 503 {
        // The listener may already have stopped (the delay ended): then nothing answers.
        panic!("expected 503 while draining, got {}", r.status());
    }
    assert!(r.headers().contains_key("retry-after"));
    let pull = s.get("/revocations", Some((&c.rs.0, &c.rs.1))).await;
    assert_eq!(pull.status, 200);
    // ...and the server stops without waiting for shutdown_timeout_secs.
    assert!(
        s.wait_exit(Duration::from_secs(60)).is_some(),
        "a subscription held the stop"
    );
}

#[tokio::test]
async fn push_subscriptions_stop_at_the_node_cap_and_pulls_still_answer() {
    let s = Server::start_with(
        "max_connections = 16\nmax_connections_per_ip = 100\nfeed_subscriptions_max = 2\nfeed_keepalive_secs = 7\n",
        &[],
    );
    let c = clients(&s);
    let http = streaming();
    let first = subscribe(&http, &s, &c.rs.0, &c.rs.1, None).await;
    assert_eq!(first.status(), 200);
    // The guard's idle limit follows the announced keep-alive.
    assert_eq!(first.headers()["tessera-feed-keepalive"], "7");
    let (other, other_secret) = s.add_client("rs2", "client_credentials", "", &[]);
    let other_secret = other_secret.unwrap();
    let second = subscribe(&http, &s, &other, &other_secret, None).await;
    assert_eq!(second.status(), 200);
    // Every client counts toward the node's cap: the third is refused, not queued.
    let r = subscribe(&http, &s, &other, &other_secret, None).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // Polling, the guard's fallback, is still served.
    let pull = http
        .get(s.url("/revocations"))
        .header("authorization", basic_header(&other, &other_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 200);
}
