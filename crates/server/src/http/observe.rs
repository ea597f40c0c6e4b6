//! Per-request observation: a request id (`x-request-id`, propagated when well-formed,
//! otherwise generated, and echoed on the response), a span carrying it, one log line per
//! request (method, matched route, status, latency, and the client, grant, `sid` and `jti`
//! the handler recorded) and the request metrics. Headers, query strings and bodies are
//! never logged: they may hold credentials.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ids::random_bytes;

/// The request id header.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Route label of requests no route matched (bounded, unlike the raw path).
const UNMATCHED: &str = "unmatched";

/// The middleware (`axum::middleware::from_fn`).
pub(crate) async fn observe(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(req.headers().get(REQUEST_ID));
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID, v);
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |p| p.as_str())
        .to_owned();
    let method = req.method().clone();
    // Handlers record the client, the grant and the issued token's `sid` and `jti` here
    // (`Span::current().record`), so the one `request` line at the end names them all.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = %route,
        client_id = tracing::field::Empty,
        grant_type = tracing::field::Empty,
        sid = tracing::field::Empty,
        jti = tracing::field::Empty,
    );
    span.in_scope(|| tracing::debug!("request started"));
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    crate::metrics::record_request(&route, &method, response.status(), elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// The caller's id when it is 1 to 64 characters of `[A-Za-z0-9._-]` (safe to log and
/// echo), otherwise a fresh random one.
fn request_id(given: Option<&HeaderValue>) -> String {
    let ok = |s: &str| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    match given.and_then(|v| v.to_str().ok()) {
        Some(s) if ok(s) => s.to_owned(),
        _ => fresh_request_id(),
    }
}

/// A new request id: `r_` and base64url of 16 bytes, a random per-process prefix of 8
/// bytes and a counter of 8. Unique within the process, and across processes and replicas
/// with overwhelming probability; a request id is a correlation handle, not a secret, so
/// one random draw at start replaces one per request (it showed in the floor's profile).
fn fresh_request_id() -> String {
    static PREFIX: LazyLock<[u8; 8]> = LazyLock::new(|| random_bytes().unwrap_or_default());
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&*PREFIX);
    bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let mut out = String::with_capacity(24);
    out.push_str("r_");
    URL_SAFE_NO_PAD.encode_string(bytes, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_propagated_only_when_well_formed() {
        let v = HeaderValue::from_static("abc-123_x.y");
        assert_eq!(request_id(Some(&v)), "abc-123_x.y");
        for bad in ["", "has space", "quote\"", &"x".repeat(65)] {
            let v = HeaderValue::from_str(bad).unwrap();
            let id = request_id(Some(&v));
            assert!(id.starts_with("r_") && id.len() == 24, "{bad:?} -> {id}");
        }
        assert_ne!(request_id(None), request_id(None));
    }
}
