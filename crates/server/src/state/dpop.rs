//! What this node keeps for DPoP (RFC 9449): the server nonces, computed rather than
//! stored, and the replay cache of proof `jti`s.
//!
//! A nonce is HMAC-SHA256 (key derived from the master key) over a time step, so every
//! replica computes the same nonces with no shared state; the current step, the next one
//! (a replica whose clock runs ahead) and [`PAST_STEPS`] previous ones are accepted. The
//! replay cache is per node, keyed by SHA-256 of (thumbprint, `jti`), bounded in entries
//! ([`MAX_PROOFS`]) and in time (an entry ends when its proof's `iat` leaves the window);
//! docs/security.md says why per node is enough.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

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
    entries: Mutex<HashMap<[u8; 32], UnixTime>>,
    capacity: usize,
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::with_capacity(MAX_PROOFS)
    }
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl ReplayCache {
    /// A cache of at most `capacity` live proofs.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        ReplayCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], UnixTime>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the proof (`jkt`, `jti`) until `until`, or says why not. Check and insert
    /// happen under one lock: of simultaneous requests with one proof, exactly one wins.
    pub(crate) fn record(
        &self,
        jkt: &str,
        jti: &str,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), Replay> {
        let key = Self::key(jkt, jti);
        let mut entries = self.lock();
        if entries.get(&key).is_some_and(|end| now < *end) {
            return Err(Replay::Seen);
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, end| now < *end);
        }
        if entries.len() >= self.capacity {
            let first = entries.values().min().copied().unwrap_or(now);
            let wait = u64::try_from(first.secs() - now.secs()).unwrap_or(0);
            return Err(Replay::Full {
                retry_after: wait.max(1),
            });
        }
        entries.insert(key, until.max(now.saturating_add(Duration::from_secs(1))));
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
        assert_eq!(cache.record("k1", "j", t(1100), now), Ok(()));
        assert_eq!(cache.record("k1", "j", t(1100), now), Err(Replay::Seen));
        assert_eq!(cache.record("k1", "j", t(1100), t(1099)), Err(Replay::Seen));
        // Another key's jti, or a pair that concatenates the same, is another proof.
        assert_eq!(cache.record("k2", "j", t(1100), now), Ok(()));
        assert_eq!(cache.record("k1j", "", t(1100), now), Ok(()));
        // After its end the proof's iat is outside the window anyway.
        assert_eq!(cache.record("k1", "j", t(1300), t(1100)), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_new_proofs_instead_of_forgetting_live_ones() {
        let cache = ReplayCache::with_capacity(2);
        let now = t(1000);
        cache.record("k", "a", t(1010), now).unwrap();
        cache.record("k", "b", t(1030), now).unwrap();
        assert_eq!(
            cache.record("k", "c", t(1030), now),
            Err(Replay::Full { retry_after: 10 })
        );
        assert_eq!(cache.record("k", "a", t(1030), now), Err(Replay::Seen));
        // Once an entry ended, its place is free again.
        assert_eq!(cache.record("k", "c", t(1050), t(1010)), Ok(()));
        assert_eq!(cache.record("k", "b", t(1050), t(1010)), Err(Replay::Seen));
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
                    cache.record("k", "same", t(1100), t(1000)).is_ok()
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
