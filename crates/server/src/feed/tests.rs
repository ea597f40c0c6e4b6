//! The fan-out and the subscriptions, over real stores (SQLite in memory; PostgreSQL with
//! two store instances on one database standing for two replicas): no router, no sockets.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tessera_token::UnixTime;
use tokio::time::Instant;

use super::hub::{Hub, Refused};
use super::stream::{Ending, Pushed, Subscriber};
use crate::clock::{Clock, ManualClock};
use crate::store::Store;
use crate::store::faulty::FaultyStore;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

const NOW: i64 = 1_800_000_000;
/// Longest wait for one page: a page that does not come fails the test at this bound.
const WAIT: Duration = Duration::from_secs(10);

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(UnixTime::from_secs(NOW)))
}

async fn sqlite() -> Arc<dyn Store> {
    Arc::new(SqliteStore::in_memory().await.unwrap())
}

async fn revoke(store: &dyn Store, jti: &str) {
    let now = UnixTime::from_secs(NOW);
    assert!(
        store
            .revoke_jti(jti, UnixTime::from_secs(NOW + 600), now)
            .await
            .unwrap()
    );
}

/// A subscriber after cursor `after` for `client`, open for an hour.
fn subscriber(
    hub: &Hub,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    client: &str,
    after: i64,
) -> Subscriber {
    let sub = hub.subscribe(store, clock, client, 10, 100).unwrap();
    Subscriber::new(
        Arc::clone(store),
        Arc::clone(clock),
        sub,
        after,
        Instant::now() + Duration::from_secs(3600),
    )
}

/// The jtis of the next page `s` sends.
async fn next_jtis(s: &mut Subscriber) -> Vec<String> {
    match tokio::time::timeout(WAIT, s.next()).await.expect("a page") {
        Some(Pushed::Page(p)) => p.entries.into_iter().filter_map(|e| e.jti).collect(),
        other => panic!("expected a page, got {other:?}"),
    }
}

#[tokio::test]
async fn a_revocation_reaches_every_subscriber_once() {
    let (store, clock, hub) = (sqlite().await, clock(), Hub::default());
    revoke(&*store, "before").await;
    let mut a = subscriber(&hub, &store, &clock, "c1", 0);
    let mut b = subscriber(&hub, &store, &clock, "c2", 1);
    // The first page is what is new after the subscriber's cursor, even when nothing is.
    assert_eq!(next_jtis(&mut a).await, ["before"]);
    assert_eq!(next_jtis(&mut b).await, Vec::<String>::new());
    revoke(&*store, "j1").await;
    assert_eq!(next_jtis(&mut a).await, ["j1"]);
    assert_eq!(next_jtis(&mut b).await, ["j1"]);
    revoke(&*store, "j2").await;
    assert_eq!(next_jtis(&mut a).await, ["j2"]);
    assert_eq!(next_jtis(&mut b).await, ["j2"]);
}

#[tokio::test]
async fn a_subscriber_that_fell_behind_gets_every_entry_once_from_the_store() {
    let (store, clock, hub) = (sqlite().await, clock(), Hub::default());
    let mut fast = subscriber(&hub, &store, &clock, "c1", 0);
    let mut slow = subscriber(&hub, &store, &clock, "c1", 0);
    assert!(next_jtis(&mut fast).await.is_empty());
    assert!(next_jtis(&mut slow).await.is_empty());
    // The slow one does not look while three batches are published one by one.
    for j in ["j1", "j2", "j3"] {
        revoke(&*store, j).await;
        assert_eq!(next_jtis(&mut fast).await, [j]);
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(next_jtis(&mut slow).await);
    }
    assert_eq!(got, ["j1", "j2", "j3"]);
    revoke(&*store, "j4").await;
    assert_eq!(
        next_jtis(&mut slow).await,
        ["j4"],
        "nothing again, nothing missed"
    );
}

#[tokio::test]
async fn subscriptions_are_counted_per_client_and_given_back() {
    let (store, clock, hub) = (sqlite().await, clock(), Hub::default());
    let a1 = hub.subscribe(&store, &clock, "a", 2, 100).unwrap();
    let _a2 = hub.subscribe(&store, &clock, "a", 2, 100).unwrap();
    assert_eq!(
        hub.subscribe(&store, &clock, "a", 2, 100).unwrap_err(),
        Refused::TooMany
    );
    // Another client has its own count.
    let _b = hub.subscribe(&store, &clock, "b", 2, 100).unwrap();
    assert_eq!(hub.open(), 3);
    drop(a1);
    assert_eq!(hub.open(), 2);
    let _a3 = hub.subscribe(&store, &clock, "a", 2, 100).unwrap();
}

