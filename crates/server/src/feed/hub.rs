//! This node's fan-out of the revocation feed to its push subscribers: one task reads
//! each new batch from the store once, on the store's wake-up, and publishes it in a
//! `watch` every subscription looks at; the per-client count of open subscriptions;
//! and the end of every subscription when the server starts draining.
//!
//! Idle, it costs one task waiting on the wake-up and one cheap read of the feed's
//! counter a second ([`CHECK_EVERY`]): no subscriber polls the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::{MAX_LIMIT, page};
use crate::clock::Clock;
use crate::store::{RevocationEntry, Store};

/// How often the fan-out also checks the feed's counter itself, in case a wake-up never
/// came: a `tessera` command beside a SQLite server writes the feed from another process,
/// and a PostgreSQL listening connection can die silently. One read of one row.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Pages the fan-out reads for one wake-up at most (the check picks up the rest).
const MAX_PAGES: usize = 100;

/// The newest batch the fan-out read: the live entries after `after`, up to `cursor`.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    pub(crate) after: i64,
    pub(crate) cursor: i64,
    pub(crate) entries: Vec<RevocationEntry>,
}

/// The fan-out, the subscription counts and the drain switch of one node.
#[derive(Debug)]
pub(crate) struct Hub {
    tail: watch::Sender<Arc<Tail>>,
    closing: watch::Sender<bool>,
    started: OnceLock<()>,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The client holds `feed_subscriptions_per_client` already.
    TooMany,
    /// The server is draining (lame duck): subscribe elsewhere, or later.
    Draining,
}

/// One open subscription: what it watches, and its place in its client's count (given
/// back when dropped, however the subscription ends).
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) tail: watch::Receiver<Arc<Tail>>,
    pub(crate) closing: watch::Receiver<bool>,
    _held: Held,
}

#[derive(Debug)]
struct Held {
    open: Arc<Mutex<HashMap<String, usize>>>,
    client: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
        metrics::gauge!(crate::metrics::FEED_SUBSCRIPTIONS).decrement(1.0);
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tail: watch::Sender::new(Arc::default()),
            closing: watch::Sender::new(false),
            started: OnceLock::new(),
            open: Arc::default(),
        }
    }
}

impl Hub {
    /// Opens a subscription for `client` if it holds fewer than `per_client` and the server
    /// is not draining; starts the fan-out on first use (inside the tokio runtime).
    pub(crate) fn subscribe(
        &self,
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        client: &str,
        per_client: usize,
    ) -> Result<Subscription, Refused> {
        if *self.closing.borrow() {
            return Err(Refused::Draining);
        }
        {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let n = open.entry(client.to_owned()).or_default();
            if *n >= per_client {
                return Err(Refused::TooMany);
            }
            *n += 1;
        }
        metrics::gauge!(crate::metrics::FEED_SUBSCRIPTIONS).increment(1.0);
        let held = Held {
            open: Arc::clone(&self.open),
            client: client.to_owned(),
        };
        self.started.get_or_init(|| {
            tokio::spawn(fan_out(
                Arc::clone(store),
                Arc::clone(clock),
                self.tail.clone(),
                self.closing.subscribe(),
            ));
        });
        Ok(Subscription {
            tail: self.tail.subscribe(),
            closing: self.closing.subscribe(),
            _held: held,
        })
    }

    /// Ends every subscription (each sends its final event) and refuses new ones: the
    /// server is draining.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Subscriptions open now, over all clients.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.values().sum()
    }
}

/// Resolves once `closing` turns true (or its sender is gone).
pub(crate) async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// The fan-out task: on each wake-up (or check that finds the counter moved) reads what
/// is new after its cursor and publishes it as the [`Tail`]. Ends when the hub closes.
async fn fan_out(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tail: watch::Sender<Arc<Tail>>,
    mut closing: watch::Receiver<bool>,
) {
    // Subscribed before the cursor is read: a commit in between wakes it.
    let mut wake = store.feed_changes();
    let mut cursor = None;
    loop {
        if let Some(after) = cursor {
            tokio::select! {
                biased;
                () = closed(&mut closing) => return,
                r = wake.changed() => if r.is_err() { return },
                () = tokio::time::sleep(CHECK_EVERY) => {
                    match store.last_revocation_seq().await {
                        Ok(last) if last > after => {}
                        _ => continue,
                    }
                }
            }
        } else if *closing.borrow() {
            return;
        }
        wake.borrow_and_update();
        match cursor {
            None => match store.last_revocation_seq().await {
                Ok(last) => {
                    // Published, so a subscriber that read the store before this (and
                    // missed what was committed in between) sees that it is behind.
                    tail.send_replace(Arc::new(Tail {
                        after: last,
                        cursor: last,
                        entries: Vec::new(),
                    }));
                    cursor = Some(last);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "revocation feed fan-out cannot read the feed; retrying");
                    tokio::time::sleep(CHECK_EVERY).await;
                }
            },
            Some(after) => cursor = Some(read_new(&*store, &*clock, &tail, after).await),
        }
    }
}

/// Reads and publishes every page after `after`; returns the new cursor (the last one
/// published: a failure leaves the rest to the next wake-up or check).
async fn read_new(
    store: &dyn Store,
    clock: &dyn Clock,
    tail: &watch::Sender<Arc<Tail>>,
    mut after: i64,
) -> i64 {
    for _ in 0..MAX_PAGES {
        match page(store, after, MAX_LIMIT, clock.now()).await {
            Ok(p) => {
                if p.cursor != after {
                    tail.send_replace(Arc::new(Tail {
                        after,
                        cursor: p.cursor,
                        entries: p.entries,
                    }));
                    after = p.cursor;
                }
                if !p.has_more {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "revocation feed fan-out cannot read the feed; retrying");
                break;
            }
        }
    }
    after
}
