//! The one place an [`OAuthError`] becomes an HTTP response (RFC 6749 section 5.2).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::metrics as metrics_names;
use crate::oauth::OAuthError;

/// RFC 6749 section 5.2 error response.
// The served type is the documented type (`/openapi.json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OAuthErrorBody<'a> {
    /// Error code, e.g. `invalid_request`, `invalid_client`, `invalid_grant`.
    error: &'a str,
    /// Human-readable detail (never present on server errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

/// Realm of the `WWW-Authenticate: Basic` challenge.
pub(crate) const REALM: &str = "tessera";

/// The `DPoP-Nonce` response header (RFC 9449 section 8).
pub(crate) const DPOP_NONCE: header::HeaderName = header::HeaderName::from_static("dpop-nonce");

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        metrics::counter!(metrics_names::OAUTH_ERRORS, "error" => self.code()).increment(1);
        let status = match &self {
            OAuthError::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthError::TooManyRequests { .. }
            | OAuthError::RateLimited { .. }
            | OAuthError::TooManySubscriptions { .. } => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::Server(detail) => {
                tracing::error!(detail = %detail, "server error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            OAuthError::Unavailable(detail) => {
                metrics::counter!(metrics_names::STORE_ERRORS).increment(1);
                tracing::error!(detail = %detail, "store unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
            OAuthError::NoSigningKey { detail, .. } => {
                tracing::warn!(detail = %detail, "cannot sign");
                StatusCode::SERVICE_UNAVAILABLE
            }
            OAuthError::Busy { .. }
            | OAuthError::ProofsBusy { .. }
            | OAuthError::Draining
            | OAuthError::SubscriptionsFull => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = OAuthErrorBody {
            error: self.code(),
            error_description: self.description(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        match self {
            // RFC 9110 section 11.6.1: every 401 carries a challenge, whichever
            // method the client tried (client_secret_post included).
            OAuthError::InvalidClient => {
                if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            OAuthError::TooManyRequests { retry_after }
            | OAuthError::RateLimited { retry_after }
            | OAuthError::NoSigningKey { retry_after, .. }
            | OAuthError::Busy { retry_after }
            | OAuthError::ProofsBusy { retry_after }
            | OAuthError::TooManySubscriptions { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            OAuthError::Unavailable(_) | OAuthError::Draining => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            OAuthError::SubscriptionsFull => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            OAuthError::UseDpopNonce { nonce } => {
                if let Ok(v) = HeaderValue::from_str(&nonce) {
                    headers.insert(DPOP_NONCE, v);
                }
            }
            _ => {}
        }
        response
    }
}

/// Set when a request's body did not arrive within `request_timeout_secs` (a request
/// extension, shared with the body that notices).
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyTimedOut(Arc<AtomicBool>);

/// A request body that sets [`BodyTimedOut`] when its deadline passes.
pub(crate) struct Flagged<B> {
    inner: Pin<Box<B>>,
    late: BodyTimedOut,
}

impl<B> Flagged<B> {
    pub(crate) fn new(inner: B, late: BodyTimedOut) -> Self {
        Flagged {
            inner: Box::pin(inner),
            late,
        }
    }
}

impl<B> hyper::body::Body for Flagged<B>
where
    B: hyper::body::Body<Error = tower::BoxError>,
{
    type Data = B::Data;
    type Error = tower::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<B::Data>, Self::Error>>> {
        let r = self.inner.as_mut().poll_frame(cx);
        if let std::task::Poll::Ready(Some(Err(e))) = &r
            && e.is::<tower_http::timeout::TimeoutError>()
        {
            self.late.0.store(true, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware of the OAuth endpoints: the framework's plain-text rejections of a request
/// (413 for a body over the limit, 400 for a body that could not be read, 408 for one not
/// received within `request_timeout_secs`) become the OAuth JSON error
/// `invalid_request`, keeping their status.
pub(crate) async fn json_rejections(req: Request, next: Next) -> Response {
    let late = req.extensions().get::<BodyTimedOut>().cloned();
    let response = next.run(req).await;
    let mut status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    let description = match status {
        _ if !plain => return response,
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("request body larger than {} bytes", crate::http::MAX_BODY)
        }
        StatusCode::BAD_REQUEST if late.is_some_and(|l| l.0.load(Ordering::Relaxed)) => {
            status = StatusCode::REQUEST_TIMEOUT;
            "request body not received in time".to_owned()
        }
        StatusCode::BAD_REQUEST => "request body could not be read".to_owned(),
        _ => return response,
    };
    let mut json = OAuthError::invalid_request(description).into_response();
    *json.status_mut() = status;
    json
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 section 5.1).
pub(crate) fn no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_always_challenges() {
        let r = OAuthError::InvalidClient.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            format!("Basic realm=\"{REALM}\"").as_str()
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let r = OAuthError::Server("db on fire".into()).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_full_password_queue_is_503_with_retry_after_not_a_store_error() {
        let r = OAuthError::Busy { retry_after: 1 }.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn an_unreachable_store_is_503_with_retry_after_and_no_detail() {
        let e: OAuthError = crate::store::StoreError::Backend("pool timed out".into()).into();
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let e: OAuthError = crate::store::StoreError::Conflict("record").into();
        assert_eq!(
            e.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
