//! CORS for the browser-facing endpoints: only the configured origins, no credentials
//! (the token and revocation endpoints authenticate with form parameters or
//! `Authorization`, never cookies).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::BrowserConfig;

/// How long browsers may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The layer for `cors_allowed_origins`; `None` when the list is empty.
pub(super) fn layer(browser: &BrowserConfig) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = browser
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            // RFC 9449: a browser client sends `DPoP` and reads `DPoP-Nonce`.
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("dpop"),
            ])
            .expose_headers([
                header::WWW_AUTHENTICATE,
                header::RETRY_AFTER,
                super::error::DPOP_NONCE,
            ])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}
