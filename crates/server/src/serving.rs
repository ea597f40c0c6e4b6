//! Serving connections with hyper and a timer: a header-read timeout (which also bounds an
//! idle keep-alive connection), a bound on how long a response write may stall, a cap on
//! open connections (and on those of one source and of one prefix) with a small reserve that may only ask
//! the health probes, optional TLS with a bounded handshake, and a stop that serves what
//! the kernel already accepted before the socket closes.

mod sources;
mod stall;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::Service;
use tower_http::timeout::DeadlineBody;

use sources::{Held, Over, Sources};
use stall::WriteStall;

/// Connections admitted beyond `max_connections` for `/healthz` and `/readyz` only.
pub(crate) const PROBE_RESERVE: usize = 8;
/// The paths a reserve connection may ask for.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];
/// Pause after a failed `accept` (out of file descriptors and the like), so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Header-read timeout of a reserve connection: a probe sends its head at once, and a
/// partial head must not keep a reserve slot for the full `header_read_timeout_secs`.
const RESERVE_HEADER_READ: Duration = Duration::from_secs(1);
/// Requests served on one keep-alive connection; the last one is answered with
/// `Connection: close`, so a connection cannot hold its slot by pipelining for ever.
const MAX_REQUESTS_PER_CONNECTION: usize = 100;
/// A connection's longest life: the first answer after it says `Connection: close`, so a
/// client reading its pipelined answers just fast enough still gives its slot back.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(600);
/// At most one WARN per this interval when connections are refused or answered 503.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// File descriptors kept for everything but connections: the store's pool, the
/// listeners, the lock and key files, logs.
const FD_MARGIN: u64 = 64;

/// Where the server is in its life: serving; draining (the lame-duck phase: every
/// answer says `Connection: close`, so no keep-alive connection is left idle when the
/// listener stops); stopped (no more connections accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Serving,
    Draining,
    Stopped,
}

/// Bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest wait for a request head (also between keep-alive requests).
    pub header_read: Duration,
    /// Longest time to receive a request body once its head arrived, and longest a
    /// response write may wait for the client to read.
    pub request_body: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Further connections that may only ask the health probes.
    pub reserve: usize,
    /// Connections one source (IPv4 address, IPv6 /64) may hold at once; one prefix
    /// (IPv4 /24, IPv6 /48) four times as many.
    pub per_source: usize,
}

/// A bound listener and what it serves.
pub(crate) struct Endpoint {
    pub listener: TcpListener,
    pub app: Router,
    pub tls: Option<TlsAcceptor>,
    pub limits: Limits,
    /// Peers not limited per source (the trusted proxies).
    pub exempt: Vec<IpNet>,
}

/// Serves `endpoint` until `stop` turns true; then serves the connections the kernel had
/// already accepted, closes the socket, lets every connection finish the request it has
/// (a connection that has not sent one yet may send one) and returns when all are closed
/// or `drain` has passed.
pub(crate) async fn serve(endpoint: Endpoint, mut stop: watch::Receiver<Phase>, drain: Duration) {
    let Endpoint {
        listener,
        app,
        tls,
        limits,
        exempt,
    } = endpoint;
    let slots = Slots::new(limits, exempt);
    let ctx = Arc::new(Conn {
        app,
        tls,
        header_read: limits.header_read,
        request_body: limits.request_body,
        stop: stop.clone(),
        busy_warning: Warning::default(),
    });
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|p| *p == Phase::Stopped) => break,
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

/// Starts serving `stream` if its source is under its cap and a slot is free; otherwise
/// closes it at once.
fn admit(slots: &Slots, ctx: &Arc<Conn>, stream: TcpStream, peer: SocketAddr) {
    let slot = match slots.take(peer) {
        Ok(slot) => slot,
        Err(reason) => {
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => reason.label())
                .increment(1);
            tracing::debug!(peer = %peer, reason = reason.label(), "connection refused");
            if slots.refused_warning.due() {
                tracing::warn!(
                    peer = %peer,
                    reason = reason.label(),
                    "refusing connections: {} (logged at most once a minute; see tessera_connections_refused_total)",
                    reason.describe()
                );
            }
            return;
        }
    };
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move { ctx.run(stream, peer, slot).await });
}

