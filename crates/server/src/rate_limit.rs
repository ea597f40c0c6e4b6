//! Per-client request rates, in memory on each node (governor's GCRA keyed by client id),
//! timed by a monotonic clock: `/revoke` answers 429 with `Retry-After` beyond the
//! configured rate, so one client cannot turn revocation into a write amplifier. Not the
//! server's wall [`Clock`](crate::Clock): a step back of the system time would refuse every
//! recently seen client for the size of the step.

use std::num::NonZeroU32;

use governor::clock::{Clock as GovernorClock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::oauth::OAuthError;

/// Requests per minute per client, with a burst of the same size; timed by `C`
/// (monotonic in production, a manual clock in tests).
pub(crate) struct ClientRateLimit<C: GovernorClock = MonotonicClock> {
    limiter: RateLimiter<String, HashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl ClientRateLimit {
    /// `per_minute` requests a minute per client (bursts up to that many).
    pub(crate) fn per_minute(per_minute: NonZeroU32) -> Self {
        Self::with_clock(per_minute, MonotonicClock)
    }
}

impl<C: GovernorClock + Clone> ClientRateLimit<C> {
    /// As [`ClientRateLimit::per_minute`], timed by `clock`.
    fn with_clock(per_minute: NonZeroU32, clock: C) -> Self {
        ClientRateLimit {
            limiter: RateLimiter::hashmap_with_clock(Quota::per_minute(per_minute), clock.clone()),
            clock,
        }
    }

    /// Counts one request of `client_id`; past the rate, [`OAuthError::RateLimited`] with
    /// the whole seconds until the next request would be allowed (at least 1). Keys are
    /// authenticated client ids, so the map is bounded by the registered clients.
    pub(crate) fn check(&self, client_id: &str) -> Result<(), OAuthError> {
        self.limiter
            .check_key(&client_id.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                OAuthError::RateLimited {
                    retry_after: secs.max(1),
                }
            })
    }
}

impl<C: GovernorClock> std::fmt::Debug for ClientRateLimit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRateLimit")
            .field("clients", &self.limiter.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn each_client_has_its_own_budget_and_it_refills() {
        let clock = FakeRelativeClock::default();
        let limit = ClientRateLimit::with_clock(NonZeroU32::new(3).unwrap(), clock.clone());
        for _ in 0..3 {
            limit.check("a").unwrap();
        }
        match limit.check("a") {
            Err(OAuthError::RateLimited { retry_after }) => {
                assert!((1..=20).contains(&retry_after), "{retry_after}");
            }
            other => panic!("{other:?}"),
        }
        limit.check("b").expect("another client is not slowed down");
        clock.advance(Duration::from_secs(20));
        limit.check("a").expect("one request back every 20 s");
        assert!(limit.check("a").is_err());
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            limit.check("a").unwrap();
        }
        assert!(
            limit.check("a").is_err(),
            "the burst never exceeds the rate"
        );
    }
}
