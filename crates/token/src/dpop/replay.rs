//! The DPoP replay cache (RFC 9449 section 11.1) the authorization server and the guard
//! share: each proof (key thumbprint, `iat`, `jti`) accepted once while it could still
//! pass the `iat` window. Bounded in entries without ever forgetting a live one: full,
//! new proofs are refused. Each entry has an owner (the server: the client; the guard:
//! the proof key), and one owner may hold only a share of the cache, so one holder of
//! credentials flooding fresh proofs cannot refuse DPoP to everyone else.
//!
//! Entries are kept by the SHA-256 of the proof's identity (none of its strings is
//! stored) and grouped by the second they end, with each owner's count per second: ended
//! entries are dropped a second at a time from the front, so a record costs a hash
//! lookup and a push however full the cache is (ends span the `iat` window, about two
//! minutes of seconds).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lc_rs::digest;

use crate::UnixTime;

/// Why a proof could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// This proof was recorded before and its entry has not ended.
    Seen,
    /// The cache, or the owner's share of it, is full of live entries; the first of them
    /// ends after `retry_after` seconds (at least 1).
    Full {
        /// Seconds until an entry that would make room ends.
        retry_after: u64,
    },
}

type ProofId = [u8; 32];

/// One owner's live entries: how many, and how many end at each second.
#[derive(Default)]
struct Owned {
    count: usize,
    ends: BTreeMap<i64, usize>,
}

#[derive(Default)]
struct Entries {
    /// Live proofs and their owners.
    by_id: HashMap<ProofId, Arc<str>>,
    /// Live proofs by the second their entry ends.
    by_end: BTreeMap<i64, Vec<ProofId>>,
    per_owner: HashMap<Arc<str>, Owned>,
}

impl Entries {
    /// Drops every entry whose end is not after `now`.
    fn drop_ended(&mut self, now: i64) {
        while let Some(bucket) = self.by_end.first_entry() {
            let end = *bucket.key();
            if end > now {
                break;
            }
            for id in bucket.remove() {
                let Some(owner) = self.by_id.remove(&id) else {
                    continue;
                };
                let Some(owned) = self.per_owner.get_mut(&owner) else {
                    continue;
                };
                owned.count -= 1;
                if let Some(n) = owned.ends.get_mut(&end) {
                    *n -= 1;
                    if *n == 0 {
                        owned.ends.remove(&end);
                    }
                }
                if owned.count == 0 {
                    self.per_owner.remove(&owner);
                }
            }
        }
    }
}

/// Proofs seen, each live until its `iat` window closes; at most `capacity` of them, at
/// most `capacity / owner_share` for one owner. `Send + Sync`; check and insert happen
/// under one lock, so of simultaneous requests with one proof exactly one passes.
pub struct ReplayCache {
    entries: Mutex<Entries>,
    capacity: usize,
    share: usize,
}

impl ReplayCache {
    /// A cache of at most `capacity` live proofs (at least 1), of which one owner may hold
    /// `capacity / owner_share` (at least 1).
    pub fn new(capacity: usize, owner_share: usize) -> Self {
        let capacity = capacity.max(1);
        ReplayCache {
            entries: Mutex::new(Entries::default()),
            capacity,
            share: (capacity / owner_share.max(1)).max(1),
        }
    }

