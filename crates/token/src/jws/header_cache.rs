//! The protected headers a key set has seen on tokens that verified, keyed by the header
//! segment's exact bytes. An issuer writes the same header (`alg`, `typ`, `kid`) on every
//! token one key signs, so a handful of entries saves the header's decode and parse on
//! nearly every token. A header is entered only once a token carrying it verified with a
//! trusted key, and what it holds is a pure function of those bytes: a hit changes the
//! cost, never the answer.

use std::sync::{Arc, PoisonError, RwLock};

use super::Header;

/// At most this many headers: one per signing key and `typ` an issuer uses at once, with
/// room for a rotation.
const CAPACITY: usize = 8;

#[derive(Default)]
pub(super) struct HeaderCache {
    entries: RwLock<Vec<(Box<str>, Arc<Header>)>>,
}

impl HeaderCache {
    /// The header read before from these exact segment bytes.
    pub(super) fn get(&self, segment: &str) -> Option<Arc<Header>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .find(|(bytes, _)| bytes.as_ref() == segment)
            .map(|(_, header)| Arc::clone(header))
    }

    /// Enters `header`, read from `segment` on a token that verified. When full, the
    /// oldest entry makes room.
    pub(super) fn insert(&self, segment: &str, header: &Arc<Header>) {
        // No code panics while holding the lock; a poisoned list is still consistent.
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.iter().any(|(bytes, _)| bytes.as_ref() == segment) {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.remove(0);
        }
        entries.push((segment.into(), Arc::clone(header)));
    }

    pub(super) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A copy of a key set starts with no header seen (the copy may get other keys).
impl Clone for HeaderCache {
    fn clone(&self) -> Self {
        HeaderCache::default()
    }
}

impl std::fmt::Debug for HeaderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCache")
            .field("len", &self.len())
            .finish()
    }
}
