//! This node's fan-out of the revocation feed to its push subscribers: one task reads
//! each new batch from the store once, on the store's wake-up, keeps the recent batches
//! in a bounded ring and announces each in a `watch` every subscription looks at (a
//! subscriber that fell behind catches up from the ring; only one that fell out of it
//! reads the store); the fan-out's liveness (when a store read last succeeded; the task
//! is restarted by the next subscription if it ended); the per-client and per-node
//! counts of open subscriptions; and the end of every subscription when the server
//! starts draining.
//!
//! Idle, it costs one task waiting on the wake-up and one cheap read of the feed's
//! counter a second ([`CHECK_EVERY`]): no subscriber polls the database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{MAX_LIMIT, page};
use crate::clock::Clock;
use crate::store::{RevocationEntry, Store, StoreError};

/// How often the fan-out also checks the feed's counter itself, in case a wake-up never
/// came: a `tessera` command beside a SQLite server writes the feed from another process,
/// and a PostgreSQL listening connection can die silently. One read of one row.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Pages the fan-out reads for one wake-up at most (the check picks up the rest).
const MAX_PAGES: usize = 100;
/// Longest a store call of the fan-out may take before it counts as failed.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// A fan-out with no successful store read for this long is dead: its subscriptions end
/// with `unavailable` (their subscribers poll, and subscribe again later).
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(8);
/// The ring keeps at most this many recent batches, and this many entries in them.
const RING_BATCHES: usize = 1024;
const RING_ENTRIES: usize = 10_000;

/// The newest batch the fan-out read: the live entries after `after`, up to `cursor`.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    pub(crate) after: i64,
    pub(crate) cursor: i64,
    pub(crate) entries: Vec<RevocationEntry>,
}

/// The recent batches, oldest first, each starting where the one before ended.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    batches: VecDeque<Arc<Tail>>,
    entries: usize,
}

impl Ring {
    fn push(&mut self, t: Arc<Tail>) {
        if self.batches.back().is_some_and(|b| b.cursor != t.after) {
            // Not contiguous (the fan-out started over): what is held no longer chains.
            self.batches.clear();
            self.entries = 0;
        }
        self.entries += t.entries.len();
        self.batches.push_back(t);
        while self.batches.len() > RING_BATCHES
            || (self.entries > RING_ENTRIES && self.batches.len() > 1)
        {
            if let Some(old) = self.batches.pop_front() {
                self.entries -= old.entries.len();
            }
        }
    }

    /// The batches after `cursor`, up to about `limit` entries, if the ring reaches back
    /// to `cursor`; `None` when the subscriber fell out of it.
    pub(crate) fn after(&self, cursor: i64, limit: usize) -> Option<Vec<Arc<Tail>>> {
        let start = self.batches.iter().position(|b| b.cursor > cursor)?;
        if self.batches[start].after > cursor {
            return None;
        }
        let mut out = Vec::new();
        let mut n = 0;
        for b in self.batches.iter().skip(start) {
            if n > 0 && n + b.entries.len() > limit {
                break;
            }
            n += b.entries.len();
            out.push(Arc::clone(b));
        }
        Some(out)
    }
}

/// What a subscription shares with the fan-out: the ring, and when the fan-out's store
/// read last succeeded.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) ring: Mutex<Ring>,
    pub(crate) last_ok: Mutex<Instant>,
}

impl Shared {
    /// Whether the fan-out read the store successfully within [`STALE_AFTER`].
    pub(crate) fn alive(&self) -> bool {
        self.last_ok
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            < STALE_AFTER
    }

    fn ok(&self) {
        *self.last_ok.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn publish(&self, tail: &watch::Sender<Arc<Tail>>, t: Tail) {
        let t = Arc::new(t);
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&t));
        tail.send_replace(t);
    }
}

