//! Guard-side DPoP nonces (RFC 9449 section 9) without shared state: the nonce of a time
//! step is an HMAC of the step under a secret, so every instance configured with the same
//! secret issues and accepts the same nonces. The previous, current and next step's nonces
//! are accepted (the next one for an instance whose clock runs up to a step ahead), so a
//! nonce lives between one and two steps.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::{constant_time, hmac};
use tessera_token::UnixTime;

/// Domain separation: the secret may be shared with other uses.
const LABEL: &[u8] = b"tessera-guard dpop-nonce v1\0";

/// The nonce secret and step.
pub(crate) struct NonceKey {
    key: hmac::Key,
    step: i64,
}

impl NonceKey {
    /// Nonces from `secret`, changing every `step` (at least one second).
    pub(crate) fn new(secret: &[u8], step: Duration) -> Self {
        NonceKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            step: i64::try_from(step.as_secs().max(1)).unwrap_or(i64::MAX),
        }
    }

    fn at_step(&self, index: i64) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(LABEL);
        ctx.update(&index.to_be_bytes());
        let tag = ctx.sign();
        // 128 bits of the tag: unguessable, and short enough for a header.
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &tag.as_ref()[..16],
        )
    }

    fn index(&self, now: UnixTime) -> i64 {
        now.secs().div_euclid(self.step)
    }

    /// The nonce to hand out at `now`.
    pub(crate) fn current(&self, now: UnixTime) -> String {
        self.at_step(self.index(now))
    }

    /// True when `nonce` is the previous, current or next step's nonce.
    pub(crate) fn accepts(&self, nonce: &str, now: UnixTime) -> bool {
        let i = self.index(now);
        [i, i.saturating_sub(1), i.saturating_add(1)]
            .into_iter()
            .any(|step| {
                constant_time::verify_slices_are_equal(
                    nonce.as_bytes(),
                    self.at_step(step).as_bytes(),
                )
                .is_ok()
            })
    }
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceKey")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

    #[test]
    fn instances_with_one_secret_agree_and_nonces_expire() {
        let a = NonceKey::new(b"shared secret of the api fleet", Duration::from_secs(60));
        let b = NonceKey::new(b"shared secret of the api fleet", Duration::from_secs(60));
        let other = NonceKey::new(b"another deployment's secret", Duration::from_secs(60));
        let n = a.current(NOW);
        assert!(b.accepts(&n, NOW), "another instance accepts it");
        assert!(!other.accepts(&n, NOW), "another secret does not");
        assert!(
            b.accepts(&n, UnixTime::from_secs(NOW.secs() + 60)),
            "one step later"
        );
        assert!(
            !b.accepts(&n, UnixTime::from_secs(NOW.secs() + 121)),
            "two steps later"
        );
        assert!(!b.accepts("", NOW));
        // An instance whose clock runs a step ahead hands out a nonce the others take;
        // two steps ahead, not.
        let ahead = a.current(UnixTime::from_secs(NOW.secs() + 60));
        assert!(b.accepts(&ahead, NOW), "the next step's nonce");
        let far = a.current(UnixTime::from_secs(NOW.secs() + 120));
        assert!(!b.accepts(&far, NOW), "two steps ahead");
        assert!(!b.accepts(&format!("{n}x"), NOW));
    }
}
