//! The listener's limits on loopback sockets: a slow client (slowloris) loses its
//! connection after the header-read timeout, a head with too many header lines gets 431,
//! connections over the cap are closed at once, and a stop lets a running request finish.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tessera_gateway::serve::{self, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Longest wait for anything; what does not happen fails the test at this bound.
const WAIT: Duration = Duration::from_secs(20);

fn limits() -> Limits {
    Limits {
        header_read: Duration::from_secs(1),
        max_connections: 4,
        max_headers: 50,
        max_head_bytes: 16 * 1024,
        shutdown_timeout: Duration::from_secs(5),
    }
}

struct Running {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: Limits) -> Running {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "done"
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve::run_with(app, listener, limits, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        done,
    }
}

/// Everything the server sends until it closes (bounded by [`WAIT`]); `None` if it has
/// not closed by then.
async fn read_to_close(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let r = tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await;
    match r {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

async fn get_ok(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    read_to_close(&mut s).await.expect("an answer")
}

#[tokio::test]
async fn a_slowloris_client_loses_its_connection_and_others_are_served() {
    let r = start(limits()).await;
    let mut slow = TcpStream::connect(r.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Dribble a header byte now and then: never a complete head.
    let dribble = async {
        for _ in 0..100 {
            if slow.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let meanwhile = get_ok(r.addr);
    let (_, answer) = tokio::join!(dribble, meanwhile);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let rest = read_to_close(&mut slow).await;
    let rest = rest.expect("the slow connection is closed");
    assert!(!rest.contains(" 200 "), "{rest}");
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_read_timeout() {
    let r = start(limits()).await;
    let mut idle = TcpStream::connect(r.addr).await.unwrap();
    let started = Instant::now();
    assert!(
        read_to_close(&mut idle).await.is_some(),
        "idle connection still open after {WAIT:?}"
    );
    assert!(started.elapsed() < WAIT);
}

#[tokio::test]
async fn a_head_with_too_many_header_lines_gets_431() {
    let r = start(limits()).await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes()).await;
    let answer = read_to_close(&mut s).await.expect("closed");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn an_oversized_head_is_refused() {
    let r = start(limits()).await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(head.as_bytes()).await;
    let answer = read_to_close(&mut s).await.expect("closed");
    assert!(!answer.contains(" 200 "), "{answer}");
}

/// A connection that has had one answer and stays open (keep-alive).
async fn keep_alive(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&buf).ends_with("ok") {
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        buf.extend_from_slice(&chunk[..n]);
    }
    s
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let r = start(Limits {
        header_read: Duration::from_secs(30),
        max_connections: 2,
        ..limits()
    })
    .await;
    // Two keep-alive connections, each answered once: both hold a slot now.
    let held_a = keep_alive(r.addr).await;
    let held_b = keep_alive(r.addr).await;
    let mut third = TcpStream::connect(r.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_to_close(&mut third)
        .await
        .expect("the third connection is closed");
    assert!(answer.is_empty(), "{answer}");
    drop(held_a);
    // A slot comes back when a held connection closes (bounded retries).
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = get_ok(r.addr).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held_b);
}

#[tokio::test]
async fn a_stop_lets_the_running_request_finish() {
    let mut r = start(limits()).await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = r.stop.take().unwrap().send(());
    let answer = read_to_close(&mut s)
        .await
        .expect("closed after the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("done"), "{answer}");
    let result = tokio::time::timeout(WAIT, r.done)
        .await
        .expect("run_with returned");
    result.unwrap().unwrap();
    assert!(TcpStream::connect(r.addr).await.is_err(), "still listening");
}
