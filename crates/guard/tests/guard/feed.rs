//! The revocation feed client against a fake feed server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tessera_guard::RevocationFeed;
use tessera_token::{SecretString, UnixTime};

use crate::common::*;

#[derive(Default)]
struct Fake {
    calls: AtomicUsize,
    queries: Mutex<Vec<String>>,
    pushes: AtomicUsize,
}

async fn feed(
    State(f): State<Arc<Fake>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    f.calls.fetch_add(1, Ordering::SeqCst);
    // base64("guard:feed-secret")
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some("Basic Z3VhcmQ6ZmVlZC1zZWNyZXQ=")
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let after = q.get("after").cloned().unwrap_or_default();
    f.queries.lock().unwrap().push(after.clone());
    let page = match after.as_str() {
        "" => json!({"revoked": [{"jti": "leaked-jti", "exp": NOW + 600},
                                 {"jti": "old", "exp": NOW - 3600}],
                     "cursor": "2", "has_more": true}),
        "2" => {
            json!({"revoked": [{"sid": "sid-9", "exp": NOW + 86400}], "cursor": "3", "has_more": false})
        }
        "3" => json!({"revoked": [], "cursor": "3", "has_more": false}),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_request"})),
            )
                .into_response();
        }
    };
    Json(page).into_response()
}

#[tokio::test]
async fn feed_revokes_tokens_and_evicts_them_from_the_cache() {
    let fake = Arc::new(Fake::default());
    let base = serve(
        Router::new()
            .route("/feed", get(feed))
            .with_state(fake.clone()),
    )
    .await;
    let client = RevocationFeed::new(
        &format!("{base}/feed"),
        "guard",
        SecretString::new("feed-secret"),
    )
    .unwrap();
    assert!(!format!("{client:?}").contains("feed-secret"));

    let k = key("k1");
    let guard = static_guard(&k, clock())
        .revocation(client.list())
        .build()
        .unwrap();
    let app = app(&guard);
    let leaked = token(&k, json!({"jti": "leaked-jti", "sid": "sid-1"}));
    let grant = token(&k, json!({"sid": "sid-9"}));
    let fine = token(&k, json!({"sid": "sid-1"}));
    for t in [&leaked, &grant, &fine] {
        let r = send(&app, get_with("/me", &[("authorization", &bearer(t))])).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(guard.cached_tokens(), 3);

    let now = UnixTime::from_secs(NOW);
    assert_eq!(client.poll_once(now).await.unwrap(), 3, "both pages read");
    assert_eq!(client.list().len(), 2, "the expired entry was pruned");
    for t in [&leaked, &grant] {
        let r = send(&app, get_with("/me", &[("authorization", &bearer(t))])).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.json()["error_description"], "token revoked");
    }
    assert_eq!(guard.cached_tokens(), 1, "revoked tokens evicted");
    let r = send(&app, get_with("/me", &[("authorization", &bearer(&fine))])).await;
    assert_eq!(r.status, StatusCode::OK);

    // The next poll resumes from the cursor.
    assert_eq!(client.poll_once(now).await.unwrap(), 0);
    assert_eq!(*fake.queries.lock().unwrap(), vec!["", "2", "3"]);
    // Entries are forgotten once their exp (plus leeway) has passed.
    let later = UnixTime::from_secs(NOW + 86400 + 31);
    client.poll_once(later).await.unwrap();
    assert!(client.list().is_empty());
}

#[tokio::test]
async fn bad_credentials_fail_without_leaking_the_secret() {
    let fake = Arc::new(Fake::default());
    let base = serve(
        Router::new()
            .route("/feed", get(feed))
            .with_state(fake.clone()),
    )
    .await;
    let good = RevocationFeed::new(
        &format!("{base}/feed"),
        "guard",
        SecretString::new("feed-secret"),
    )
    .unwrap();
    let now = UnixTime::from_secs(NOW);
    assert_eq!(good.last_synced(), None);
    good.poll_once(now).await.unwrap();
    assert_eq!(good.list().len(), 2);
    assert_eq!(good.last_synced(), Some(now));

    let bad =
        RevocationFeed::new(&format!("{base}/feed"), "guard", SecretString::new("nope")).unwrap();
    let err = bad.poll_once(now).await.unwrap_err();
    assert_eq!(err, tessera_guard::FetchError::Status(401));
    assert!(!err.to_string().contains("nope"));
    assert_eq!(bad.last_synced(), None, "a failed poll is no sync");
}

