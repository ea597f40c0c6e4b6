//! Serving connections with hyper and a timer: a header-read timeout (which also bounds an
//! idle keep-alive connection), a bound on how long a response write may stall, a cap on
//! open connections (and on those of one source and of one prefix) with a small reserve that may only ask
//! the health probes, optional TLS with a bounded handshake, and a stop that serves what
//! the kernel already accepted before the socket closes.

mod slots;
mod sources;
mod stall;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::Service;
use tower_http::timeout::DeadlineBody;

use slots::{Slot, Slots, Warning};
pub(crate) use slots::{fitting_connections, raise_open_files};
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
