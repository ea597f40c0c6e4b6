//! What this node keeps for DPoP (RFC 9449): the server nonces, computed rather than
//! stored, and the replay cache of proof `jti`s.
//!
//! A nonce is HMAC-SHA256 (key derived from the master key and the issuer) over a time
//! step, so every replica of a deployment computes the same nonces with no shared state; the current step, the next one
//! (a replica whose clock runs ahead) and [`PAST_STEPS`] previous ones are accepted. The
//! replay cache is per node, keyed by SHA-256 of (thumbprint, `jti`), bounded in entries
//! ([`MAX_PROOFS`], shared by all clients) and in time (an entry ends one second after
//! its proof's `iat` leaves the window); docs/security.md says why per node is enough.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_lc_rs::{constant_time, digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_token::UnixTime;

/// Length of a nonce's time step, seconds.
pub(crate) const NONCE_STEP_SECS: i64 = 60;

/// Previous steps whose nonces are still accepted (so a nonce lives two to three steps).
pub(crate) const PAST_STEPS: i64 = 2;

/// Most proofs remembered; past it (after dropping ended entries) new proofs are refused
/// until entries end, rather than forgetting a proof that could then be replayed.
pub(crate) const MAX_PROOFS: usize = 100_000;

/// One client may hold at most 1/`CLIENT_SHARE` of the cache, so a single client (its
/// secret leaked, or a user of a public client signing in as fast as it can) cannot
/// refuse DPoP to every other client of the node.
pub(crate) const CLIENT_SHARE: usize = 2;

/// Bytes of the HMAC tag kept in a nonce.
const TAG_LEN: usize = 16;

/// The server nonces: `base64url(step || HMAC(key, step)[..16])`.
pub(crate) struct Nonces {
    key: hmac::Key,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces").finish_non_exhaustive()
    }
}

impl Nonces {
    /// Nonces keyed by `key` (derived from the master key, the same on every replica).
    pub(crate) fn new(key: hmac::Key) -> Self {
        Nonces { key }
    }

    /// The nonces of the deployment whose master key is `master` and whose issuer is
    /// `issuer`: its replicas (same key, same issuer) accept each other's nonces; another
    /// deployment sharing the master key under another issuer does not.
    pub(crate) fn of_deployment(master: &hmac::Key, issuer: &str) -> Self {
        let mut label = b"tessera/v2/dpop-nonce\0".to_vec();
        label.extend_from_slice(issuer.as_bytes());
        Nonces::new(super::derive(master, &label))
    }

    fn step(now: UnixTime) -> i64 {
        now.secs().div_euclid(NONCE_STEP_SECS)
    }

    fn for_step(&self, step: i64) -> String {
        let step = step.to_be_bytes();
        let tag = hmac::sign(&self.key, &step);
        let mut raw = step.to_vec();
        raw.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The nonce to hand out at `now`.
    pub(crate) fn current(&self, now: UnixTime) -> String {
        self.for_step(Self::step(now))
    }

    /// True when `nonce` was handed out (by any replica) within the accepted steps.
    pub(crate) fn accepts(&self, nonce: &str, now: UnixTime) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((step, tag)) = raw.split_first_chunk::<8>() else {
            return false;
        };
        let step = i64::from_be_bytes(*step);
        let current = Self::step(now);
        if tag.len() != TAG_LEN || step > current + 1 || step < current - PAST_STEPS {
            return false;
        }
        let expected = hmac::sign(&self.key, &step.to_be_bytes());
        constant_time::verify_slices_are_equal(tag, &expected.as_ref()[..TAG_LEN]).is_ok()
    }
}

/// Why a proof could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// This (thumbprint, `jti`) was recorded before and has not ended.
    Seen,
    /// The cache is full of live entries; the first ends after this many seconds.
    Full {
        /// Seconds until an entry ends.
        retry_after: u64,
    },
}

/// The proofs this node accepted, until their `iat` leaves the window.
pub(crate) struct ReplayCache {
    entries: Mutex<Entries>,
    capacity: usize,
}

/// The live proofs by key (with their end and client), the same ordered by end, and each
/// client's ordered by end: ended entries are dropped from the front, so each record
/// costs O(log n) however full the cache is.
#[derive(Default)]
struct Entries {
    by_key: HashMap<[u8; 32], (i64, Arc<str>)>,
    by_end: BTreeSet<(i64, [u8; 32])>,
    by_client: HashMap<Arc<str>, BTreeSet<(i64, [u8; 32])>>,
}