#[tokio::test]
async fn last_synced_moves_with_each_complete_read_and_not_on_failures() {
    let fake = Arc::new(Fake::default());
    let (listener, base) = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        (l, base)
    };
    let app = Router::new()
        .route("/feed", get(feed))
        .with_state(fake.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let client = RevocationFeed::new(
        &format!("{base}/feed"),
        "guard",
        SecretString::new("feed-secret"),
    )
    .unwrap();
    client.poll_once(UnixTime::from_secs(NOW)).await.unwrap();
    client
        .poll_once(UnixTime::from_secs(NOW + 60))
        .await
        .unwrap();
    assert_eq!(client.last_synced(), Some(UnixTime::from_secs(NOW + 60)));
    // The server goes away: polls fail and the last sync stays where it was.
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    assert!(
        client
            .poll_once(UnixTime::from_secs(NOW + 120))
            .await
            .is_err()
    );
    assert_eq!(client.last_synced(), Some(UnixTime::from_secs(NOW + 60)));
}

#[tokio::test]
async fn spawned_feed_polls_at_its_interval() {
    let fake = Arc::new(Fake::default());
    let base = serve(
        Router::new()
            .route("/feed", get(feed))
            .with_state(fake.clone()),
    )
    .await;
    let client = Arc::new(
        RevocationFeed::new(
            &format!("{base}/feed"),
            "guard",
            SecretString::new("feed-secret"),
        )
        .unwrap()
        .interval(std::time::Duration::from_millis(20)),
    );
    let list = client.list();
    let handle = client.spawn(clock());
    eventually(|| list.len() == 2 && fake.calls.load(Ordering::SeqCst) >= 3).await;
    handle.abort();
}

/// The feed above, and for `Accept: text/event-stream` a stream whose event is garbage.
async fn garbled_push(
    state: State<Arc<Fake>>,
    headers: HeaderMap,
    query: Query<HashMap<String, String>>,
) -> Response {
    let streams = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !streams {
        return feed(state, headers, query).await;
    }
    state.0.pushes.fetch_add(1, Ordering::SeqCst);
    (
        [("content-type", "text/event-stream")],
        "event: revoked\nid: 9\ndata: {\"revoked\": \"not a list\"}\n\n",
    )
        .into_response()
}

#[tokio::test]
async fn a_garbled_push_falls_back_to_polling_and_applies_each_entry_once() {
    let fake = Arc::new(Fake::default());
    let base = serve(
        Router::new()
            .route("/feed", get(garbled_push))
            .with_state(fake.clone()),
    )
    .await;
    let client = Arc::new(
        RevocationFeed::new(
            &format!("{base}/feed"),
            "guard",
            SecretString::new("feed-secret"),
        )
        .unwrap()
        .interval(std::time::Duration::from_millis(20)),
    );
    let list = client.list();
    let handle = Arc::clone(&client).spawn(clock());
    // Polled (the three entries of the two pages), and the subscription tried again.
    eventually(|| list.len() == 2 && fake.pushes.load(Ordering::SeqCst) >= 2).await;
    assert_eq!(
        client.applied(),
        3,
        "polls after the first find nothing new"
    );
    assert!(!client.subscribed());
    handle.abort();
}

/// A feed on a raw socket whose push subscriptions answer, announce a keep-alive of one
/// second (when `announce`) and then say nothing, ever, without closing: a half-open
/// connection or a buffering proxy. Polls answer one entry after cursor 0 once it is visible.
struct Silent {
    subscriptions: AtomicUsize,
    polls: Mutex<Vec<String>>,
    entry_visible: std::sync::atomic::AtomicBool,
}

