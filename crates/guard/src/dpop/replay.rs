//! The guard's DPoP replay cache: each (proof key thumbprint, `jti`, `iat`) accepted once
//! while the proof could still pass the `iat` window (RFC 9449 section 11.1). Bounded in
//! entries without ever forgetting a live one: when full, new proofs are refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tessera_token::{TokenHash, UnixTime};

/// One proof key may hold at most 1/`KEY_SHARE` of the cache, so one token holder
/// flooding the guard with fresh proofs cannot refuse DPoP to everyone else.
pub(crate) const KEY_SHARE: usize = 4;

/// Why a proof could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// This proof was recorded before and its entry has not ended.
    Seen,
    /// The cache (or this key's share of it) is full of live entries.
    Full,
}

/// The live proofs by hash (with their end and key), the same grouped by the second
/// their entry ends, and how many each key holds: ended entries are dropped a second at
/// a time from the front, so a record costs a hash lookup and a push however full the
/// cache is (ends span the `iat` window, about two minutes of seconds).
#[derive(Default)]
struct Entries {
    by_hash: HashMap<[u8; 32], Arc<str>>,
    by_end: BTreeMap<i64, Vec<[u8; 32]>>,
    per_key: HashMap<Arc<str>, usize>,
}

impl Entries {
    /// Drops every entry whose end is not after `now`.
    fn drop_ended(&mut self, now: i64) {
        while let Some(entry) = self.by_end.first_entry() {
            if *entry.key() > now {
                break;
            }
            for hash in entry.remove() {
                let Some(jkt) = self.by_hash.remove(&hash) else {
                    continue;
                };
                if let Some(count) = self.per_key.get_mut(&jkt) {
                    *count -= 1;
                    if *count == 0 {
                        self.per_key.remove(&jkt);
                    }
                }
            }
        }
    }
}

/// Proofs seen, keyed by the SHA-256 of `jkt`, `iat` and `jti` (none is stored), each
/// live until its proof's `iat` window closes. At most `capacity` live entries, at most
/// a [`KEY_SHARE`] of them for one proof key; past that new proofs are refused (the
/// guard answers 503) rather than a live one forgotten and made replayable.
pub(crate) struct ReplayCache {
    entries: Mutex<Entries>,
    capacity: usize,
}