impl Entries {
    /// Drops every entry whose end is not after `now`.
    fn drop_ended(&mut self, now: i64) {
        while let Some(&(end, key)) = self.by_end.first() {
            if end > now {
                break;
            }
            self.by_end.pop_first();
            let Some((_, client)) = self.by_key.remove(&key) else {
                continue;
            };
            if let Some(mine) = self.by_client.get_mut(&client) {
                mine.remove(&(end, key));
                if mine.is_empty() {
                    self.by_client.remove(&client);
                }
            }
        }
    }
}

/// The wait until the first of `ends` ends, at least a second.
fn wait(ends: &BTreeSet<(i64, [u8; 32])>, now: i64) -> u64 {
    let first = ends.first().map_or(now, |(end, _)| *end);
    u64::try_from(first - now).unwrap_or(0).max(1)
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::with_capacity(MAX_PROOFS)
    }
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("entries", &self.lock().by_key.len())
            .finish()
    }
}

impl ReplayCache {
    /// A cache of at most `capacity` live proofs.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        ReplayCache {
            entries: Mutex::new(Entries::default()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the proof (`jkt`, `jti`) that `client` presented until `until` (it is
    /// seen as used while `now < until`), or says why not: the cache is full, or this
    /// client holds its share ([`CLIENT_SHARE`] of the capacity) already. Check and
    /// insert happen under one lock: of simultaneous requests with one proof, exactly
    /// one wins.
    pub(crate) fn record(
        &self,
        client: &str,
        jkt: &str,
        jti: &str,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), Replay> {
        let key = Self::key(jkt, jti);
        let now = now.secs();
        let mut entries = self.lock();
        entries.drop_ended(now);
        if entries.by_key.contains_key(&key) {
            return Err(Replay::Seen);
        }
        if entries.by_key.len() >= self.capacity {
            return Err(Replay::Full {
                retry_after: wait(&entries.by_end, now),
            });
        }
        let share = (self.capacity / CLIENT_SHARE).max(1);
        if let Some(mine) = entries.by_client.get(client)
            && mine.len() >= share
        {
            return Err(Replay::Full {
                retry_after: wait(mine, now),
            });
        }
        let end = until.secs().max(now + 1);
        let client: Arc<str> = match entries.by_client.get_key_value(client) {
            Some((name, _)) => Arc::clone(name),
            None => Arc::from(client),
        };
        entries.by_key.insert(key, (end, Arc::clone(&client)));
        entries.by_end.insert((end, key));
        entries
            .by_client
            .entry(client)
            .or_default()
            .insert((end, key));
        Ok(())
    }

    /// SHA-256 of the thumbprint and the `jti`, length-prefixed so no two pairs collide
    /// by concatenation; a fixed 32 bytes per entry whatever the client sent.
    fn key(jkt: &str, jti: &str) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&(jkt.len() as u64).to_be_bytes());
        ctx.update(jkt.as_bytes());
        ctx.update(jti.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn t(s: i64) -> UnixTime {
        UnixTime::from_secs(s)
    }

    fn nonces(k: u8) -> Nonces {
        Nonces::new(hmac::Key::new(hmac::HMAC_SHA256, &[k; 32]))
    }

    #[test]
    fn every_replica_accepts_the_nonces_of_every_other_within_the_steps() {
        let (a, b) = (nonces(1), nonces(1));
        let now = 1_800_000_000;
        let n = a.current(t(now));
        assert_eq!(n, b.current(t(now)), "same key, same nonce");
        assert!(b.accepts(&n, t(now)));
        assert!(b.accepts(&n, t(now + PAST_STEPS * NONCE_STEP_SECS)));
        assert!(
            !b.accepts(&n, t(now + (PAST_STEPS + 1) * NONCE_STEP_SECS)),
            "stale"
        );
        // A replica whose clock runs one step ahead hands out a nonce the others take.
        assert!(b.accepts(&a.current(t(now + NONCE_STEP_SECS)), t(now)));
        assert!(!b.accepts(&a.current(t(now + 2 * NONCE_STEP_SECS)), t(now)));
    }

    /// Two deployments that share a master key (a copied secrets file) under different
    /// issuers do not accept each other's nonces; replicas of one deployment do.
    #[test]
    fn a_nonce_holds_only_in_the_deployment_that_made_it() {
        let master = hmac::Key::new(hmac::HMAC_SHA256, &[9; 32]);
        let now = t(1_800_000_000);
        let here = Nonces::of_deployment(&master, "https://auth.example");
        let n = here.current(now);
        let replica = Nonces::of_deployment(&master, "https://auth.example");
        assert!(replica.accepts(&n, now));
        let staging = Nonces::of_deployment(&master, "https://staging.auth.example");
        assert!(!staging.accepts(&n, now));
        assert!(!here.accepts(&staging.current(now), now));
    }

    #[test]
    fn forged_or_malformed_nonces_are_refused() {
        let now = t(1_800_000_000);
        let n = nonces(1).current(now);
        assert!(!nonces(2).accepts(&n, now), "another master key");
        let mut raw = URL_SAFE_NO_PAD.decode(&n).unwrap();
        raw[20] ^= 1;
        assert!(
            !nonces(1).accepts(&URL_SAFE_NO_PAD.encode(&raw), now),
            "tag"
        );
        raw.truncate(12);
        assert!(
            !nonces(1).accepts(&URL_SAFE_NO_PAD.encode(&raw), now),
            "short"
        );
        for bad in ["", "!!", "AAAA", &"A".repeat(600)] {
            assert!(!nonces(1).accepts(bad, now), "{bad}");
        }
    }

    #[test]
    fn a_proof_is_recorded_once_until_it_ends() {
        let cache = ReplayCache::default();
        let now = t(1000);
        assert_eq!(cache.record("c", "k1", "j", t(1100), now), Ok(()));
        assert_eq!(
            cache.record("c", "k1", "j", t(1100), now),
            Err(Replay::Seen)
        );
        assert_eq!(
            cache.record("c", "k1", "j", t(1100), t(1099)),
            Err(Replay::Seen)
        );
        // Another key's jti, or a pair that concatenates the same, is another proof.
        assert_eq!(cache.record("c", "k2", "j", t(1100), now), Ok(()));
        assert_eq!(cache.record("c", "k1j", "", t(1100), now), Ok(()));
        // After its end the proof's iat is outside the window anyway.
        assert_eq!(cache.record("c", "k1", "j", t(1300), t(1100)), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_new_proofs_instead_of_forgetting_live_ones() {
        let cache = ReplayCache::with_capacity(2);
        let now = t(1000);
        cache.record("c1", "k", "a", t(1010), now).unwrap();
        cache.record("c2", "k", "b", t(1030), now).unwrap();
        assert_eq!(
            cache.record("c3", "k", "c", t(1030), now),
            Err(Replay::Full { retry_after: 10 })
        );
        assert_eq!(
            cache.record("c1", "k", "a", t(1030), now),
            Err(Replay::Seen)
        );
        // Once an entry ended, its place is free again.
        assert_eq!(cache.record("c3", "k", "c", t(1050), t(1010)), Ok(()));
        assert_eq!(
            cache.record("c2", "k", "b", t(1050), t(1010)),
            Err(Replay::Seen)
        );
    }

    /// One client fills at most its share; the others still get theirs, and the client
    /// is told when its own first entry ends.
    #[test]
    fn one_client_cannot_take_the_whole_cache() {
        let cache = ReplayCache::with_capacity(4);
        let now = t(1000);
        cache.record("greedy", "k", "a", t(1010), now).unwrap();
        cache.record("greedy", "k", "b", t(1020), now).unwrap();
        assert_eq!(
            cache.record("greedy", "k", "c", t(1030), now),
            Err(Replay::Full { retry_after: 10 })
        );
        cache.record("other", "k", "c", t(1030), now).unwrap();
        cache.record("third", "k", "d", t(1030), now).unwrap();
        assert_eq!(
            cache.record("fourth", "k", "e", t(1030), now),
            Err(Replay::Full { retry_after: 10 })
        );
        // Once its first entry ended, the client has room again.
        cache.record("greedy", "k", "e", t(1040), t(1010)).unwrap();
        assert_eq!(
            cache.record("greedy", "k", "f", t(1040), t(1010)),
            Err(Replay::Full { retry_after: 10 }),
            "full again: its first entry now ends at 1020"
        );
    }

    #[test]
    fn of_simultaneous_uses_of_one_proof_exactly_one_wins() {
        let cache = Arc::new(ReplayCache::default());
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (cache, barrier) = (Arc::clone(&cache), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    cache.record("c", "k", "same", t(1100), t(1000)).is_ok()
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
