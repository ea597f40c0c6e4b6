//! The guard's DPoP replay cache: each (proof key thumbprint, `jti`) accepted once while
//! the proof could still pass the `iat` window, bounded in entries (RFC 9449 section 11.1).

use quick_cache::sync::Cache;
use tessera_token::{TokenHash, UnixTime};

/// Proofs seen, keyed by the SHA-256 of `jkt`, `jti` and `iat` (none is stored), each
/// live until its proof's `iat` window closes. Bounded: when full the oldest entries go;
/// a proof evicted early is still refused once its `iat` leaves the window. The same
/// proof always has the same key, and a live proof always finds its entry: the
/// check-and-insert is one atomic step.
pub(crate) struct ReplayCache {
    seen: Cache<TokenHash, UnixTime>,
}

impl ReplayCache {
    /// A cache of at most `capacity` proofs (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        ReplayCache {
            seen: Cache::new(capacity.max(1)),
        }
    }

    /// Records the proof `(jkt, jti, iat)`, usable until `until`; `false` when it was
    /// already recorded and is still live (a replay). Check-and-insert is one atomic step,
    /// so of two concurrent requests with the same proof exactly one passes.
    pub(crate) fn record(
        &self,
        jkt: &str,
        jti: &str,
        iat: UnixTime,
        until: UnixTime,
        now: UnixTime,
    ) -> bool {
        let mut key = Vec::with_capacity(jkt.len() + jti.len() + 10);
        key.extend_from_slice(jkt.as_bytes());
        key.push(0);
        key.extend_from_slice(&iat.secs().to_be_bytes());
        key.extend_from_slice(jti.as_bytes());
        let key = TokenHash::of(&key);
        let mut fresh = false;
        let held = self
            .seen
            .get_or_insert_with(&key, || {
                fresh = true;
                Ok::<_, std::convert::Infallible>(until)
            })
            .unwrap_or(until);
        if fresh {
            return true;
        }
        if held < now {
            // Only a proof whose iat window closed gets here, and the proof check refused
            // such a proof already: treat its entry as gone.
            self.seen.insert(key, until);
            return true;
        }
        false
    }

    /// Proofs held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
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
        assert!(c.record("k1", "j1", NOW, until(), NOW));
        assert!(!c.record("k1", "j1", NOW, until(), NOW));
        assert!(c.record("k2", "j1", NOW, until(), NOW), "another key's jti");
        assert!(c.record("k1", "j2", NOW, until(), NOW));
        assert!(
            c.record("k", "1j1", NOW, until(), NOW),
            "the parts are separated"
        );
    }

    #[test]
    fn an_entry_lapses_with_its_window_and_the_count_is_bounded() {
        let c = ReplayCache::new(10);
        assert!(c.record("k", "j", NOW, until(), NOW));
        let later = UnixTime::from_secs(NOW.secs() + 121);
        let until_later = UnixTime::from_secs(later.secs() + 120);
        assert!(c.record("k", "j", NOW, until_later, later));
        for i in 0..1000 {
            c.record("k", &format!("j{i}"), NOW, until(), NOW);
        }
        assert!(c.len() <= 10 * 2, "bounded: {}", c.len());
    }
}
