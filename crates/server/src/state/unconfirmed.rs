//! Refresh tokens whose rotation this server could not confirm, kept in memory for a
//! few minutes so that the client's retry gets the successor once instead of counting
//! as reuse.
//!
//! A rotation is unconfirmed when the store's `rotate_refresh_token` failed (the commit
//! may have happened with its acknowledgement lost on the way back, or not at all) or
//! when it committed but the answer could not be built. Only the SHA-256 hash of the
//! presented token is kept, never the token; entries end after [`REMEMBER_SECS`] and at
//! most [`MAX_ENTRIES`] are kept. The memory is per process: a retry that reaches
//! another replica is an ordinary reuse (docs/operations.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tessera_token::{TokenHash, UnixTime};

/// How long an unconfirmed rotation is remembered, seconds.
pub(crate) const REMEMBER_SECS: u64 = 300;

/// Most entries kept; past it the one closest to its end goes first.
const MAX_ENTRIES: usize = 10_000;

/// Hashes of refresh tokens whose rotation was not confirmed, each with its end.
#[derive(Default)]
pub(crate) struct UnconfirmedRotations {
    entries: Mutex<HashMap<TokenHash, UnixTime>>,
}

impl std::fmt::Debug for UnconfirmedRotations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnconfirmedRotations")
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl UnconfirmedRotations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, UnixTime>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that the rotation of the token hashing to `parent` was not confirmed
    /// at `now`, until [`REMEMBER_SECS`] later.
    pub(crate) fn remember(&self, parent: &TokenHash, now: UnixTime) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, until| now < *until);
        }
        if entries.len() >= MAX_ENTRIES {
            let first_to_end = entries.iter().min_by_key(|(_, until)| **until);
            if let Some(hash) = first_to_end.map(|(hash, _)| *hash) {
                entries.remove(&hash);
            }
        }
        let until = now.saturating_add(Duration::from_secs(REMEMBER_SECS));
        entries.insert(*parent, until);
    }

    /// True when `parent` is remembered and has not ended at `now`.
    pub(crate) fn contains(&self, parent: &TokenHash, now: UnixTime) -> bool {
        self.lock().get(parent).is_some_and(|until| now < *until)
    }

    /// Forgets `parent`; true when it was remembered and had not ended at `now`. Of
    /// concurrent callers, at most one gets true.
    pub(crate) fn take(&self, parent: &TokenHash, now: UnixTime) -> bool {
        self.lock().remove(parent).is_some_and(|until| now < until)
    }

    /// How many entries are kept (ended ones included until they are pushed out).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u32) -> TokenHash {
        TokenHash::of(&n.to_be_bytes())
    }

    #[test]
    fn an_entry_is_taken_once_and_ends_after_the_bound() {
        let memory = UnconfirmedRotations::default();
        let t0 = UnixTime::from_secs(1_000);
        memory.remember(&hash(1), t0);
        assert!(memory.contains(&hash(1), t0));
        assert!(!memory.contains(&hash(2), t0), "only what was remembered");
        assert!(memory.take(&hash(1), t0));
        assert!(!memory.take(&hash(1), t0), "taken once");
        assert!(!memory.contains(&hash(1), t0));

        memory.remember(&hash(3), t0);
        let end = t0.saturating_add(Duration::from_secs(REMEMBER_SECS));
        assert!(memory.contains(&hash(3), UnixTime::from_secs(end.secs() - 1)));
        assert!(!memory.contains(&hash(3), end));
        assert!(!memory.take(&hash(3), end), "an ended entry is not taken");
    }

    #[test]
    fn the_memory_is_bounded_and_pushes_out_ended_entries_first() {
        let memory = UnconfirmedRotations::default();
        let t0 = UnixTime::from_secs(1_000);
        let later = UnixTime::from_secs(1_000 + 60);
        memory.remember(&hash(0), t0);
        for n in 1..u32::try_from(MAX_ENTRIES).unwrap() {
            memory.remember(&hash(n), later);
        }
        assert_eq!(memory.len(), MAX_ENTRIES);
        // Full: the entry closest to its end (the oldest) makes room.
        let newest = hash(u32::MAX);
        memory.remember(&newest, later);
        assert_eq!(memory.len(), MAX_ENTRIES);
        assert!(!memory.contains(&hash(0), later));
        assert!(memory.contains(&hash(1), later));
        assert!(memory.contains(&newest, later));
        // Once every entry has ended, the next one clears them all.
        let after = UnixTime::from_secs(later.secs() + 1_000);
        memory.remember(&hash(7), after);
        assert_eq!(memory.len(), 1);
        assert!(memory.contains(&hash(7), after));
    }
}
