//! [`AppState`], what every handler gets: the domain's [`Core`] plus what only HTTP
//! needs (client cache, CSRF key, the userinfo guard, readiness, the `/metrics` token).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_lc_rs::hmac;

use crate::client_cache::ClientCache;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::http::{MetricsToken, UserinfoGuard};
use crate::keys::Keys;
use crate::password::Passwords;
use crate::state::{Core, derive};
use crate::store::Store;

/// The handlers' state, built once at start-up and shared behind an `Arc`. It derefs to
/// [`Core`], so `state.config`, `state.store` and a grant's `&Core` argument read as
/// they would on the core itself.
#[derive(Debug)]
pub struct AppState {
    /// The domain's state (shared with spawned login checks, hence the `Arc`).
    pub(crate) core: Arc<Core>,
    /// Client records read recently (`client_cache_ttl_secs`).
    pub(crate) clients: ClientCache,
    /// Signs the CSRF tokens of the sign-in forms; derived from `refresh_key` with its
    /// own label, so the two uses never share a key.
    pub(crate) csrf_key: hmac::Key,
    /// The guard of the userinfo endpoint.
    pub(crate) userinfo_guard: UserinfoGuard,
    /// Set on SIGTERM: `/readyz` answers 503 (the lame-duck phase) while requests are
    /// still served.
    pub(crate) draining: AtomicBool,
    /// The bearer token `/metrics` requires (`metrics_token_file`), if any.
    pub(crate) metrics_token: Option<MetricsToken>,
}

impl AppState {
    /// Assembles the state around a new [`Core`].
    pub fn new(
        issuer: String,
        config: ServerConfig,
        store: Arc<dyn Store>,
        keys: Arc<Keys>,
        clock: Arc<dyn Clock>,
        passwords: Passwords,
        refresh_key: hmac::Key,
    ) -> Self {
        Self::around(Core::new(
            issuer,
            config,
            store,
            keys,
            clock,
            passwords,
            refresh_key,
        ))
    }

    /// Assembles the state around `core`.
    pub fn around(core: Core) -> Self {
        AppState {
            csrf_key: derive(&core.refresh_key, b"tessera/v1/browser-csrf"),
            clients: ClientCache::new(core.config.store.client_cache_ttl),
            userinfo_guard: UserinfoGuard::default(),
            draining: AtomicBool::new(false),
            metrics_token: None,
            core: Arc::new(core),
        }
    }

    /// Requires `token` on `/metrics`.
    pub fn with_metrics_token(mut self, token: Option<MetricsToken>) -> Self {
        self.metrics_token = token;
        self
    }

    /// Enters the lame-duck phase: `/readyz` answers 503 from now on, and the revocation
    /// feed's push subscriptions end (new ones are refused).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        // Push subscriptions end now, each with its final event, so none delays the stop.
        self.core.feed_hub.close();
    }
}

impl Deref for AppState {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}
