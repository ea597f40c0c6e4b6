//! One push subscription as a sequence of pages: first what is new after the
//! subscriber's cursor (read from the store, as a pull would), then each batch the hub
//! publishes, filtered by the cursor, until the subscription's time is up or the server
//! drains. Pages are produced only as the connection takes them: a subscriber that does
//! not read holds no growing buffer, only its place.

use std::sync::Arc;

use tokio::time::Instant;

use super::hub::{Subscription, closed};
use super::{MAX_LIMIT, Page, page};
use crate::clock::Clock;
use crate::store::Store;

/// What a subscription sends next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Entries after the previous cursor (the first page may be empty: it tells the
    /// subscriber where it stands).
    Page(Page),
    /// The last event: the subscriber resumes from its cursor, here or elsewhere.
    End(Ending),
}

/// Why a subscription ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It reached `feed_subscription_max_secs`: subscribe again at once.
    MaxAge,
    /// The server is draining: subscribe again (another replica answers), polling meanwhile.
    Draining,
    /// The store failed: poll, and subscribe again later.
    Unavailable,
}

impl Ending {
    /// The name sent in the final event.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ending::MaxAge => "max_age",
            Ending::Draining => "draining",
            Ending::Unavailable => "unavailable",
        }
    }
}

/// One subscription's state.
#[derive(Debug)]
pub(crate) struct Subscriber {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sub: Subscription,
    cursor: i64,
    /// Whether pages must be read from the store (at the start, after `has_more`, or when
    /// the hub published past what this subscriber saw).
    behind: bool,
    /// The first page goes out even when empty.
    opened: bool,
    ends: Instant,
    done: bool,
}

impl Subscriber {
    /// A subscription resuming after `cursor` (already checked), ending at `ends`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        mut sub: Subscription,
        cursor: i64,
        ends: Instant,
    ) -> Self {
        // What the hub published before now is in the store: the first read covers it.
        sub.tail.borrow_and_update();
        Subscriber {
            store,
            clock,
            sub,
            cursor,
            behind: true,
            opened: false,
            ends,
            done: false,
        }
    }

    /// The next thing to send; `None` after the final event.
    pub(crate) async fn next(&mut self) -> Option<Pushed> {
        if self.done {
            return None;
        }
        loop {
            if *self.sub.closing.borrow() {
                return self.end(Ending::Draining);
            }
            if self.behind {
                let p = match page(&*self.store, self.cursor, MAX_LIMIT, self.clock.now()).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation feed subscription cannot read the feed; ending it");
                        return self.end(Ending::Unavailable);
                    }
                };
                self.behind = p.has_more;
                self.cursor = p.cursor;
                if !p.entries.is_empty() || !self.opened {
                    self.opened = true;
                    return Some(Pushed::Page(p));
                }
            }
            let published = tokio::select! {
                biased;
                () = closed(&mut self.sub.closing) => return self.end(Ending::Draining),
                () = tokio::time::sleep_until(self.ends) => return self.end(Ending::MaxAge),
                r = self.sub.tail.changed() => r.is_ok(),
            };
            if !published {
                return self.end(Ending::Draining);
            }
            let tail = Arc::clone(&self.sub.tail.borrow_and_update());
            if tail.after > self.cursor {
                // Batches went by unseen (this subscriber was slow): read them.
                self.behind = true;
                continue;
            }
            let entries: Vec<_> = tail
                .entries
                .iter()
                .filter(|e| e.seq > self.cursor)
                .cloned()
                .collect();
            self.cursor = self.cursor.max(tail.cursor);
            if !entries.is_empty() {
                return Some(Pushed::Page(Page {
                    entries,
                    cursor: self.cursor,
                    has_more: false,
                }));
            }
        }
    }

    fn end(&mut self, why: Ending) -> Option<Pushed> {
        self.done = true;
        Some(Pushed::End(why))
    }
}
