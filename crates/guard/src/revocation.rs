//! The revocation hook: a check the guard runs on every accepted token (cache hits
//! included), and [`RevocationList`], the in-memory set the feed client fills.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use tessera_token::{Claims, UnixTime};

/// Decides whether an otherwise valid token was revoked. It runs on every request,
/// cache hits included, so it must be cheap and must not block on I/O.
pub trait RevocationCheck: Send + Sync + 'static {
    /// True when the token with these claims must be refused.
    fn is_revoked(&self, claims: &Claims, now: UnixTime) -> bool;
}

#[derive(Default)]
struct Sets {
    jti: HashMap<String, UnixTime>,
    sid: HashMap<String, UnixTime>,
}

/// Revoked `jti`s and `sid`s, each kept until its `exp` has passed.
#[derive(Default)]
pub struct RevocationList {
    sets: RwLock<Sets>,
    empty: AtomicBool,
}

impl RevocationList {
    /// An empty list.
    pub fn new() -> Self {
        RevocationList {
            sets: RwLock::default(),
            empty: AtomicBool::new(true),
        }
    }

    /// Revokes one access token by `jti`, remembered until `exp`.
    pub fn revoke_jti(&self, jti: impl Into<String>, exp: UnixTime) {
        self.write(|s| {
            s.jti.insert(jti.into(), exp);
        });
    }

    /// Revokes every token of grant/session `sid`, remembered until `exp`.
    pub fn revoke_sid(&self, sid: impl Into<String>, exp: UnixTime) {
        self.write(|s| {
            s.sid.insert(sid.into(), exp);
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
        let s = self.sets.read().unwrap_or_else(PoisonError::into_inner);
        claims.jti.as_ref().is_some_and(|j| s.jti.contains_key(j))
            || claims.sid.as_ref().is_some_and(|j| s.sid.contains_key(j))
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
}
