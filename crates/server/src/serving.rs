//! Serving connections with hyper and a timer: a header-read timeout (which also bounds an
//! idle keep-alive connection), a cap on open connections with a small reserve that may
//! only ask the health probes, optional TLS with a bounded handshake, and a stop that
//! serves what the kernel already accepted before the socket closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};
use tokio_rustls::TlsAcceptor;
use tower::Service;
use tower_http::timeout::DeadlineBody;

/// Connections admitted beyond `max_connections` for `/healthz` and `/readyz` only.
pub(crate) const PROBE_RESERVE: usize = 8;
/// The paths a reserve connection may ask for.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];
/// Pause after a failed `accept` (out of file descriptors and the like), so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest wait for a request head (also between keep-alive requests).
    pub header_read: Duration,
    /// Longest time to receive a request body once its head arrived.
    pub request_body: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Further connections that may only ask the health probes.
    pub reserve: usize,
}

/// A bound listener and what it serves.
pub(crate) struct Endpoint {
    pub listener: TcpListener,
    pub app: Router,
    pub tls: Option<TlsAcceptor>,
    pub limits: Limits,
}

/// Serves `endpoint` until `stop` turns true; then serves the connections the kernel had
/// already accepted, closes the socket, lets every connection finish the request it has
/// (a connection that has not sent one yet may send one) and returns when all are closed
/// or `drain` has passed.
pub(crate) async fn serve(endpoint: Endpoint, mut stop: watch::Receiver<bool>, drain: Duration) {
    let Endpoint {
        listener,
        app,
        tls,
        limits,
    } = endpoint;
    let slots = Slots::new(limits);
    let ctx = Arc::new(Conn {
        app,
        tls,
        header_read: limits.header_read,
        request_body: limits.request_body,
        stop: stop.clone(),
    });
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => admit(&slots, &ctx, stream, peer),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    // Connections the kernel completed before the socket closes would be reset: serve
    // them (at most as many as there are slots).
    for _ in 0..limits.max_connections + limits.reserve {
        let pending = tokio::select! {
            biased;
            a = listener.accept() => a.ok(),
            () = std::future::ready(()) => None,
        };
        match pending {
            Some((stream, peer)) => admit(&slots, &ctx, stream, peer),
            None => break,
        }
    }
    drop(listener);
    if !slots.all_closed(drain).await {
        tracing::warn!(
            drain_secs = drain.as_secs(),
            "requests still running after shutdown_timeout_secs; closing their connections"
        );
    }
}

/// Starts serving `stream` if a slot is free; otherwise closes it at once.
fn admit(slots: &Slots, ctx: &Arc<Conn>, stream: TcpStream, peer: SocketAddr) {
    let Some(slot) = slots.take() else {
        metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
        tracing::debug!(peer = %peer, "connection refused: max_connections reached");
        return;
    };
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move { ctx.run(stream, peer, slot).await });
}

/// The connection slots: `max_connections` full ones and the probe reserve. A
/// connection holds its permit until it closes.
struct Slots {
    full: Arc<Semaphore>,
    probe: Arc<Semaphore>,
    limits: Limits,
}

/// An admitted connection's place, given back when it closes.
struct Slot {
    _permit: OwnedSemaphorePermit,
    /// A reserve slot: the health probes only.
    probe_only: bool,
}

impl Slots {
    fn new(limits: Limits) -> Self {
        Slots {
            full: Arc::new(Semaphore::new(limits.max_connections)),
            probe: Arc::new(Semaphore::new(limits.reserve)),
            limits,
        }
    }

    fn take(&self) -> Option<Slot> {
        match Arc::clone(&self.full).try_acquire_owned() {
            Ok(p) => Some(Slot {
                _permit: p,
                probe_only: false,
            }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Arc::clone(&self.probe)
                .try_acquire_owned()
                .ok()
                .map(|p| Slot {
                    _permit: p,
                    probe_only: true,
                }),
        }
    }

    /// Waits (at most `within`) until every connection has closed.
    async fn all_closed(&self, within: Duration) -> bool {
        // The limits are at most `config::MAX_MAX_CONNECTIONS` plus the reserve.
        let full = u32::try_from(self.limits.max_connections).unwrap_or(u32::MAX);
        let probe = u32::try_from(self.limits.reserve).unwrap_or(u32::MAX);
        tokio::time::timeout(within, async {
            let _a = self.full.acquire_many(full).await;
            let _b = self.probe.acquire_many(probe).await;
        })
        .await
        .is_ok()
    }
}

/// What every connection of one listener shares.
struct Conn {
    app: Router,
    tls: Option<TlsAcceptor>,
    header_read: Duration,
    request_body: Duration,
    stop: watch::Receiver<bool>,
}

impl Conn {
    async fn run(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, slot: Slot) {
        let probe_only = slot.probe_only;
        match &self.tls {
            None => self.http(TokioIo::new(stream), peer, probe_only).await,
            Some(acceptor) => {
                if let Some(tls) = crate::tls::handshake(acceptor, stream, peer).await {
                    self.http(TokioIo::new(tls), peer, probe_only).await;
                }
            }
        }
        drop(slot);
    }

    /// HTTP/1.1 on one connection until it closes.
    async fn http<I>(&self, io: I, peer: SocketAddr, probe_only: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read)
            .keep_alive(!probe_only);
        let started = Arc::new(Notify::new());
        let service = {
            let app = self.app.clone();
            let started = Arc::clone(&started);
            let deadline = self.request_body;
            hyper::service::service_fn(move |mut req: Request<Incoming>| {
                started.notify_one();
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut app = app.clone();
                async move {
                    if probe_only && !PROBES.contains(&req.uri().path()) {
                        return Ok(busy());
                    }
                    app.call(req.map(|b| Body::new(DeadlineBody::new(deadline, b))))
                        .await
                }
            })
        };
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        tokio::select! {
            r = conn.as_mut() => return closed(r, peer),
            _ = stop.wait_for(|s| *s) => {}
        }
        // Stopping. A connection that has not sent a request yet was accepted for one:
        // let it send it (bounded by the header-read timeout); then finish the request in
        // flight and close.
        tokio::select! {
            r = conn.as_mut() => return closed(r, peer),
            () = started.notified() => {}
        }
        conn.as_mut().graceful_shutdown();
        closed(conn.await, peer);
    }
}

/// Logs how a connection ended (slow clients at debug level: they are not news).
fn closed(result: Result<(), hyper::Error>, peer: SocketAddr) {
    if let Err(e) = result {
        if e.is_timeout() {
            tracing::debug!(peer = %peer, "connection closed: request head not received in time");
        } else {
            tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
        }
    }
}

/// The answer on a reserve connection to anything but a health probe: 503
/// `temporarily_unavailable` (RFC 6749 section 4.1.2.1), retry in a second.
fn busy() -> Response<Body> {
    let body =
        r#"{"error":"temporarily_unavailable","error_description":"too many open connections"}"#;
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    crate::http::no_store(h);
    r
}
