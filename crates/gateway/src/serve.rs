//! Serving a router on a listener with hyper: a header-read timeout (a slow or idle client
//! gives its connection back), caps on header lines and head bytes, a cap on open
//! connections (further ones are closed at once), HTTP/1.1 upgrades (WebSockets in proxy
//! mode), the client's address as `ConnectInfo<SocketAddr>` on each request, and a graceful stop: on `shutdown` the listener closes, running requests get
//! `shutdown_timeout` to finish.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::ServingConfig;

/// Pause after a failed `accept` (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Bounds of the listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a request head, also between keep-alive requests.
    pub header_read: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Header lines in one head (more: 431).
    pub max_headers: usize,
    /// Bytes of one head (at least 8192).
    pub max_head_bytes: usize,
    /// How long running requests may take to finish after `shutdown`.
    pub shutdown_timeout: Duration,
}

impl Limits {
    /// From the `[serving]` section.
    pub fn from_config(c: &ServingConfig) -> Limits {
        Limits {
            header_read: Duration::from_secs(c.header_read_timeout_secs),
            max_connections: c.max_connections,
            max_headers: c.max_headers,
            max_head_bytes: c.max_head_bytes,
            shutdown_timeout: Duration::from_secs(c.shutdown_timeout_secs),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&ServingConfig::default())
    }
}

/// Serves `router` on `listener` with the default limits until `shutdown` completes.
pub async fn run(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    run_with(router, listener, Limits::default(), shutdown).await
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets
/// running requests finish (at most `limits.shutdown_timeout`).
pub async fn run_with(
    router: Router,
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_head_bytes.max(8192));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection cap reached; closing the connection");
            continue;
        };
        // Each request carries the client's address, as axum's `ConnectInfo` (proxy mode
        // writes it into `X-Forwarded-For`).
        let inner = TowerToHyperService::new(router.clone());
        let service = service_fn(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            inner.call(request)
        });
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                () = async { let _ = stopping.wait_for(|s| *s).await; } => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it closes: all slots back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_secs = limits.shutdown_timeout.as_secs(),
            "requests still running at shutdown; closing their connections"
        );
    }
    Ok(())
}
