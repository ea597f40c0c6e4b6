//! A bounded cache of checked proof headers, keyed by the header segment's exact bytes:
//! a client signs its proofs with one key and so sends one header, whose decode, parse,
//! key build and thumbprint the cache saves on every proof after the first. A header is
//! entered only once a proof carrying it verified, and a proof found here is still
//! verified with the cached key (a pure function of those bytes): a hit changes the
//! cost, never the answer.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::ProofHeader;

/// Checked proof headers for [`super::verify_proof_cached`], at most `capacity` of
/// them. Share one per verifier (a guard, a token endpoint); it is `Send + Sync`.
pub struct ProofKeyCache {
    headers: RwLock<HashMap<Box<str>, Arc<ProofHeader>>>,
    capacity: usize,
}

impl ProofKeyCache {
    /// Default capacity: one entry per client key seen recently. An entry holds a header
    /// of at most [`super::MAX_PROOF_LEN`] bytes (about 200 for an EdDSA or ES256 key).
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A cache of at most `capacity` headers; 0 caches nothing.
    pub fn new(capacity: usize) -> Self {
        ProofKeyCache {
            headers: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The most headers it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many headers are cached.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when no header is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The header cached for these exact segment bytes.
    pub(super) fn get(&self, segment: &str) -> Option<Arc<ProofHeader>> {
        if self.capacity == 0 {
            return None;
        }
        self.read().get(segment).cloned()
    }

    /// Caches `header`, read from `segment` by a proof that verified. When full, an
    /// arbitrary entry (the first in the map's randomly seeded order) makes room.
    pub(super) fn insert(&self, segment: &str, header: Arc<ProofHeader>) {
        if self.capacity == 0 {
            return;
        }
        let mut headers = self.headers.write().unwrap_or_else(PoisonError::into_inner);
        if headers.len() >= self.capacity && !headers.contains_key(segment) {
            let victim = headers.keys().next().cloned();
            if let Some(victim) = victim {
                headers.remove(&victim);
            }
        }
        headers.insert(segment.into(), header);
    }

    // No code panics while holding the lock; a poisoned map is still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Box<str>, Arc<ProofHeader>>> {
        self.headers.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ProofKeyCache {
    fn default() -> Self {
        ProofKeyCache::new(ProofKeyCache::DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for ProofKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKeyCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}
