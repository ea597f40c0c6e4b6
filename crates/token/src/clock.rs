//! Time, injected: the one [`Clock`] trait the server and the guard share. Only
//! [`SystemClock`] reads the wall clock (`clippy.toml` bans `SystemTime::now` elsewhere), so
//! tests inject a [`ManualClock`] and need no sleeps for expiry.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use crate::UnixTime;

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> UnixTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place that reads the wall clock; everything else asks a Clock"
    )]
    fn now(&self) -> UnixTime {
        UnixTime::from(SystemTime::now())
    }
}

/// A clock that moves only when told to: for tests of expiry without sleeping.
#[derive(Default)]
pub struct ManualClock(AtomicI64);

/// How far [`ManualClock::advance`] moves: whole seconds (`i64`) or a [`Duration`]
/// (sub-second parts are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockStep(i64);

impl From<i64> for ClockStep {
    fn from(secs: i64) -> Self {
        ClockStep(secs)
    }
}

impl From<Duration> for ClockStep {
    fn from(d: Duration) -> Self {
        ClockStep(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: UnixTime) -> Self {
        ManualClock(AtomicI64::new(now.secs()))
    }

    /// Sets the time.
    pub fn set(&self, now: UnixTime) {
        self.0.store(now.secs(), Ordering::SeqCst);
    }

    /// Moves the time forward by `step`: seconds (`clock.advance(600)`) or a
    /// [`Duration`] (`clock.advance(Duration::from_secs(600))`).
    pub fn advance(&self, step: impl Into<ClockStep>) {
        let ClockStep(secs) = step.into();
        // Saturating, as `UnixTime`'s own arithmetic is: a test's huge step must not wrap.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(secs))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_secs(self.0.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(UnixTime::from_secs(100));
        assert_eq!(c.now().secs(), 100);
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now().secs(), 105);
        c.advance(10);
        assert_eq!(c.now().secs(), 115);
        c.set(UnixTime::from_secs(7));
        assert_eq!(c.now().secs(), 7);
        c.advance(Duration::MAX);
        assert_eq!(c.now().secs(), i64::MAX);
        assert!(SystemClock.now().secs() > 1_700_000_000);
    }
}