impl ReplayCache {
    /// A cache of at most `capacity` live proofs (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        ReplayCache {
            entries: Mutex::new(Entries::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves the maps consistent (each insert and
        // remove is whole), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the proof `(jkt, jti, iat)`, seen as used while `now < until`, or says why
    /// not. Check and insert happen under one lock: of simultaneous requests with one
    /// proof exactly one passes.
    pub(crate) fn record(
        &self,
        jkt: &str,
        jti: &str,
        iat: UnixTime,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), Replay> {
        let mut key = Vec::with_capacity(jkt.len() + jti.len() + 10);
        key.extend_from_slice(jkt.as_bytes());
        key.push(0);
        key.extend_from_slice(&iat.secs().to_be_bytes());
        key.extend_from_slice(jti.as_bytes());
        let hash = *TokenHash::of(&key).as_bytes();
        let now = now.secs();
        let mut entries = self.lock();
        entries.drop_ended(now);
        if entries.by_hash.contains_key(&hash) {
            return Err(Replay::Seen);
        }
        if entries.by_hash.len() >= self.capacity {
            return Err(Replay::Full);
        }
        let share = (self.capacity / KEY_SHARE).max(1);
        if entries.per_key.get(jkt).is_some_and(|n| *n >= share) {
            return Err(Replay::Full);
        }
        let end = until.secs().max(now.saturating_add(1));
        let jkt: Arc<str> = match entries.per_key.get_key_value(jkt) {
            Some((name, _)) => Arc::clone(name),
            None => Arc::from(jkt),
        };
        entries.by_hash.insert(hash, Arc::clone(&jkt));
        entries.by_end.entry(end).or_default().push(hash);
        *entries.per_key.entry(jkt).or_default() += 1;
        Ok(())
    }

    /// Proofs held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().by_hash.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

    fn until() -> UnixTime {
        UnixTime::from_secs(NOW.secs() + 120)
    }

    #[test]
    fn a_proof_is_accepted_once_and_per_key() {
        let c = ReplayCache::new(10);
        assert_eq!(c.record("k1", "j1", NOW, until(), NOW), Ok(()));
        assert_eq!(c.record("k1", "j1", NOW, until(), NOW), Err(Replay::Seen));
        assert!(
            c.record("k2", "j1", NOW, until(), NOW).is_ok(),
            "another key's jti"
        );
        assert!(c.record("k1", "j2", NOW, until(), NOW).is_ok());
        assert!(
            c.record("k", "1j1", NOW, until(), NOW).is_ok(),
            "the parts are separated"
        );
    }

    #[test]
    fn an_entry_lapses_with_its_window_and_the_count_is_bounded() {
        let c = ReplayCache::new(10);
        assert!(c.record("k", "j", NOW, until(), NOW).is_ok());
        let later = UnixTime::from_secs(NOW.secs() + 121);
        let until_later = UnixTime::from_secs(later.secs() + 120);
        assert!(c.record("k", "j", NOW, until_later, later).is_ok());
        for i in 0..1000 {
            let _ = c.record(&format!("k{}", i % 7), &format!("j{i}"), NOW, until(), NOW);
        }
        assert!(c.len() <= 10, "bounded: {}", c.len());
    }

    /// The attack: flood the cache with fresh proofs, then replay a captured one. A full
    /// cache refuses new proofs and still knows every live one.
    #[test]
    fn a_flood_does_not_make_a_live_proof_replayable() {
        let c = ReplayCache::new(8);
        assert!(c.record("victim", "captured", NOW, until(), NOW).is_ok());
        let mut refused = 0;
        for i in 0..100 {
            let jkt = format!("attacker{}", i % 5);
            if c.record(&jkt, &format!("j{i}"), NOW, until(), NOW) == Err(Replay::Full) {
                refused += 1;
            }
        }
        assert!(refused > 0, "the flood is refused once the cache is full");
        assert_eq!(c.len(), 8);
        assert_eq!(
            c.record("victim", "captured", NOW, until(), NOW),
            Err(Replay::Seen)
        );
        // Once the entries end, the room is back.
        let later = UnixTime::from_secs(NOW.secs() + 120);
        let until_later = UnixTime::from_secs(later.secs() + 120);
        assert!(c.record("other", "x", later, until_later, later).is_ok());
    }

    /// One proof key fills at most its share; other keys still get theirs.
    #[test]
    fn one_key_cannot_take_the_whole_cache() {
        let c = ReplayCache::new(8);
        assert!(c.record("greedy", "a", NOW, until(), NOW).is_ok());
        assert!(c.record("greedy", "b", NOW, until(), NOW).is_ok());
        assert_eq!(
            c.record("greedy", "c", NOW, until(), NOW),
            Err(Replay::Full)
        );
        assert!(c.record("other", "c", NOW, until(), NOW).is_ok());
    }

    /// Entries end second by second: only the ended ones go, each taking its key's
    /// count with it, and a proof recorded again after its entry ended is new.
    #[test]
    fn entries_end_in_their_own_second_and_give_back_their_keys_share() {
        let c = ReplayCache::new(8);
        let at = |s: i64| UnixTime::from_secs(NOW.secs() + s);
        assert!(c.record("k", "a", NOW, at(10), NOW).is_ok());
        assert!(c.record("k", "b", NOW, at(20), NOW).is_ok());
        assert_eq!(c.record("k", "c", NOW, at(30), NOW), Err(Replay::Full));
        // At +10 the first entry has ended (its end is not after now), the second not.
        assert_eq!(c.record("k", "b", NOW, at(40), at(10)), Err(Replay::Seen));
        assert!(c.record("k", "c", NOW, at(30), at(10)).is_ok());
        assert_eq!(c.len(), 2);
        assert_eq!(c.record("k", "d", NOW, at(30), at(10)), Err(Replay::Full));
        assert!(c.record("k", "a", NOW, at(40), at(20)).is_ok());
        assert_eq!(c.len(), 2);
    }
}
