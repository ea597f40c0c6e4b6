//! In-memory limits of this server's logins, decided before the store is touched: one
//! check at a time for an account under attack from many networks (a login from a
//! network the account recently signed in from is not held to it), and the rate of the
//! "hash queue full" warning.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tessera_token::UnixTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Seconds a login refused for want of its turn is told to wait.
pub(crate) const TURN_RETRY_AFTER: u64 = 1;
/// Most targeted accounts remembered at once (each an entry until its window ends).
const MAX_TARGETED: usize = 10_000;
/// Seconds between two "hash queue full" warnings.
const BUSY_WARN_EVERY: i64 = 10;

/// The limits (one per server, in [`Core`](super::Core)).
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

    /// The turn of a login for `account`: none needed unless it is targeted, or when
    /// the login comes from a network the account recently signed in from (`known`);
    /// else its one turn if free at once, or `Err(retry_after)` (no queue to wait in, so
    /// guesses cannot line up ahead of the account's user).
    pub(crate) fn turn(&self, account: &str, known: bool, now: UnixTime) -> Result<Turn, u64> {
        if known {
            return Ok(None);
        }
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
        one.try_acquire_owned()
            .map(Some)
            .map_err(|_| TURN_RETRY_AFTER)
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
    use std::time::Duration;

    const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

    /// An untargeted account never waits; a targeted one gets one turn at a time, and a
    /// second login is refused with a short Retry-After; the turn comes back when the
    /// first is done, and the mark ends with its window.
    #[test]
    fn a_targeted_account_is_checked_one_at_a_time() {
        let l = Limits::default();
        assert!(l.turn("acct", false, NOW).unwrap().is_none());
        l.target("acct", NOW.saturating_add(Duration::from_secs(900)), NOW);
        let first = l.turn("acct", false, NOW).unwrap();
        assert!(first.is_some());
        assert_eq!(l.turn("acct", false, NOW).unwrap_err(), TURN_RETRY_AFTER);
        assert!(
            l.turn("other", false, NOW).unwrap().is_none(),
            "others unaffected"
        );
        drop(first);
        assert!(l.turn("acct", false, NOW).unwrap().is_some());
        let later = NOW.saturating_add(Duration::from_secs(900));
        assert!(
            l.turn("acct", false, later).unwrap().is_none(),
            "window over"
        );
    }

    /// While guesses hold (and queue for) a targeted account's turn, a login from a
    /// network the account recently signed in from needs no turn; a login from another
    /// network is refused at once rather than waiting in line, even when the turn comes
    /// back a moment later (the earlier code queued it for up to 2 s and let it in).
    #[tokio::test]
    async fn a_known_network_skips_the_turn_and_no_one_queues_for_it() {
        let l = Limits::default();
        l.target("acct", NOW.saturating_add(Duration::from_secs(900)), NOW);
        let guess = l.turn("acct", false, NOW).unwrap();
        assert!(guess.is_some());
        assert!(
            l.turn("acct", true, NOW).unwrap().is_none(),
            "known: no turn"
        );
        let (second, ()) = tokio::join!(async { l.turn("acct", false, NOW) }, async {
            tokio::task::yield_now().await;
            drop(guess);
        });
        assert_eq!(second.unwrap_err(), TURN_RETRY_AFTER, "no waiting in line");
        assert!(l.turn("acct", false, NOW).unwrap().is_some());
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
