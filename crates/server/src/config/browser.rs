//! The browser section: what browsers are told and allowed (CORS origins, HSTS) and how
//! long a browser sign-in session lasts.

use std::time::Duration;

use super::serving::is_loopback_host;
use super::{DAY, FileConfig, Problems, invalid};
use crate::Error;

/// What browsers get: for `http::cors`, the HSTS header `server` adds and
/// `http::browser` (the sign-in session).
#[derive(Debug, Clone)]
pub struct BrowserConfig {
    /// Origins allowed by CORS on the browser-facing endpoints.
    pub cors_allowed_origins: Vec<String>,
    /// `Strict-Transport-Security` max-age (zero: no header).
    pub hsts_max_age: Duration,
    /// Browser sign-in session lifetime.
    pub session_ttl: Duration,
}

impl BrowserConfig {
    /// The browser keys of `f`.
    pub(super) fn resolve(f: &FileConfig, p: &mut Problems) -> Self {
        BrowserConfig {
            cors_allowed_origins: f
                .cors_allowed_origins
                .iter()
                .flatten()
                .filter_map(|origin| p.take(validate_origin(origin)))
                .collect(),
            hsts_max_age: p.secs(
                "hsts_max_age_secs",
                f.hsts_max_age_secs,
                365 * DAY,
                0,
                2 * 365 * DAY,
            ),
            session_ttl: p.secs(
                "session_ttl_secs",
                f.session_ttl_secs,
                8 * 3600,
                60,
                30 * DAY,
            ),
        }
    }
}

/// A CORS origin: `scheme://host[:port]`, https unless the host is loopback, no path.
fn validate_origin(s: &str) -> Result<String, Error> {
    let rule = "each entry must be an origin like \"https://app.example.com\" (scheme, host, optional port; no path; http only on loopback)";
    let Some((scheme, authority)) = s.split_once("://") else {
        return Err(invalid("cors_allowed_origins", format!("{s:?}"), rule));
    };
    let host_ok = !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', '*'])
        && !authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    let loopback = is_loopback_host(authority);
    let scheme_ok = scheme == "https" || (scheme == "http" && loopback);
    if host_ok && scheme_ok {
        Ok(s.to_owned())
    } else {
        Err(invalid("cors_allowed_origins", format!("{s:?}"), rule))
    }
}
