//! In-memory limits of this server's logins, decided before the store is touched: one
//! check at a time for an account under attack from many networks, and the rate of the
//! "hash queue full" warning.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tessera_token::UnixTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a login for a targeted account waits for its turn before 429.
const TURN_WAIT: Duration = Duration::from_secs(2);
/// Seconds a login refused for want of its turn is told to wait.
pub(crate) const TURN_RETRY_AFTER: u64 = 1;
/// Most targeted accounts remembered at once (each an entry until its window ends).
const MAX_TARGETED: usize = 10_000;
/// Seconds between two "hash queue full" warnings.
const BUSY_WARN_EVERY: i64 = 10;

/// The limits (one per server, in [`crate::state::AppState`]).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    /// Accounts (name tags) whose failures over all networks reached the alarm level,
    /// with the end of that window and their one turn.
    targeted: Mutex<HashMap<String, (UnixTime, Arc<Semaphore>)>>,
    /// Busy refusals since the last warning.
    busy_refused: AtomicU64,
    /// When the last warning was written (Unix seconds).
    busy_warned_at: AtomicI64,
}

/// A targeted account's turn, held until its check is settled.
pub(crate) type Turn = Option<OwnedSemaphorePermit>;

impl Limits {
    /// Marks `account` as targeted until `until`: from then on its checks run one at a
    /// time on this server.
    pub(crate) fn target(&self, account: &str, until: UnixTime, now: UnixTime) {
        let mut map = self.targeted.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_TARGETED && !map.contains_key(account) {
            map.retain(|_, (end, _)| *end > now);
            if map.len() >= MAX_TARGETED {
                return;
            }
        }
        map.entry(account.to_owned())
            .and_modify(|(end, _)| *end = (*end).max(until))
            .or_insert_with(|| (until, Arc::new(Semaphore::new(1))));
    }

    /// The turn of a login for `account`: nothing to wait for unless it is targeted;
    /// then its one turn, waiting up to [`TURN_WAIT`] for it, or `Err(retry_after)`.
    pub(crate) async fn turn(&self, account: &str, now: UnixTime) -> Result<Turn, u64> {
        let one = {
            let mut map = self.targeted.lock().unwrap_or_else(PoisonError::into_inner);
            match map.get(account) {
                Some((end, one)) if *end > now => Arc::clone(one),
                Some(_) => {
                    map.remove(account);
                    return Ok(None);
                }
                None => return Ok(None),
            }
        };
        match tokio::time::timeout(TURN_WAIT, one.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(TURN_RETRY_AFTER),
        }
    }

    /// Counts a login refused for a full queue; true when a warning is due (at most one
    /// every [`BUSY_WARN_EVERY`] seconds), with the refusals it reports.
    pub(crate) fn busy(&self, now: UnixTime) -> Option<u64> {
        self.busy_refused.fetch_add(1, Ordering::Relaxed);
        let last = self.busy_warned_at.load(Ordering::Relaxed);
        let due = last == 0 || now.secs() >= last + BUSY_WARN_EVERY;
        (due && self
            .busy_warned_at
            .compare_exchange(
                last,
                now.secs().max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok())
        .then(|| self.busy_refused.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

    /// An untargeted account never waits; a targeted one gets one turn at a time, and a
    /// second login waits and is then refused with a short Retry-After; the turn comes
    /// back when the first is done, and the mark ends with its window.
    #[tokio::test]
    async fn a_targeted_account_is_checked_one_at_a_time() {
        let l = Limits::default();
        assert!(l.turn("acct", NOW).await.unwrap().is_none());
        l.target("acct", NOW.saturating_add(Duration::from_secs(900)), NOW);
        let first = l.turn("acct", NOW).await.unwrap();
        assert!(first.is_some());
        assert_eq!(l.turn("acct", NOW).await.unwrap_err(), TURN_RETRY_AFTER);
        assert!(
            l.turn("other", NOW).await.unwrap().is_none(),
            "others unaffected"
        );
        drop(first);
        assert!(l.turn("acct", NOW).await.unwrap().is_some());
        let later = NOW.saturating_add(Duration::from_secs(900));
        assert!(
            l.turn("acct", later).await.unwrap().is_none(),
            "window over"
        );
    }

    /// The warning is written at most once per interval and reports every refusal.
    #[test]
    fn the_busy_warning_is_rate_limited() {
        let l = Limits::default();
        assert_eq!(l.busy(NOW), Some(1));
        for _ in 0..1000 {
            assert_eq!(l.busy(NOW), None);
        }
        let later = NOW.saturating_add(Duration::from_secs(10));
        assert_eq!(l.busy(later), Some(1001));
    }
}
