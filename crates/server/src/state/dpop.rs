//! What this node keeps for DPoP (RFC 9449): the server nonces, computed rather than
//! stored, and the replay cache of proof `jti`s.
//!
//! A nonce is HMAC-SHA256 (key derived from the master key and the issuer) over a time
//! step, so every replica of a deployment computes the same nonces with no shared state; the current step, the next one
//! (a replica whose clock runs ahead) and [`PAST_STEPS`] previous ones are accepted. The
//! replay cache (`tessera_token::dpop::ReplayCache`, the guard's too) is per node,
//! bounded in entries ([`MAX_PROOFS`], shared by all clients) and in time (an entry ends
//! one second after its proof's `iat` leaves the window); docs/security.md says why per
//! node is enough.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_token::UnixTime;
use tessera_token::dpop::ReplayCache;

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

/// This node's replay cache: entries owned by the client that presented the proof, one
/// client holding at most 1/[`CLIENT_SHARE`] of [`MAX_PROOFS`].
pub(crate) fn replay_cache() -> ReplayCache {
    ReplayCache::new(MAX_PROOFS, CLIENT_SHARE)
}

#[cfg(test)]
mod tests {
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
}
