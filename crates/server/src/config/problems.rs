//! Collecting configuration problems: every bad value is one line naming the key, the
//! rule it breaks and where to set it, and the checks go on with the default in its place.

use std::fmt;
use std::time::Duration;

use super::layers;
use crate::Error;

/// A configuration error for `key`: its value, the rule it breaks, and where to set it.
pub(crate) fn invalid(key: &str, value: impl fmt::Display, rule: &str) -> Error {
    Error::Config(format!(
        "config: {key} = {value} is invalid: {rule}; {}",
        layers::where_to_set(key)
    ))
}

/// The problems found while resolving a configuration, in order.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<String>);

impl Problems {
    /// Records `e` (one line per problem it holds).
    pub(crate) fn push(&mut self, e: Error) {
        self.0.extend(e.to_string().lines().map(str::to_owned));
    }

    /// The value of `r`, or `None` with its error recorded.
    pub(crate) fn take<T>(&mut self, r: Result<T, Error>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    /// [`secs_in`], or the default with the problem recorded.
    pub(super) fn secs(
        &mut self,
        key: &str,
        v: Option<u64>,
        default: u64,
        lo: u64,
        hi: u64,
    ) -> Duration {
        self.take(secs_in(key, v, default, lo, hi))
            .unwrap_or(Duration::from_secs(default))
    }

    /// `v` (or `default`) when within `lo..=hi`, else the default with the problem recorded.
    pub(super) fn within<T>(&mut self, key: &str, v: Option<T>, default: T, lo: T, hi: T) -> T
    where
        T: Copy + PartialOrd + fmt::Display,
    {
        let v = v.unwrap_or(default);
        if (lo..=hi).contains(&v) {
            v
        } else {
            self.push(invalid(key, v, &format!("must be between {lo} and {hi}")));
            default
        }
    }

    /// `Ok` when nothing was recorded, else one [`Error::Config`] with a line per problem.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(self.0.join("\n")))
        }
    }
}

/// Checks `v` (seconds) is within `lo..=hi`.
fn secs_in(key: &str, v: Option<u64>, default: u64, lo: u64, hi: u64) -> Result<Duration, Error> {
    let v = v.unwrap_or(default);
    if (lo..=hi).contains(&v) {
        Ok(Duration::from_secs(v))
    } else {
        Err(invalid(key, v, &format!("must be between {lo} and {hi}")))
    }
}

/// Checks `v` (days) is within `lo..=hi`.
pub(super) fn days_in(
    key: &str,
    v: Option<u64>,
    default: u64,
    lo: u64,
    hi: u64,
) -> Result<Duration, Error> {
    let v = v.unwrap_or(default);
    if (lo..=hi).contains(&v) {
        Ok(Duration::from_secs(v * 86_400))
    } else {
        Err(invalid(key, v, &format!("must be between {lo} and {hi}")))
    }
}