#[tokio::test]
async fn draining_ends_every_subscription_and_refuses_new_ones() {
    let (store, clock, hub) = (sqlite().await, clock(), Hub::default());
    let mut s = subscriber(&hub, &store, &clock, "c1", 0);
    assert!(next_jtis(&mut s).await.is_empty());
    let waiting = tokio::spawn(async move {
        let last = s.next().await;
        (last, s.next().await)
    });
    tokio::task::yield_now().await;
    hub.close();
    let (last, after) = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(last, Some(Pushed::End(Ending::Draining)));
    assert_eq!(after, None);
    assert_eq!(
        hub.subscribe(&store, &clock, "c1", 10, 100).unwrap_err(),
        Refused::Draining
    );
    assert_eq!(hub.open(), 0, "the ended subscription gave its place back");
}

#[tokio::test]
async fn a_subscription_ends_at_its_time() {
    let (store, clock, hub) = (sqlite().await, clock(), Hub::default());
    let sub = hub.subscribe(&store, &clock, "c1", 10, 100).unwrap();
    let mut s = Subscriber::new(Arc::clone(&store), clock, sub, 0, Instant::now());
    assert!(next_jtis(&mut s).await.is_empty());
    assert_eq!(s.next().await, Some(Pushed::End(Ending::MaxAge)));
    assert_eq!(s.next().await, None);
}

#[tokio::test]
async fn a_commit_before_the_fan_out_first_reads_its_cursor_still_reaches_a_subscriber() {
    // The subscriber reads the store (cursor 0); an entry is committed; only then does the
    // fan-out, started by that subscription, read its first cursor (1). The entry is in no
    // batch the fan-out publishes: the subscriber must learn it is behind.
    let faulty = Arc::new(FaultyStore::new(sqlite().await));
    faulty.hold_next_feed_counter.store(true, Ordering::SeqCst);
    let store: Arc<dyn Store> = faulty.clone();
    let (clock, hub) = (clock(), Hub::default());
    let mut s = subscriber(&hub, &store, &clock, "c1", 0);
    tokio::time::timeout(WAIT, faulty.feed_counter_held.notified())
        .await
        .expect("the fan-out reads its cursor");
    assert!(next_jtis(&mut s).await.is_empty());
    revoke(&*store, "between").await;
    faulty.release_feed_counter.notify_one();
    assert_eq!(next_jtis(&mut s).await, ["between"]);
}

