//! The revocation hook: a check the guard runs on every accepted token (cache hits
//! included), and [`RevocationList`], the in-memory set the feed client fills.
//!
//! The set keeps a 128-bit keyed hash of each `jti`/`sid` (SipHash-2-4-128, a keyed
//! pseudo-random function, under a key drawn from the operating system's RNG per list),
//! not the string: 24 bytes a slot whatever the id's length, about
//! 33 bytes an entry with the table's spare room (measured by
//! `tests/revocation_memory.rs`). Keyed and random, the hash cannot be aimed at: nobody
//! can choose an id that collides with a revoked one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use siphasher::sip128::{Hasher128, SipHasher24};
use tessera_token::{Claims, UnixTime};

/// Decides whether an otherwise valid token was revoked. It runs on every request,
/// cache hits included, so it must be cheap and must not block on I/O.
pub trait RevocationCheck: Send + Sync + 'static {
    /// True when the token with these claims must be refused.
    fn is_revoked(&self, claims: &Claims, now: UnixTime) -> bool;
}

/// An id's 128-bit keyed hash. Eight-byte aligned (not `u128`), so a slot with its
/// `exp` takes 24 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([u64; 2]);

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.0[0]);
    }
}

/// The table's hasher: a [`Key`] is random already, so its first half is the hash.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Key`; fold anything else in anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Table = HashMap<Key, UnixTime, BuildHasherDefault<Prehashed>>;

#[derive(Default)]
struct Sets {
    jti: Table,
    sid: Table,
}

/// Revoked `jti`s and `sid`s, each kept until its `exp` has passed.
pub struct RevocationList {
    sets: RwLock<Sets>,
    empty: AtomicBool,
    /// SipHash key; `None` only when the OS had no randomness to give.
    key: Option<[u8; 16]>,
}

/// A random key for the list's hash. Without an RNG (never seen on a supported platform)
/// the list stays usable: ids are then hashed with SHA-256 unkeyed, which nobody can aim
/// either, and the failure is logged.
fn hash_key() -> Option<[u8; 16]> {
    let mut key = [0u8; 16];
    match SystemRandom::new().fill(&mut key) {
        Ok(()) => Some(key),
        Err(_) => {
            tracing::error!("no OS randomness for the revocation list's hash key");
            None
        }
    }
}

impl Default for RevocationList {
    fn default() -> Self {
        Self::new()
    }
}

impl RevocationList {
    /// An empty list.
    pub fn new() -> Self {
        RevocationList {
            sets: RwLock::default(),
            empty: AtomicBool::new(true),
            key: hash_key(),
        }
    }

    fn key(&self, id: &str) -> Key {
        // Each table lookup runs this on the request path (twice a request): a keyed
        // hash the size of the slot, about a tenth of an HMAC-SHA256's cost.
        let Some(key) = &self.key else {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
            let [a, b] = [0, 8].map(|at| {
                let mut half = [0u8; 8];
                half.copy_from_slice(&digest.as_ref()[at..at + 8]);
                u64::from_le_bytes(half)
            });
            return Key([a, b]);
        };
        let mut h = SipHasher24::new_with_key(key);
        h.write(id.as_bytes());
        let tag = h.finish128();
        Key([tag.h1, tag.h2])
    }

    /// Revokes one access token by `jti`, remembered until `exp`.
    pub fn revoke_jti(&self, jti: impl AsRef<str>, exp: UnixTime) {
        let key = self.key(jti.as_ref());
        self.write(|s| {
            s.jti.insert(key, exp);
        });
    }

    /// Revokes every token of grant/session `sid`, remembered until `exp`.
    pub fn revoke_sid(&self, sid: impl AsRef<str>, exp: UnixTime) {
        let key = self.key(sid.as_ref());
        self.write(|s| {
            s.sid.insert(key, exp);
        });
    }

    /// Forgets entries whose `exp` is before `cutoff` (no token they name can be valid).
    pub fn prune(&self, cutoff: UnixTime) {
        self.write(|s| {
            s.jti.retain(|_, exp| *exp >= cutoff);
            s.sid.retain(|_, exp| *exp >= cutoff);
        });
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        let s = self.sets.read().unwrap_or_else(PoisonError::into_inner);
        s.jti.len() + s.sid.len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.empty.load(Ordering::Acquire)
    }

    fn write(&self, f: impl FnOnce(&mut Sets)) {
        let mut s = self.sets.write().unwrap_or_else(PoisonError::into_inner);
        f(&mut s);
        self.empty
            .store(s.jti.is_empty() && s.sid.is_empty(), Ordering::Release);
    }
}

impl RevocationCheck for RevocationList {
    fn is_revoked(&self, claims: &Claims, _now: UnixTime) -> bool {
        if self.is_empty() {
            return false;
        }
        let jti = claims.jti.as_deref().map(|j| self.key(j));
        let sid = claims.sid.as_deref().map(|s| self.key(s));
        let s = self.sets.read().unwrap_or_else(PoisonError::into_inner);
        jti.is_some_and(|j| s.jti.contains_key(&j)) || sid.is_some_and(|k| s.sid.contains_key(&k))
    }
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList")
            .field("entries", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revokes_by_jti_and_sid_until_exp() {
        let l = RevocationList::new();
        let t = UnixTime::from_secs(1000);
        let claims = Claims {
            jti: Some("j1".into()),
            sid: Some("s1".into()),
            ..Claims::default()
        };
        assert!(!l.is_revoked(&claims, t));
        l.revoke_sid("s1", UnixTime::from_secs(2000));
        assert!(l.is_revoked(&claims, t));
        l.prune(UnixTime::from_secs(2001));
        assert!(l.is_empty());
        l.revoke_jti("j1", UnixTime::from_secs(2000));
        assert!(l.is_revoked(&claims, t));
    }

    /// Each list draws its own key: the same id hashes differently in two lists, so
    /// knowing one guard's table says nothing about another's, and nobody can pick an
    /// id whose hash is a revoked one's.
    #[test]
    fn each_list_keys_its_hash_at_random() {
        let (a, b) = (RevocationList::new(), RevocationList::new());
        assert!(a.key.is_some() && a.key != Some([0; 16]));
        assert_ne!(a.key, b.key);
        assert!(a.key("jti-1") != b.key("jti-1"));
        assert!(a.key("jti-1") == a.key("jti-1"));
        assert!(a.key("jti-1") != a.key("jti-2"));
        // The fallback without an RNG still separates ids.
        let unkeyed = RevocationList {
            key: None,
            ..RevocationList::new()
        };
        assert!(unkeyed.key("jti-1") != unkeyed.key("jti-2"));
    }
}