/// The connection slots: `max_connections` full ones and the probe reserve, and the
/// count by source. A connection holds its permit until it closes.
struct Slots {
    full: Arc<Semaphore>,
    probe: Arc<Semaphore>,
    sources: Sources,
    limits: Limits,
    refused_warning: Warning,
}

/// An admitted connection's place, given back when it closes.
struct Slot {
    _permit: OwnedSemaphorePermit,
    _source: Held,
    /// A reserve slot: the health probes only.
    probe_only: bool,
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// `max_connections` and the probe reserve are all taken.
    Full,
    /// Its source already holds `max_connections_per_ip`.
    PerSource,
    /// Its prefix (IPv4 /24, IPv6 /48) already holds four times `max_connections_per_ip`.
    PerPrefix,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::Full => "max_connections",
            Refused::PerSource | Refused::PerPrefix => "max_connections_per_ip",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Refused::Full => "max_connections and the probe reserve are all in use",
            Refused::PerSource => {
                "a source holds max_connections_per_ip connections (if a proxy is in front, set trusted_proxies)"
            }
            Refused::PerPrefix => {
                "a /24 or /48 prefix holds 4 x max_connections_per_ip connections (if a proxy is in front, set trusted_proxies)"
            }
        }
    }
}

impl Slots {
    fn new(limits: Limits, exempt: Vec<IpNet>) -> Self {
        Slots {
            full: Arc::new(Semaphore::new(limits.max_connections)),
            probe: Arc::new(Semaphore::new(limits.reserve)),
            sources: Sources::new(limits.per_source, exempt),
            limits,
            refused_warning: Warning::default(),
        }
    }

