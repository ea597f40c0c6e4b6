//! Metrics: names and the process-wide Prometheus recorder (`GET /metrics` is
//! `http::scrape`).
//!
//! Code records through the `metrics` facade (as `tessera-guard` does), and this module
//! installs `metrics-exporter-prometheus` as the recorder once per process and renders
//! its text format (version 0.0.4) at scrape time, adding gauges computed then (key ages).
//! Labels are bounded: matched route templates, never raw paths; OAuth error codes and
//! grant names from fixed lists; never a user, client or token.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::GrantType;

/// Requests by `route` (matched template or `unmatched`), `method` and `status`.
pub const HTTP_REQUESTS: &str = "tessera_http_requests_total";
/// Request latency in seconds by `route` and `method` (histogram).
pub const HTTP_DURATION: &str = "tessera_http_request_duration_seconds";
/// Access tokens issued by `grant` (grant type).
pub const TOKENS_ISSUED: &str = "tessera_tokens_issued_total";
/// OAuth error responses by `error` code (the server's refusals by reason).
pub const OAUTH_ERRORS: &str = "tessera_oauth_errors_total";
/// Refresh tokens presented again after rotation (the family is revoked).
pub const REFRESH_REUSE: &str = "tessera_refresh_reuse_detected_total";
/// Failed password logins (password grant and sign-in form), all with `reason` =
/// `bad_credentials`: unknown user, wrong password and disabled user look the same here
/// (a separate count per reason would tell which names exist); the audit log keeps the
/// distinction. A wrong or replayed second-factor code (asked only after a correct
/// password) counts with `reason` = `second_factor`.
pub const LOGIN_FAILURES: &str = "tessera_login_failures_total";
/// Logins refused with 429 because the account (from that network) or the network is
/// throttled (password grant and sign-in form).
pub const THROTTLED: &str = "tessera_throttled_requests_total";
/// Logins answered 503 at once because the password-check queue had no place their
/// source may take (the queue is shared out per network and prefix).
pub const LOGIN_BUSY: &str = "tessera_login_busy_total";
/// Storage backend failures seen by requests (answered 503) or readiness checks.
pub const STORE_ERRORS: &str = "tessera_store_errors_total";
/// Age in seconds of each signing key by `kid`, `alg` and `state` (computed at scrape).
pub const KEY_AGE: &str = "tessera_signing_key_age_seconds";
/// Connections closed at once, by `reason`: `max_connections` (it and the probe reserve
/// were full) or `max_connections_per_ip` (their source held its share).
pub const CONNECTIONS_REFUSED: &str = "tessera_connections_refused_total";
/// Requests other than the health probes answered 503 on a probe-reserve connection.
pub const RESERVE_BUSY: &str = "tessera_reserve_busy_total";
/// Push subscriptions to the revocation feed open now on this node (gauge).
pub const FEED_SUBSCRIPTIONS: &str = "tessera_feed_subscriptions";

/// Latency buckets, seconds: sub-millisecond reads up to slow password hashing.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder (once; later
/// calls return the same handle). `None` when another recorder was installed first, in
/// which case `/metrics` shows only the gauges computed at scrape time.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match built {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics is partial");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route, method and status.");
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by route and method."
    );
    describe_counter!(TOKENS_ISSUED, "Access tokens issued by grant type.");
    describe_counter!(OAUTH_ERRORS, "OAuth error responses by error code.");
    describe_counter!(REFRESH_REUSE, "Refresh token reuse detections.");
    describe_counter!(
        LOGIN_FAILURES,
        "Failed password logins (one reason for every cause)."
    );
    describe_counter!(THROTTLED, "Logins refused because of login throttling.");
    describe_counter!(
        LOGIN_BUSY,
        "Logins refused at once because the password-check queue had no place for their source."
    );
    describe_counter!(STORE_ERRORS, "Storage backend failures.");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed at once, by reason (max_connections or max_connections_per_ip)."
    );
    describe_counter!(
        RESERVE_BUSY,
        "Requests answered 503 on a probe-reserve connection (max_connections reached)."
    );
    metrics::describe_gauge!(
        FEED_SUBSCRIPTIONS,
        "Push subscriptions to the revocation feed open now."
    );
}

