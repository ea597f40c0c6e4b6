//! Per-client request rates, in memory on each node (governor's GCRA keyed by client id),
//! timed by the server's [`Clock`]: `/revoke` answers 429 with `Retry-After` beyond the
//! configured rate, so one client cannot turn revocation into a write amplifier.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::oauth::OAuthError;

/// The server's clock as governor's: the time since the Unix epoch (whole seconds; the
/// rate evens out over a second, which is all a per-minute quota needs).
#[derive(Debug, Clone)]
struct AppClock(Arc<dyn Clock>);

impl GovernorClock for AppClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.0.now().secs()).unwrap_or(0))
    }
}

/// Requests per minute per client, with a burst of the same size.
pub(crate) struct ClientRateLimit {
    limiter: RateLimiter<String, HashMapStateStore<String>, AppClock, NoOpMiddleware<Duration>>,
    clock: AppClock,
}

impl ClientRateLimit {
    /// `per_minute` requests a minute per client (bursts up to that many).
    pub(crate) fn per_minute(per_minute: NonZeroU32, clock: Arc<dyn Clock>) -> Self {
        let clock = AppClock(clock);
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

impl std::fmt::Debug for ClientRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRateLimit")
            .field("clients", &self.limiter.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use tessera_token::UnixTime;

    #[test]
    fn each_client_has_its_own_budget_and_it_refills() {
        let clock = Arc::new(ManualClock::new(UnixTime::from_secs(1_000_000)));
        let limit = ClientRateLimit::per_minute(NonZeroU32::new(3).unwrap(), clock.clone());
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
        clock.advance(20);
        limit.check("a").expect("one request back every 20 s");
        assert!(limit.check("a").is_err());
        clock.advance(60);
        for _ in 0..3 {
            limit.check("a").unwrap();
        }
        assert!(
            limit.check("a").is_err(),
            "the burst never exceeds the rate"
        );
    }
}
