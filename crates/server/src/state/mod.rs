//! The domain's shared state, [`Core`]: issuer, configuration, store, keys, clock,
//! password pool, the keys derived from the master key, and what this node remembers in
//! memory (unconfirmed rotations, login limits, revocation rate, DPoP proofs seen).
//! Grants, tokens, OIDC, login and throttling take `&Core`; the HTTP layer wraps it in
//! its `AppState`.

pub(crate) mod dpop;
mod login_limits;
#[cfg(test)]
pub(crate) mod testing;
mod unconfirmed;

pub(crate) use login_limits::Limits as LoginLimits;
#[cfg(test)]
pub(crate) use unconfirmed::REMEMBER_SECS;
pub(crate) use unconfirmed::UnconfirmedRotations;

use std::sync::Arc;

use aws_lc_rs::hmac;

use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::feed::hub::Hub;
use crate::keys::Keys;
use crate::password::Passwords;
use crate::rate_limit::ClientRateLimit;
use crate::secrets::Sealer;
use crate::store::{Revoked, Store};

/// Everything the domain needs, built once at start-up and shared behind an `Arc`.
#[derive(Debug)]
pub struct Core {
    pub(crate) issuer: String,
    pub(crate) config: ServerConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: Arc<Keys>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) passwords: Passwords,
    pub(crate) refresh_key: hmac::Key,
    /// Keys the hash that stands for a login name in throttle counters and in the audit
    /// record of a failed login for no existing account; derived from `refresh_key`
    /// with its own label.
    pub(crate) login_name_key: hmac::Key,
    /// Seals second-factor secrets (TOTP); derived from `refresh_key` with its own label.
    pub(crate) factor_sealer: Sealer,
    /// Refresh tokens whose rotation this server could not confirm (hashes only).
    pub(crate) unconfirmed: UnconfirmedRotations,
    /// Revocations that write, per client (`revoke_requests_per_minute`).
    pub(crate) revoke_limit: ClientRateLimit,
    /// This server's in-memory login limits (targeted accounts, the busy warning).
    pub(crate) login_limits: LoginLimits,
    /// DPoP server nonces, keyed by a key derived from `refresh_key` and the issuer (the
    /// same on every replica of this deployment, another on any other).
    pub(crate) dpop_nonces: dpop::Nonces,
    /// DPoP proofs this node accepted, until their `iat` leaves the window.
    pub(crate) dpop_replay: tessera_token::dpop::ReplayCache,
    /// The revocation feed's fan-out to this node's push subscribers.
    pub(crate) feed_hub: Hub,
}

impl Core {
    /// Assembles the core.
    pub fn new(
        issuer: String,
        config: ServerConfig,
        store: Arc<dyn Store>,
        keys: Arc<Keys>,
        clock: Arc<dyn Clock>,
        passwords: Passwords,
        refresh_key: hmac::Key,
    ) -> Self {
        Core {
            login_name_key: derive(&refresh_key, b"tessera/v1/login-name"),
            factor_sealer: factor_sealer(&refresh_key),
            unconfirmed: UnconfirmedRotations::default(),
            revoke_limit: ClientRateLimit::per_minute(config.revocation.revoke_requests_per_minute),
            login_limits: LoginLimits::default(),
            dpop_nonces: dpop::Nonces::of_deployment(&refresh_key, &issuer),
            dpop_replay: dpop::replay_cache(),
            feed_hub: Hub::default(),
            issuer,
            config,
            store,
            keys,
            clock,
            passwords,
            refresh_key,
        }
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
            access_exp: now.saturating_add(self.config.tokens.access_token_ttl),
        }
    }

    /// `issuer` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Seconds a client is told to wait when no signing key is active for its
    /// algorithm: until the next key refresh.
    pub(crate) fn key_retry_after(&self) -> u64 {
        self.config.signing.key_refresh_interval.as_secs().max(1)
    }
}

/// The sealer of second-factor secrets.
fn factor_sealer(refresh_key: &hmac::Key) -> Sealer {
    match Sealer::derived(refresh_key, b"tessera/v1/factor-seal") {
        Ok(s) => s,
        // AES-256-GCM accepts every 32-byte key, and an HMAC-SHA256 tag is 32 bytes.
        Err(e) => unreachable!("a 32-byte AES-256-GCM key is always valid: {e}"),
    }
}

/// A key for one use, derived from `key` with its own `label`, so two uses never share
/// a key.
pub(crate) fn derive(key: &hmac::Key, label: &[u8]) -> hmac::Key {
    let derived = hmac::sign(key, label);
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}