#[tokio::test]
async fn an_entry_written_by_another_process_reaches_the_subscribers() {
    // A `tessera` command beside a SQLite server writes through its own store: no
    // in-process wake-up; the fan-out's periodic check finds it.
    let dir = tempfile::tempdir().unwrap();
    let server: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let cli = SqliteStore::open(dir.path()).await.unwrap();
    let (clock, hub) = (clock(), Hub::default());
    let mut s = subscriber(&hub, &server, &clock, "c1", 0);
    assert!(next_jtis(&mut s).await.is_empty());
    revoke(&cli, "from-the-cli").await;
    assert_eq!(next_jtis(&mut s).await, ["from-the-cli"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_entry_committed_on_one_replica_reaches_the_others_subscribers() {
    let Some(url) = crate::store::tests::pg_url().await else {
        return;
    };
    let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    let (clock, hub_a, hub_b) = (clock(), Hub::default(), Hub::default());
    let mut on_a = subscriber(&hub_a, &a, &clock, "c1", 0);
    let mut on_b = subscriber(&hub_b, &b, &clock, "c1", 0);
    assert!(next_jtis(&mut on_a).await.is_empty());
    assert!(next_jtis(&mut on_b).await.is_empty());
    revoke(&*a, "on-a").await;
    assert_eq!(next_jtis(&mut on_b).await, ["on-a"]);
    assert_eq!(next_jtis(&mut on_a).await, ["on-a"]);
    revoke(&*b, "on-b").await;
    assert_eq!(next_jtis(&mut on_a).await, ["on-b"]);
    assert_eq!(next_jtis(&mut on_b).await, ["on-b"]);
}

#[tokio::test]
async fn an_entry_is_served_and_kept_for_the_grace_after_its_exp() {
    // A guard accepts a token up to exp + leeway: one catching up 30 s after exp must
    // still be told, and the janitor must not have purged the entry yet.
    let store = sqlite().await;
    let now = UnixTime::from_secs(NOW);
    let exp = UnixTime::from_secs(NOW - 30);
    assert!(
        store
            .revoke_jti("just-expired", exp, UnixTime::from_secs(NOW - 100))
            .await
            .unwrap()
    );
    let purge = |at: i64| crate::store::Purge {
        now: UnixTime::from_secs(at),
        revoked_before: UnixTime::from_secs(0),
        audit_before: UnixTime::from_secs(0),
        batch: 1000,
    };
    store.purge_expired(&purge(NOW)).await.unwrap();
    let p = super::page(&*store, 0, 10, now).await.unwrap();
    assert_eq!(p.entries.len(), 1, "served 30 s after its exp");
    let later = UnixTime::from_secs(NOW + 31);
    assert!(
        super::page(&*store, 0, 10, later)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    store.purge_expired(&purge(NOW + 31)).await.unwrap();
    assert_eq!(store.last_revocation_seq().await.unwrap(), 1);
    assert!(
        store
            .revocations_after(0, 10, UnixTime::from_secs(0))
            .await
            .unwrap()
            .is_empty(),
        "purged once past the grace"
    );
}

#[tokio::test]
async fn subscriptions_stop_at_the_node_cap() {
    let (store, clock, hub) = (sqlite().await, clock(), Hub::default());
    let a = hub.subscribe(&store, &clock, "a", 10, 2).unwrap();
    let _b = hub.subscribe(&store, &clock, "b", 10, 2).unwrap();
    assert_eq!(
        hub.subscribe(&store, &clock, "c", 10, 2).unwrap_err(),
        Refused::Full
    );
    drop(a);
    let _c = hub.subscribe(&store, &clock, "c", 10, 2).unwrap();
}

#[tokio::test]
async fn a_burst_reaches_subscribers_that_fell_behind_from_memory() {
    let faulty = Arc::new(FaultyStore::new(sqlite().await));
    let store: Arc<dyn Store> = faulty.clone();
    let (clock, hub) = (clock(), Hub::default());
    let mut subs: Vec<_> = (0..5)
        .map(|i| subscriber(&hub, &store, &clock, &format!("c{i}"), 0))
        .collect();
    for s in &mut subs {
        assert!(next_jtis(s).await.is_empty());
    }
    // The fan-out is running, past one entry every subscriber has (a fan-out task
    // that first ran after some of the burst was committed would start its ring
    // after them, and the subscribers would rightly read those from the store).
    let mut watcher = hub.subscribe(&store, &clock, "w", 10, 100).unwrap();
    revoke(&*store, "first").await;
    tokio::time::timeout(WAIT, watcher.tail.wait_for(|t| t.cursor == 1))
        .await
        .expect("the fan-out published the first entry")
        .unwrap();
    for s in &mut subs {
        assert_eq!(next_jtis(s).await, ["first"]);
    }
    // Nobody reads while the burst is committed and the fan-out publishes it.
    for i in 0..300 {
        revoke(&*store, &format!("j{i}")).await;
    }
    tokio::time::timeout(WAIT, watcher.tail.wait_for(|t| t.cursor == 301))
        .await
        .expect("the fan-out published the burst")
        .unwrap();
    let reads = faulty.feed_reads.load(Ordering::SeqCst);
    for s in &mut subs {
        let mut got = 0;
        while got < 300 {
            got += next_jtis(s).await.len();
        }
        assert_eq!(got, 300);
    }
    assert_eq!(
        faulty.feed_reads.load(Ordering::SeqCst),
        reads,
        "caught up from the hub's ring, not the store"
    );
}

#[tokio::test]
async fn a_fan_out_that_cannot_read_the_store_ends_its_subscriptions() {
    let faulty = Arc::new(FaultyStore::new(sqlite().await));
    let store: Arc<dyn Store> = faulty.clone();
    let (clock, hub) = (clock(), Hub::default());
    let mut s = subscriber(&hub, &store, &clock, "c1", 0);
    assert!(next_jtis(&mut s).await.is_empty());
    faulty.fail_feed_reads.store(true, Ordering::SeqCst);
    // Keep-alives alone would hold this subscription to a dead fan-out until its max age.
    let last = tokio::time::timeout(Duration::from_secs(30), s.next())
        .await
        .expect("ended well before its max age");
    assert_eq!(last, Some(Pushed::End(Ending::Unavailable)));
    faulty.fail_feed_reads.store(false, Ordering::SeqCst);
    let mut again = subscriber(&hub, &store, &clock, "c1", 0);
    assert!(next_jtis(&mut again).await.is_empty());
    revoke(&*store, "after").await;
    assert_eq!(next_jtis(&mut again).await, ["after"]);
}

#[tokio::test]
async fn removing_a_client_ends_its_subscriptions_and_no_others() {
    let (store, clock, hub) = (sqlite().await, clock(), Hub::default());
    store
        .insert_client(&crate::store::tests::fixtures::client("svc"))
        .await
        .unwrap();
    let mut gone = subscriber(&hub, &store, &clock, "id-svc", 0);
    let mut other = subscriber(&hub, &store, &clock, "other", 0);
    assert!(next_jtis(&mut gone).await.is_empty());
    assert!(next_jtis(&mut other).await.is_empty());
    let revoked = crate::store::Revoked {
        now: UnixTime::from_secs(NOW),
        access_exp: UnixTime::from_secs(NOW + 600),
    };
    store.remove_client("id-svc", revoked).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(WAIT, gone.next()).await.unwrap(),
        Some(Pushed::Page(_))
    ));
    assert_eq!(gone.next().await, Some(Pushed::End(Ending::ClientRemoved)));
    assert!(matches!(
        tokio::time::timeout(WAIT, other.next()).await.unwrap(),
        Some(Pushed::Page(_))
    ));
    revoke(&*store, "later").await;
    assert_eq!(next_jtis(&mut other).await, ["later"]);
}
