//! `GET /metrics`: the recorder's text exposition (format 0.0.4) plus the gauges
//! computed at scrape time (signing key ages, read from the store).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::http::AppState;
use crate::metrics::{KEY_AGE, STORE_ERRORS, install};

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"))
)]
/// `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
pub(crate) async fn scrape(State(state): State<Arc<AppState>>) -> Response {
    let mut body = install().map(PrometheusHandle::render).unwrap_or_default();
    key_ages(&state, &mut body).await;
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Appends one gauge sample per signing key in the store, read now (so deleted keys
/// disappear), or nothing when the store is down (counted as a store error).
async fn key_ages(state: &AppState, out: &mut String) {
    let keys = match state.store.keys().await {
        Ok(keys) => keys,
        Err(e) => {
            metrics::counter!(STORE_ERRORS).increment(1);
            tracing::warn!(error = %e, "cannot read signing keys for metrics");
            return;
        }
    };
    let now = state.clock.now().secs();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "# HELP {KEY_AGE} Age of each signing key in seconds.\n# TYPE {KEY_AGE} gauge\n"
    ));
    for k in keys {
        let age = (now - k.created_at.secs()).max(0);
        out.push_str(&format!(
            "{KEY_AGE}{{kid=\"{}\",alg=\"{}\",state=\"{}\"}} {age}\n",
            label(&k.kid),
            label(&k.alg),
            k.state.as_str()
        ));
    }
}

/// Escapes a label value (text format: backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("kid-1"), "kid-1");
    }
}