    /// The most live proofs it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Live proofs held (ended ones are dropped by the next record).
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// True when no proof is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves the maps consistent (each insert and
        // remove is whole), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the proof (`jkt`, `iat`, `jti`) for `owner`, seen as used while
    /// `now < until`, or says why not. Call it only once every other check of the
    /// request passed, so a refused request does not spend its proof.
    pub fn record(
        &self,
        owner: &str,
        jkt: &str,
        iat: UnixTime,
        jti: &str,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), Replay> {
        let id = proof_id(jkt, iat, jti);
        let now = now.secs();
        let mut entries = self.lock();
        entries.drop_ended(now);
        if entries.by_id.contains_key(&id) {
            return Err(Replay::Seen);
        }
        if entries.by_id.len() >= self.capacity {
            let first = entries.by_end.keys().next().copied();
            return Err(full(first, now));
        }
        if let Some(owned) = entries.per_owner.get(owner)
            && owned.count >= self.share
        {
            return Err(full(owned.ends.keys().next().copied(), now));
        }
        let end = until.secs().max(now.saturating_add(1));
        let owner: Arc<str> = match entries.per_owner.get_key_value(owner) {
            Some((name, _)) => Arc::clone(name),
            None => Arc::from(owner),
        };
        entries.by_id.insert(id, Arc::clone(&owner));
        entries.by_end.entry(end).or_default().push(id);
        let owned = entries.per_owner.entry(owner).or_default();
        owned.count += 1;
        *owned.ends.entry(end).or_default() += 1;
        Ok(())
    }
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// A refusal telling when the entry `first_end` ends (at least a second from now).
fn full(first_end: Option<i64>, now: i64) -> Replay {
    let wait = first_end.map_or(1, |end| end.saturating_sub(now));
    Replay::Full {
        retry_after: u64::try_from(wait).unwrap_or(0).max(1),
    }
}

/// SHA-256 of the proof's identity, the thumbprint length-prefixed so no two triples
/// collide by concatenation; a fixed 32 bytes an entry whatever the client sent.
fn proof_id(jkt: &str, iat: UnixTime, jti: &str) -> ProofId {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&(jkt.len() as u64).to_be_bytes());
    ctx.update(jkt.as_bytes());
    ctx.update(&iat.secs().to_be_bytes());
    ctx.update(jti.as_bytes());
    let mut id = [0u8; 32];
    id.copy_from_slice(ctx.finish().as_ref());
    id
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const IAT: UnixTime = UnixTime::from_secs(1000);

    fn t(s: i64) -> UnixTime {
        UnixTime::from_secs(s)
    }

    /// `record` with the proof's `iat` fixed.
    fn rec(
        c: &ReplayCache,
        owner: &str,
        jkt: &str,
        jti: &str,
        until: i64,
        now: i64,
    ) -> Result<(), Replay> {
        c.record(owner, jkt, IAT, jti, t(until), t(now))
    }

