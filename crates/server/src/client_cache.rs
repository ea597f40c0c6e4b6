//! Short-lived in-memory copies of client records, so authenticating a client at the token,
//! introspection and revocation endpoints does not read the store on every request.
//!
//! Operators change clients through the CLI, which writes the store directly (possibly on
//! another machine, for a PostgreSQL deployment), so no server is told. The bound is
//! therefore time: an entry is used for at most `client_cache_ttl_secs` after it was read
//! (default [`DEFAULT_CLIENT_CACHE_TTL_SECS`](crate::config::DEFAULT_CLIENT_CACHE_TTL_SECS); 0 turns the cache off). A removed client or a
//! rotated-away secret stops working on every replica within that bound. A secret that
//! does not match the cached record makes the caller re-read the store, so a *new* secret
//! works at once. Unknown clients are never cached.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_token::UnixTime;

use crate::store::ClientRecord;

/// Largest number of clients kept; past it the cache starts over (clients are few).
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    client: Arc<ClientRecord>,
    /// Used while the clock is before this.
    until: UnixTime,
}

/// Client records by `client_id`, each kept for at most the TTL.
pub(crate) struct ClientCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, Entry>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ClientCache {
    /// A cache keeping records for `ttl` (zero: never kept).
    pub(crate) fn new(ttl: Duration) -> Self {
        ClientCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The record of `id` if one was read less than the TTL before `now`.
    pub(crate) fn get(&self, id: &str, now: UnixTime) -> Option<Arc<ClientRecord>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(id)
            .filter(|e| now < e.until)
            .map(|e| Arc::clone(&e.client))
    }

    /// Remembers `client`, read from the store at `now`.
    pub(crate) fn put(&self, client: Arc<ClientRecord>, now: UnixTime) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&client.id) {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        let until = now.saturating_add(self.ttl);
        entries.insert(client.id.clone(), Entry { client, until });
    }

    /// Forgets `id` (it is gone from the store, or its record changed).
    pub(crate) fn forget(&self, id: &str) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> Arc<ClientRecord> {
        Arc::new(ClientRecord {
            id: id.into(),
            name: id.into(),
            secret_hash: None,
            grant_types: vec![],
            scope: tessera_token::Scope::default(),
            audience: vec![],
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            first_party: false,
            signing_alg: None,
            id_token_alg: None,
            dpop_bound_access_tokens: false,
            created_at: UnixTime::from_secs(0),
        })
    }

    #[test]
    fn entries_expire_after_the_ttl_and_can_be_forgotten() {
        let cache = ClientCache::new(Duration::from_secs(5));
        let t0 = UnixTime::from_secs(1_000);
        cache.put(client("a"), t0);
        assert!(cache.get("a", t0).is_some());
        assert!(
            cache
                .get("a", t0.saturating_add(Duration::from_secs(4)))
                .is_some()
        );
        assert!(
            cache
                .get("a", t0.saturating_add(Duration::from_secs(5)))
                .is_none()
        );
        assert!(cache.get("b", t0).is_none());
        cache.forget("a");
        assert!(cache.get("a", t0).is_none());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = ClientCache::new(Duration::ZERO);
        let t0 = UnixTime::from_secs(1_000);
        cache.put(client("a"), t0);
        assert!(cache.get("a", t0).is_none());
    }
}