    fn take(&self, peer: SocketAddr) -> Result<Slot, Refused> {
        let source = self.sources.take(peer.ip()).map_err(|over| match over {
            Over::Source => Refused::PerSource,
            Over::Prefix => Refused::PerPrefix,
        })?;
        match Arc::clone(&self.full).try_acquire_owned() {
            Ok(p) => Ok(Slot {
                _permit: p,
                _source: source,
                probe_only: false,
            }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Arc::clone(&self.probe)
                .try_acquire_owned()
                .map(|p| Slot {
                    _permit: p,
                    _source: source,
                    probe_only: true,
                })
                .map_err(|_| Refused::Full),
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
    stop: watch::Receiver<Phase>,
    /// Rate-limits the WARN about reserve connections answered 503.
    busy_warning: Warning,
}

impl Conn {
    async fn run(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, slot: Slot) {
        let probe_only = slot.probe_only;
        // A client that never reads what it asked for must not hold its slot: writes
        // stalled for as long as a body may take to arrive close the connection.
        let stream = WriteStall::new(stream, self.request_body);
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
    async fn http<I>(self: &Arc<Self>, io: I, peer: SocketAddr, probe_only: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let header_read = if probe_only {
            self.header_read.min(RESERVE_HEADER_READ)
        } else {
            self.header_read
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read)
            .keep_alive(!probe_only);
        let started = Arc::new(Notify::new());
        let served = Arc::new(AtomicUsize::new(0));
        let opened = Instant::now();
        let service = {
            let ctx = Arc::clone(self);
            let started = Arc::clone(&started);
            hyper::service::service_fn(move |mut req: Request<Incoming>| {
                started.notify_one();
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut app = ctx.app.clone();
                let ctx = Arc::clone(&ctx);
                let nth = served.fetch_add(1, Ordering::Relaxed) + 1;
                async move {
                    if probe_only && !PROBES.contains(&req.uri().path()) {
                        ctx.busy(peer);
                        return Ok::<_, std::convert::Infallible>(busy());
                    }
                    let deadline = ctx.request_body;
                    let late = crate::http::BodyTimedOut::default();
                    req.extensions_mut().insert(late.clone());
                    let mut response = app
                        .call(req.map(|b| {
                            Body::new(crate::http::Flagged::new(
                                DeadlineBody::new(deadline, b),
                                late,
                            ))
                        }))
                        .await?;
                    // Draining, served enough, or open long enough: this answer ends the
                    // connection.
                    if *ctx.stop.borrow() != Phase::Serving
                        || nth >= MAX_REQUESTS_PER_CONNECTION
                        || opened.elapsed() >= MAX_CONNECTION_AGE
                    {
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok(response)
                }
            })
        };
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        tokio::select! {
            r = conn.as_mut() => return closed(r, peer),
            _ = stop.wait_for(|p| *p == Phase::Stopped) => {}
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

impl Conn {
    /// Counts a reserve connection's 503 and warns (rate-limited).
    fn busy(&self, peer: SocketAddr) {
        metrics::counter!(crate::metrics::RESERVE_BUSY).increment(1);
        if self.busy_warning.due() {
            tracing::warn!(
                peer = %peer,
                "max_connections reached: answering 503 to all but /healthz and /readyz (logged at most once a minute; see tessera_reserve_busy_total)"
            );
        }
    }
}

/// A WARN logged at most once per [`WARN_EVERY`].
#[derive(Default)]
struct Warning {
    last: Mutex<Option<Instant>>,
}

impl Warning {
    /// Whether to log now (and if so, not again for [`WARN_EVERY`]).
    fn due(&self) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match *last {
            Some(at) if now.duration_since(at) < WARN_EVERY => false,
            _ => {
                *last = Some(now);
                true
            }
        }
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

/// Raises the soft limit on open files to the hard limit and returns the result (`None`:
/// unlimited or unknown).
pub(crate) fn raise_open_files() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = raised,
            Err(e) => tracing::debug!(error = %e, "cannot raise the open-file limit"),
        }
    }
    limit.current
}

/// The `max_connections` that fits in `open_files` descriptors besides the probe reserve,
/// `other` connections (the metrics listener's) and [`FD_MARGIN`]; at least 1.
pub(crate) fn fitting_connections(
    max_connections: usize,
    reserve: usize,
    other: usize,
    open_files: Option<u64>,
) -> usize {
    let Some(files) = open_files else {
        return max_connections;
    };
    let taken = FD_MARGIN
        .saturating_add(reserve as u64)
        .saturating_add(other as u64);
    let room = usize::try_from(files.saturating_sub(taken)).unwrap_or(usize::MAX);
    max_connections.min(room).max(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_is_clamped_to_the_open_file_limit() {
        // Unlimited or unknown: as configured.
        assert_eq!(fitting_connections(512, 8, 16, None), 512);
        // Room enough: as configured.
        assert_eq!(fitting_connections(512, 8, 0, Some(1_048_576)), 512);
        assert_eq!(fitting_connections(512, 8, 0, Some(512 + 8 + 64)), 512);
        // 1024 files: less the reserve, the metrics listener and the margin.
        assert_eq!(
            fitting_connections(4096, 8, 16, Some(1024)),
            1024 - 8 - 16 - 64
        );
        assert_eq!(fitting_connections(512, 8, 0, Some(512 + 8 + 63)), 511);
        // Hardly any files: still one connection (and the start-up warns).
        assert_eq!(fitting_connections(512, 8, 16, Some(10)), 1);
        assert_eq!(fitting_connections(512, 8, 16, Some(0)), 1);
    }

    #[test]
    fn raising_the_open_file_limit_reaches_the_hard_limit() {
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        assert_eq!(raise_open_files(), hard);
    }
}