/// The handles of one (route, method, status): the request counter and the latency
/// histogram (the histogram's labels leave the status out).
#[derive(Clone)]
struct RequestHandles {
    requests: Counter,
    duration: Histogram,
}

/// Handles by route, then (method, status). Building the labelled key and looking it up
/// in the recorder's registry on every request cost a sixth of an unauthenticated
/// request (0.5 us of 3.2 us in `cargo bench -p tessera-server --bench endpoints`); the
/// set is bounded by the router's routes, [`method_label`] and the status codes.
static REQUEST_HANDLES: LazyLock<RwLock<HashMap<Box<str>, ByMethodAndStatus>>> =
    LazyLock::new(RwLock::default);

/// A route's handles by (method label, status code).
type ByMethodAndStatus = HashMap<(&'static str, u16), RequestHandles>;

/// Counts one answered request of `route` (a matched template or `unmatched`) and
/// records its latency.
pub(crate) fn record_request(route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
    let key = (method_label(method), status.as_u16());
    let cached = REQUEST_HANDLES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(route)
        .and_then(|by| by.get(&key))
        .cloned();
    let handles = cached.unwrap_or_else(|| {
        let handles = RequestHandles {
            requests: metrics::counter!(HTTP_REQUESTS, "route" => route.to_owned(), "method" => key.0, "status" => key.1.to_string()),
            duration: metrics::histogram!(HTTP_DURATION, "route" => route.to_owned(), "method" => key.0),
        };
        REQUEST_HANDLES
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(route.into())
            .or_default()
            .insert(key, handles.clone());
        handles
    });
    handles.requests.increment(1);
    handles.duration.record(elapsed.as_secs_f64());
}

/// Counts one access token issued by `grant`, through a handle made once per grant type
/// (the labelled registry lookup cost about 0.3 us per token in the endpoints bench).
pub(crate) fn token_issued(grant: GrantType) {
    static BY_GRANT: LazyLock<Vec<(GrantType, Counter)>> = LazyLock::new(|| {
        GrantType::ALL
            .iter()
            .map(|&g| (g, metrics::counter!(TOKENS_ISSUED, "grant" => g.as_str())))
            .collect()
    });
    if let Some((_, counter)) = BY_GRANT.iter().find(|(g, _)| *g == grant) {
        counter.increment(1);
    }
}

/// The `method` label: the standard methods by name, any other as `other` (a client can
/// send any token as a method, and each would otherwise be a new series).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Periodic upkeep of the recorder (drains histogram samples between scrapes).
pub(crate) async fn upkeep() {
    let Some(handle) = install() else { return };
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(
            method_label(&Method::from_bytes(b"FOO123").unwrap()),
            "other"
        );
    }

    /// Requests are counted through the cached handles: the same series grows, and a new
    /// status or route gets its own.
    #[test]
    fn requests_are_counted_per_route_method_and_status() {
        let handle = install().expect("the recorder of this test process");
        let ms = Duration::from_millis(3);
        for _ in 0..3 {
            record_request("/test-counted", &Method::GET, StatusCode::OK, ms);
        }
        record_request("/test-counted", &Method::GET, StatusCode::NOT_FOUND, ms);
        record_request(
            "/test-counted",
            &Method::from_bytes(b"BREW").unwrap(),
            StatusCode::OK,
            ms,
        );
        let text = handle.render();
        let count = |labels: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{HTTP_REQUESTS}{{{labels}}}")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(
            count(r#"route="/test-counted",method="GET",status="200""#).as_deref(),
            Some("3"),
            "{text}"
        );
        assert_eq!(
            count(r#"route="/test-counted",method="GET",status="404""#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            count(r#"route="/test-counted",method="other",status="200""#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r#"{HTTP_DURATION}_count{{route="/test-counted",method="GET"}} 4"#
            )),
            "{text}"
        );
    }
}
