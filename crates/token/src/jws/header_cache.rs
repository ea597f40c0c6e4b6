//! The protected headers a key set has seen on tokens that verified, keyed by the header
//! segment's exact bytes. An issuer writes the same header (`alg`, `typ`, `kid`) on every
//! token one key signs, so a handful of entries saves the header's decode and parse on
//! nearly every token. A header is entered only once a token carrying it verified with a
//! trusted key, and what it holds is a pure function of those bytes: a hit changes the
//! cost, never the answer.
//!
//! Slots are filled once and never emptied (a key set is rebuilt, cache and all, when
//! its keys change), so a lookup takes no lock: a few atomic loads and byte compares.
//! Past the last slot, further headers are simply parsed every time.

use std::sync::{Arc, OnceLock};

use super::Header;

/// Slots: one per signing key and `typ` an issuer uses at once, with room for a rotation.
const SLOTS: usize = 8;

#[derive(Default)]
pub(super) struct HeaderCache {
    slots: [OnceLock<(Box<str>, Arc<Header>)>; SLOTS],
}

impl HeaderCache {
    /// The header read before from these exact segment bytes.
    pub(super) fn get(&self, segment: &str) -> Option<Arc<Header>> {
        self.filled()
            .find(|(bytes, _)| bytes.as_ref() == segment)
            .map(|(_, header)| Arc::clone(header))
    }

    /// Enters `header`, read from `segment` on a token that verified, in the first free
    /// slot; with none free, nothing happens. Two threads entering the same header at
    /// once may take two slots: harmless, a lookup finds the first.
    pub(super) fn insert(&self, segment: &str, header: &Arc<Header>) {
        if self.get(segment).is_some() {
            return;
        }
        let mut entry = (Box::from(segment), Arc::clone(header));
        for slot in &self.slots {
            match slot.set(entry) {
                Ok(()) => return,
                Err(back) => entry = back,
            }
        }
    }

    /// How many slots are filled.
    pub(super) fn len(&self) -> usize {
        self.filled().count()
    }

    fn filled(&self) -> impl Iterator<Item = &(Box<str>, Arc<Header>)> {
        // Slots fill in order, so the first empty one ends the search.
        self.slots.iter().map_while(OnceLock::get)
    }
}

/// A copy of a key set starts with no header seen.
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