/// The fan-out, the subscription counts and the drain switch of one node.
#[derive(Debug)]
pub(crate) struct Hub {
    tail: watch::Sender<Arc<Tail>>,
    closing: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The client holds `feed_subscriptions_per_client` already.
    TooMany,
    /// The node holds `feed_subscriptions_max` already: poll, or subscribe elsewhere.
    Full,
    /// The server is draining (lame duck): subscribe elsewhere, or later.
    Draining,
}

/// One open subscription: what it watches, and its place in its client's count (given
/// back when dropped, however the subscription ends).
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) tail: watch::Receiver<Arc<Tail>>,
    pub(crate) closing: watch::Receiver<bool>,
    pub(crate) shared: Arc<Shared>,
    held: Held,
}

impl Subscription {
    /// The client holding it.
    pub(crate) fn client(&self) -> &str {
        &self.held.client
    }
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
            task: Mutex::new(None),
            shared: Arc::new(Shared {
                ring: Mutex::default(),
                last_ok: Mutex::new(Instant::now()),
            }),
            open: Arc::default(),
        }
    }
}

impl Hub {
    /// Opens a subscription for `client` if it holds fewer than `per_client`, the node
    /// fewer than `total`, and the server is not draining; starts the fan-out on first use
    /// and again if it ended (inside the tokio runtime).
    pub(crate) fn subscribe(
        &self,
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        client: &str,
        per_client: usize,
        total: usize,
    ) -> Result<Subscription, Refused> {
        if *self.closing.borrow() {
            return Err(Refused::Draining);
        }
        {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            if open.values().sum::<usize>() >= total {
                return Err(Refused::Full);
            }
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
        {
            let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
            if task.as_ref().is_none_or(JoinHandle::is_finished) {
                if task.is_some() {
                    tracing::warn!("revocation feed fan-out had ended; restarting it");
                }
                self.shared.ok();
                *task = Some(tokio::spawn(fan_out(
                    Arc::clone(store),
                    Arc::clone(clock),
                    self.tail.clone(),
                    Arc::clone(&self.shared),
                    self.closing.subscribe(),
                )));
            }
        }
        Ok(Subscription {
            tail: self.tail.subscribe(),
            closing: self.closing.subscribe(),
            shared: Arc::clone(&self.shared),
            held,
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
    shared: Arc<Shared>,
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
                    match timed(store.last_revocation_seq()).await {
                        Ok(last) => {
                            shared.ok();
                            if last <= after {
                                continue;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "revocation feed fan-out cannot read the feed's counter");
                            continue;
                        }
                    }
                }
            }
        } else if *closing.borrow() {
            return;
        }
        wake.borrow_and_update();
        match cursor {
            None => match timed(store.last_revocation_seq()).await {
                Ok(last) => {
                    shared.ok();
                    // Published, so a subscriber that read the store before this (and
                    // missed what was committed in between) sees that it is behind.
                    shared.publish(
                        &tail,
                        Tail {
                            after: last,
                            cursor: last,
                            entries: Vec::new(),
                        },
                    );
                    cursor = Some(last);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "revocation feed fan-out cannot read the feed; retrying");
                    tokio::time::sleep(CHECK_EVERY).await;
                }
            },
            Some(after) => cursor = Some(read_new(&*store, &*clock, &tail, &shared, after).await),
        }
    }
}

/// Reads and publishes every page after `after`; returns the new cursor (the last one
/// published: a failure leaves the rest to the next wake-up or check).
async fn read_new(
    store: &dyn Store,
    clock: &dyn Clock,
    tail: &watch::Sender<Arc<Tail>>,
    shared: &Shared,
    mut after: i64,
) -> i64 {
    for _ in 0..MAX_PAGES {
        match timed(page(store, after, MAX_LIMIT, clock.now())).await {
            Ok(p) => {
                shared.ok();
                if p.cursor != after {
                    shared.publish(
                        tail,
                        Tail {
                            after,
                            cursor: p.cursor,
                            entries: p.entries,
                        },
                    );
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

/// `call`, failed after [`STORE_TIMEOUT`]: a hung store read must not hang the fan-out.
pub(crate) async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(STORE_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::Backend("revocation feed read timed out".into())))
}