    #[test]
    fn a_proof_is_recorded_once_until_it_ends() {
        let c = ReplayCache::new(100, 2);
        assert_eq!(rec(&c, "c", "k1", "j", 1100, 1000), Ok(()));
        assert_eq!(rec(&c, "c", "k1", "j", 1100, 1000), Err(Replay::Seen));
        assert_eq!(rec(&c, "c", "k1", "j", 1100, 1099), Err(Replay::Seen));
        assert_eq!(
            rec(&c, "other owner", "k1", "j", 1100, 1000),
            Err(Replay::Seen),
            "a proof is one proof whoever presents it"
        );
        // Another key's jti, a pair that concatenates the same, another iat: another proof.
        assert_eq!(rec(&c, "c", "k2", "j", 1100, 1000), Ok(()));
        assert_eq!(rec(&c, "c", "k1j", "", 1100, 1000), Ok(()));
        assert_eq!(c.record("c", "k1", t(1001), "j", t(1100), t(1000)), Ok(()));
        // After its end the proof's iat is outside the window anyway.
        assert_eq!(rec(&c, "c", "k1", "j", 1300, 1100), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_new_proofs_instead_of_forgetting_live_ones() {
        let c = ReplayCache::new(2, 1);
        rec(&c, "c1", "k", "a", 1010, 1000).unwrap();
        rec(&c, "c2", "k", "b", 1030, 1000).unwrap();
        assert_eq!(
            rec(&c, "c3", "k", "c", 1030, 1000),
            Err(Replay::Full { retry_after: 10 })
        );
        assert_eq!(rec(&c, "c1", "k", "a", 1030, 1000), Err(Replay::Seen));
        // Once an entry ended, its place is free again.
        assert_eq!(rec(&c, "c3", "k", "c", 1050, 1010), Ok(()));
        assert_eq!(rec(&c, "c2", "k", "b", 1050, 1010), Err(Replay::Seen));
        assert_eq!(c.len(), 2);
    }

    /// The attack: flood the cache with fresh proofs, then replay a captured one. A full
    /// cache refuses new proofs and still knows every live one.
    #[test]
    fn a_flood_does_not_make_a_live_proof_replayable() {
        let c = ReplayCache::new(8, 4);
        rec(&c, "victim", "victim", "captured", 1120, 1000).unwrap();
        let refused = (0..100)
            .filter(|i| {
                let owner = format!("attacker{}", i % 5);
                matches!(
                    rec(&c, &owner, &owner, &format!("j{i}"), 1120, 1000),
                    Err(Replay::Full { .. })
                )
            })
            .count();
        assert!(refused > 0, "the flood is refused once the cache is full");
        assert_eq!(c.len(), 8);
        assert_eq!(
            rec(&c, "victim", "victim", "captured", 1120, 1000),
            Err(Replay::Seen)
        );
        // Once the entries end, the room is back.
        assert!(rec(&c, "other", "other", "x", 1240, 1120).is_ok());
    }

    /// One owner fills at most its share, and is told when its own first entry ends;
    /// the others still get theirs.
    #[test]
    fn one_owner_cannot_take_the_whole_cache() {
        let c = ReplayCache::new(4, 2);
        rec(&c, "greedy", "k", "a", 1010, 1000).unwrap();
        rec(&c, "greedy", "k", "b", 1020, 1000).unwrap();
        assert_eq!(
            rec(&c, "greedy", "k", "c", 1030, 1000),
            Err(Replay::Full { retry_after: 10 })
        );
        rec(&c, "other", "k", "c", 1030, 1000).unwrap();
        rec(&c, "third", "k", "d", 1030, 1000).unwrap();
        assert_eq!(
            rec(&c, "fourth", "k", "e", 1030, 1000),
            Err(Replay::Full { retry_after: 10 })
        );
        // Once its first entry ended, the owner has room again, and its next wait is
        // counted from its own next end.
        rec(&c, "greedy", "k", "e", 1040, 1010).unwrap();
        assert_eq!(
            rec(&c, "greedy", "k", "f", 1040, 1010),
            Err(Replay::Full { retry_after: 10 }),
            "full again: its first entry now ends at 1020"
        );
    }

    /// Entries end second by second: only the ended ones go, each taking its owner's
    /// count with it.
    #[test]
    fn entries_end_in_their_own_second_and_give_back_their_owners_share() {
        let c = ReplayCache::new(8, 4);
        rec(&c, "o", "k", "a", 1010, 1000).unwrap();
        rec(&c, "o", "k", "b", 1020, 1000).unwrap();
        assert_eq!(
            rec(&c, "o", "k", "c", 1030, 1000),
            Err(Replay::Full { retry_after: 10 })
        );
        assert_eq!(rec(&c, "o", "k", "b", 1040, 1010), Err(Replay::Seen));
        assert!(rec(&c, "o", "k", "c", 1030, 1010).is_ok());
        assert_eq!(c.len(), 2);
        assert_eq!(
            rec(&c, "o", "k", "d", 1030, 1010),
            Err(Replay::Full { retry_after: 10 })
        );
        assert!(rec(&c, "o", "k", "a", 1040, 1020).is_ok());
        assert_eq!(c.len(), 2);
        // A clock that went back drops nothing and still refuses what it holds.
        assert_eq!(rec(&c, "o", "k", "a", 1040, 900), Err(Replay::Seen));
    }

    #[test]
    fn of_simultaneous_uses_of_one_proof_exactly_one_wins() {
        let c = Arc::new(ReplayCache::new(100, 2));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (c, barrier) = (Arc::clone(&c), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    rec(&c, "c", "k", "same", 1100, 1000).is_ok()
                })
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(wins, 1);
    }
}