async fn silent_feed(announce: bool) -> (String, Arc<Silent>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Silent {
        subscriptions: AtomicUsize::new(0),
        polls: Mutex::new(Vec::new()),
        entry_visible: std::sync::atomic::AtomicBool::new(false),
    });
    let s = Arc::clone(&state);
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
                match conn.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(m) => n += m,
                }
            }
            let req = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            if req.contains("text/event-stream") {
                s.subscriptions.fetch_add(1, Ordering::SeqCst);
                let announce = if announce {
                    "tessera-feed-keepalive: 1\r\n"
                } else {
                    ""
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n{announce}transfer-encoding: chunked\r\n\r\n"
                );
                let _ = conn.write_all(head.as_bytes()).await;
                held.push(conn);
                continue;
            }
            let after = req
                .split("after=")
                .nth(1)
                .map(|r| r.split(['&', ' ']).next().unwrap_or("").to_owned())
                .unwrap_or_default();
            s.polls.lock().unwrap().push(after.clone());
            let body = if (after.is_empty() || after == "0") && s.entry_visible.load(Ordering::SeqCst) {
                json!({"revoked": [{"jti": "late", "exp": NOW + 600}], "cursor": "1", "has_more": false})
            } else {
                json!({"revoked": [], "cursor": if after.is_empty() { "0" } else { &after }, "has_more": false})
            }
            .to_string();
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        }
    });
    (format!("{base}/feed"), state)
}

/// Waits (at most 20 s) for `f`.
async fn within_20s(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("not reached in 20 s: {what}");
}

#[tokio::test]
async fn a_silent_subscription_still_gets_revocations_by_the_safety_poll() {
    let (url, silent) = silent_feed(false).await;
    let client = Arc::new(
        RevocationFeed::new(&url, "guard", SecretString::new("feed-secret"))
            .unwrap()
            .interval(std::time::Duration::from_millis(100)),
    );
    let handle = Arc::clone(&client).spawn(clock());
    within_20s("subscribed", || client.subscribed()).await;
    // Revoked after the subscription opened; the subscription never says so.
    silent.entry_visible.store(true, Ordering::SeqCst);
    within_20s("applied by the safety poll", || client.applied() == 1).await;
    assert!(
        client.subscribed(),
        "still subscribed: the poll ran alongside"
    );
    assert_eq!(silent.subscriptions.load(Ordering::SeqCst), 1);
    handle.abort();
}

#[tokio::test]
async fn a_silent_subscription_counts_as_dead_after_twice_the_announced_keepalive() {
    let (url, silent) = silent_feed(true).await;
    let client = Arc::new(
        RevocationFeed::new(&url, "guard", SecretString::new("feed-secret"))
            .unwrap()
            .interval(std::time::Duration::from_millis(100)),
    );
    let handle = Arc::clone(&client).spawn(clock());
    // 2 × 1 s + 5 s of silence, not the 45 s default: the guard subscribes again.
    within_20s("a second subscription", || {
        silent.subscriptions.load(Ordering::SeqCst) >= 2
    })
    .await;
    handle.abort();
}

#[tokio::test]
async fn a_lagging_answer_never_moves_the_cursor_back() {
    let queries = Arc::new(Mutex::new(Vec::<String>::new()));
    async fn lagging(
        State(q): State<Arc<Mutex<Vec<String>>>>,
        Query(p): Query<HashMap<String, String>>,
    ) -> Response {
        let after = p.get("after").cloned().unwrap_or_default();
        q.lock().unwrap().push(after.clone());
        // The first answer moves the guard to 10; the next (a replica behind) says 3.
        let cursor = if after.is_empty() { "10" } else { "3" };
        Json(json!({"revoked": [], "cursor": cursor, "has_more": false})).into_response()
    }
    let base = serve(
        Router::new()
            .route("/feed", get(lagging))
            .with_state(queries.clone()),
    )
    .await;
    let client = RevocationFeed::new(
        &format!("{base}/feed"),
        "guard",
        SecretString::new("feed-secret"),
    )
    .unwrap();
    let now = UnixTime::from_secs(NOW);
    for _ in 0..3 {
        client.poll_once(now).await.unwrap();
    }
    assert_eq!(*queries.lock().unwrap(), vec!["", "10", "10"]);
}
