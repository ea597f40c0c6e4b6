//! One push subscription as a sequence of pages: first what is new after the
//! subscriber's cursor (read from the store, as a pull would), then the batches the hub
//! published (from its ring; from the store only when the subscriber fell out of it),
//! filtered by the cursor, until the subscription's time is up, the server drains, the
//! fan-out stops reading the store, or the subscribing client is removed. Pages are produced only as the connection takes them: a subscriber that does
//! not read holds no growing buffer, only its place.

use std::sync::Arc;

use tokio::time::Instant;

use super::hub::{CHECK_EVERY, Subscription, closed, timed};
use super::{MAX_LIMIT, Page, page};
use crate::clock::Clock;
use crate::store::{RevocationEntry, Store, client_credentials_sid};

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
    /// The store failed (here, or in the node's fan-out): poll, and subscribe again later.
    Unavailable,
    /// The subscribing client was removed (its `cc_` entry went by).
    ClientRemoved,
}

impl Ending {
    /// The name sent in the final event.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ending::MaxAge => "max_age",
            Ending::Draining => "draining",
            Ending::Unavailable => "unavailable",
            Ending::ClientRemoved => "client_removed",
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
    /// The final event to send next, decided while sending a page.
    ending: Option<Ending>,
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
            ending: None,
            done: false,
        }
    }

    /// The next thing to send; `None` after the final event.
    pub(crate) async fn next(&mut self) -> Option<Pushed> {
        if self.done {
            return None;
        }
        if let Some(why) = self.ending {
            return self.end(why);
        }
        loop {
            if *self.sub.closing.borrow() {
                return self.end(Ending::Draining);
            }
            if self.behind {
                let read = timed(page(&*self.store, self.cursor, MAX_LIMIT, self.clock.now()));
                let p = match read.await {
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
                    return Some(self.send(p));
                }
            }
            let latest = Arc::clone(&self.sub.tail.borrow_and_update());
            if latest.cursor > self.cursor {
                let batches = self
                    .sub
                    .shared
                    .ring
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .after(self.cursor, MAX_LIMIT as usize);
                let Some(batches) = batches else {
                    // Fell out of the ring (or before it): read the store.
                    self.behind = true;
                    continue;
                };
                let entries: Vec<_> = batches
                    .iter()
                    .flat_map(|b| b.entries.iter())
                    .filter(|e| e.seq > self.cursor)
                    .cloned()
                    .collect();
                if let Some(last) = batches.last() {
                    self.cursor = self.cursor.max(last.cursor);
                }
                if !entries.is_empty() {
                    let has_more = self.cursor < latest.cursor;
                    return Some(self.send(Page {
                        entries,
                        cursor: self.cursor,
                        has_more,
                    }));
                }
                continue;
            }
            tokio::select! {
                biased;
                () = closed(&mut self.sub.closing) => return self.end(Ending::Draining),
                () = tokio::time::sleep_until(self.ends) => return self.end(Ending::MaxAge),
                r = self.sub.tail.changed() => if r.is_err() { return self.end(Ending::Draining) },
                () = tokio::time::sleep(CHECK_EVERY) => {
                    if !self.sub.shared.alive() {
                        tracing::warn!("revocation feed fan-out has not read the store lately; ending a subscription");
                        return self.end(Ending::Unavailable);
                    }
                }
            }
        }
    }

    /// `p` as the next event; if it revokes the subscribing client itself, the one after
    /// is the final event.
    fn send(&mut self, p: Page) -> Pushed {
        if p.entries.iter().any(|e| removes(e, self.sub.client())) {
            self.ending = Some(Ending::ClientRemoved);
        }
        Pushed::Page(p)
    }

    fn end(&mut self, why: Ending) -> Option<Pushed> {
        self.done = true;
        Some(Pushed::End(why))
    }
}

/// Whether `e` is the entry a removal of `client` feeds (its `cc_<id>` sid).
fn removes(e: &RevocationEntry, client: &str) -> bool {
    e.sid.as_deref() == Some(client_credentials_sid(client).as_str())
}
