//! Graceful shutdown: SIGTERM under load stops accepting, lets every request that had
//! started finish, checkpoints SQLite and exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{PASSWORD, Server, basic_header};

/// Lines the server logged for requests it has started (the request middleware, at
/// debug level).
fn started(s: &Server) -> usize {
    s.log().matches("request started").count()
}

/// Waits until the server has started `n` requests.
async fn wait_until(s: &Server, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while started(s) < n {
        assert!(
            Instant::now() < deadline,
            "requests never started:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sigterm_under_load_finishes_started_requests_and_exits_0() {
    let mut s = Server::start_with(
        // 24 concurrent sign-ins of one account: each holds a throttle reservation until
        // its check ends, so the account's limit must allow that many at once, and each a
        // place in the hash queue, of which one network may hold an eighth. The half-sent
        // request below must outlive a slow run: no 30 s body deadline.
        "password_hash_concurrency = 1\nshutdown_timeout_secs = 120\n\
         login_failures_per_account = 50\nlogin_failures_per_ip = 50\n\
         password_hash_queue = 256\nrequest_timeout_secs = 600\n",
        &[("TESSERA_LOG", "info,tessera_server=debug")],
    );
    let (id, secret) = s.add_client("web", "password,client_credentials", "", &[]);
    let secret = secret.unwrap();
    s.add_user("alice", PASSWORD);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let basic = basic_header(&id, &secret);
    // A fresh connection per request, so no request can land on a connection the
    // server is closing as idle.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    // 1. A request held open by the client: headers sent, body not yet. The server
    //    cannot finish it until the test sends the rest, so it is surely in flight.
    let body = "grant_type=client_credentials";
    let initial = started(&s);
    let mut slow = TcpStream::connect(&addr).unwrap();
    write!(
        slow,
        "POST /token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{}",
        body.len(),
        &body[..5]
    )
    .unwrap();

    wait_until(&s, initial + 1).await;

    // 2. Load: password logins (Argon2, one at a time on the server, so most of them
    //    are queued when the signal comes).
    let before = started(&s);
    let logins: Vec<_> = (0..24)
        .map(|_| {
            let http = http.clone();
            let url = s.url("/token");
            let basic = basic.clone();
            tokio::spawn(async move {
                http.post(url)
                    .header("authorization", basic)
                    .form(&[
                        ("grant_type", "password"),
                        ("username", "alice"),
                        ("password", PASSWORD),
                    ])
                    .send()
                    .await
            })
        })
        .collect();
    // ...and a stream of cheap requests that keeps going through the shutdown.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (http, url, stop) = (http.clone(), s.url("/jwks.json"), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) => statuses.push(r.status().as_u16()),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
            statuses
        })
    };
    // Wait until the server has started every login.
    wait_until(&s, before + 24).await;

    // 3. SIGTERM. New connections are refused while the held request keeps the
    //    process alive.
    s.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(s.running(), "the server exited with a request in flight");

    // 4. Every login that had started succeeds.
    for login in logins {
        let r = login.await.unwrap().expect("a started request failed");
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["access_token"].is_string());
    }
    // 5. The held request completes too, once its body arrives.
    slow.write_all(&body.as_bytes()[5..]).unwrap();
    let mut reply = String::new();
    slow.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("access_token"), "{reply}");

    // 6. Exit 0, store checkpointed; no answer of the request stream was an error.
    let status = s.wait_exit(Duration::from_secs(60)).expect("still running");
    assert!(status.success(), "exit {status:?}; log:\n{}", s.log());
    stop.store(true, Ordering::Relaxed);
    let statuses = stream.await.unwrap();
    assert!(statuses.iter().all(|&c| c == 200), "{statuses:?}");
    let wal = s.data_dir().join("tessera.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "WAL not checkpointed"
    );
    let log = s.log();
    assert!(
        log.contains("shutting down") && log.contains("store closed"),
        "{log}"
    );
}
