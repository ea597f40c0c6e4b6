//! The verified-token cache: bounded, keyed by the SHA-256 of the token bytes, entries
//! never outliving the token's `exp` (nor the configured TTL).

use std::sync::Arc;

use quick_cache::sync::Cache;
use tessera_token::{TokenHash, UnixTime};

use crate::Identity;

#[derive(Clone)]
struct Entry {
    identity: Arc<Identity>,
    until: UnixTime,
}

/// A bounded map from token hash to the identity it verified as. The token itself is
/// never stored.
pub(crate) struct VerifiedCache {
    inner: Option<Cache<TokenHash, Entry>>,
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens; 0 turns caching off.
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedCache {
            inner: (capacity > 0).then(|| Cache::new(capacity)),
        }
    }

    /// True when caching is on.
    pub(crate) fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The identity cached for `hash`, if the entry is still valid at `now`.
    pub(crate) fn get(&self, hash: &TokenHash, now: UnixTime) -> Option<Arc<Identity>> {
        let cache = self.inner.as_ref()?;
        let entry = cache.get(hash)?;
        if now < entry.until {
            Some(entry.identity)
        } else {
            cache.remove(hash);
            None
        }
    }

    /// Remembers `identity` until `until` (already capped by the caller at `exp`).
    pub(crate) fn insert(&self, hash: TokenHash, identity: Arc<Identity>, until: UnixTime) {
        if let Some(cache) = &self.inner {
            cache.insert(hash, Entry { identity, until });
        }
    }

    /// Forgets `hash` (a revoked token).
    pub(crate) fn remove(&self, hash: &TokenHash) {
        if let Some(cache) = &self.inner {
            cache.remove(hash);
        }
    }

    /// Entries held (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, Cache::len)
    }
}
