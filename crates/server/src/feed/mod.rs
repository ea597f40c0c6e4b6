//! The revocation feed (docs/revocation-feed.md): the one rule for reading a page from a
//! cursor, which the pull answer, the push subscriptions and this node's fan-out all
//! follow; [`hub`] fans new entries out to the push subscribers, [`stream`] is one
//! subscription's sequence of pages.

pub(crate) mod hub;
pub(crate) mod stream;
#[cfg(test)]
mod tests;

use tessera_token::UnixTime;

use crate::store::{RevocationEntry, Store, StoreError};

/// Default page size of a pull request.
pub(crate) const DEFAULT_LIMIT: u32 = 500;
/// Largest page, pulled or pushed.
pub(crate) const MAX_LIMIT: u32 = 1000;
/// How long past its `exp` an entry is still served (and kept by the janitor, whose
/// purge statements spell out the same 60): a guard accepts a token up to its `exp` plus
/// its leeway (30 s by default, at most 60 s), so a guard that catches up just after
/// `exp` must still learn of it.
pub(crate) const GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// One page of the feed: entries after a cursor, in revocation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) entries: Vec<RevocationEntry>,
    /// The cursor to resume after this page.
    pub(crate) cursor: i64,
    /// Whether more entries follow at once.
    pub(crate) has_more: bool,
}

/// The cursor `raw` names, if this server issued it: decimal digits only, from 0 to the
/// highest cursor handed out (`last`). Garbage, a sign, or a cursor from the future (or
/// from another server's database) is refused.
pub(crate) fn cursor(raw: &str, last: i64) -> Option<i64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|n| (0..=last).contains(n))
}

/// At most `limit` live entries after `after` (live: `exp` no more than [`GRACE`] ago).
/// With none, the cursor moves to the highest handed out: everything up to it is served
/// or expired.
pub(crate) async fn page(
    store: &dyn Store,
    after: i64,
    limit: u32,
    now: UnixTime,
) -> Result<Page, StoreError> {
    let last = store.last_revocation_seq().await?;
    let mut entries = store
        .revocations_after(after, limit + 1, now.saturating_sub(GRACE))
        .await?;
    let has_more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let cursor = match entries.last() {
        Some(e) => e.seq,
        None => after.max(last),
    };
    Ok(Page {
        entries,
        cursor,
        has_more,
    })
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    #[test]
    fn only_cursors_this_server_issued_are_accepted() {
        assert_eq!(cursor("0", 10), Some(0));
        assert_eq!(cursor("10", 10), Some(10));
        for bad in [
            "",
            "-1",
            "+1",
            "11",
            "1e3",
            " 1",
            "abc",
            "99999999999999999999",
            "١",
        ] {
            assert_eq!(cursor(bad, 10), None, "{bad:?}");
        }
    }
}
