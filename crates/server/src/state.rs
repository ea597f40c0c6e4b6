//! The shared state every handler gets: configuration, store, keys, clock, password pool.

use std::sync::Arc;

use aws_lc_rs::hmac;

use crate::client_cache::ClientCache;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::keys::Keys;
use crate::password::Passwords;
use crate::store::{Revoked, Store};

/// Everything a request needs, built once at start-up and shared behind an `Arc`.
#[derive(Debug)]
pub struct AppState {
    pub(crate) issuer: String,
    pub(crate) config: ServerConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: Arc<Keys>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) passwords: Passwords,
    pub(crate) refresh_key: hmac::Key,
    /// Client records read recently (`client_cache_ttl_secs`).
    pub(crate) clients: ClientCache,
    /// Signs the CSRF tokens of the sign-in forms; derived from `refresh_key` with its
    /// own label, so the two uses never share a key.
    pub(crate) csrf_key: hmac::Key,
    /// Keys the hash that stands for a login name in throttle counters and in the audit
    /// record of a failed login for no existing account; derived from `refresh_key`
    /// with its own label.
    pub(crate) login_name_key: hmac::Key,
    /// The guard of the userinfo endpoint.
    pub(crate) userinfo_guard: crate::http::UserinfoGuard,
    /// Refresh tokens whose rotation this server could not confirm (hashes only).
    pub(crate) unconfirmed: crate::grants::UnconfirmedRotations,
    /// Revocations that write, per client (`revoke_requests_per_minute`).
    pub(crate) revoke_limit: crate::rate_limit::ClientRateLimit,
    /// Set on SIGTERM: `/readyz` answers 503 (the lame-duck phase) while requests are
    /// still served.
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// The bearer token `/metrics` requires (`metrics_token_file`), if any.
    pub(crate) metrics_token: Option<crate::http::MetricsToken>,
    /// This server's in-memory login limits (targeted accounts, the busy warning).
    pub(crate) login_limits: crate::login::Limits,
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        issuer: String,
        config: ServerConfig,
        store: Arc<dyn Store>,
        keys: Arc<Keys>,
        clock: Arc<dyn Clock>,
        passwords: Passwords,
        refresh_key: hmac::Key,
    ) -> Self {
        let derived = hmac::sign(&refresh_key, b"tessera/v1/browser-csrf");
        let csrf_key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        let derived = hmac::sign(&refresh_key, b"tessera/v1/login-name");
        let login_name_key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        AppState {
            csrf_key,
            login_name_key,
            userinfo_guard: crate::http::UserinfoGuard::default(),
            unconfirmed: crate::grants::UnconfirmedRotations::default(),
            revoke_limit: crate::rate_limit::ClientRateLimit::per_minute(
                config.revoke_requests_per_minute,
            ),
            draining: std::sync::atomic::AtomicBool::new(false),
            metrics_token: None,
            login_limits: crate::login::Limits::default(),
            issuer,
            clients: ClientCache::new(config.client_cache_ttl),
            config,
            store,
            keys,
            clock,
            passwords,
            refresh_key,
        }
    }

    /// Requires `token` on `/metrics`.
    pub fn with_metrics_token(mut self, token: Option<crate::http::MetricsToken>) -> Self {
        self.metrics_token = token;
        self
    }

    /// Enters the lame-duck phase: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A revocation stamp for now: access tokens issued until now expire by `access_exp`.
    pub(crate) fn revoked_now(&self) -> Revoked {
        let now = self.clock.now();
        Revoked {
            now,
            access_exp: now.saturating_add(self.config.access_token_ttl),
        }
    }

    /// `issuer` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}
