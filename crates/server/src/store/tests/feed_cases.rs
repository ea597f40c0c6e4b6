//! Store cases of the feed's wake-up (push revocation): every writer of feed entries
//! wakes the readers, on both backends, and on PostgreSQL across store instances (two
//! replicas on one database).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::fixtures::{alice_and_bob, client, client_grant, grant, revoked, t, user};
use crate::store::*;

/// Longest wait for one wake-up: generous, as the test machine may be loaded; a missing
/// wake-up fails the test at this bound.
const WAKE: Duration = Duration::from_secs(10);

/// Waits for the listener to be up: PostgreSQL rings once when its `LISTEN` is in place
/// (commits before it notified nobody); SQLite's signal needs nothing.
async fn listening(s: &dyn Store, rx: &mut watch::Receiver<()>) {
    if s.database_time().await.unwrap().is_some() {
        tokio::time::timeout(WAKE, rx.changed())
            .await
            .expect("the listener starts")
            .unwrap();
    }
    rx.borrow_and_update();
}

/// Runs `write`, then asserts that `rx` was woken for it.
async fn wakes(what: &str, rx: &mut watch::Receiver<()>, write: impl Future<Output = ()>) {
    write.await;
    tokio::time::timeout(WAKE, rx.changed())
        .await
        .unwrap_or_else(|_| panic!("{what} woke nobody"))
        .unwrap();
    rx.borrow_and_update();
}

pub(super) async fn every_feed_writer_wakes_the_readers(s: Arc<dyn Store>) {
    let mut rx = s.feed_changes();
    listening(&*s, &mut rx).await;
    alice_and_bob(&*s).await;
    s.insert_user(&user("u3", "carol")).await.unwrap();
    s.insert_user(&user("u4", "dave")).await.unwrap();
    for (g, u) in [
        ("g1", "u1"),
        ("g2", "u1"),
        ("g3", "u2"),
        ("g4", "u3"),
        ("g5", "u4"),
        ("g6", "u1"),
    ] {
        s.insert_grant(&grant(g, u), None).await.unwrap();
    }
    s.insert_client(&client("web")).await.unwrap();
    s.insert_grant(&client_grant("g7", "id-web"), None)
        .await
        .unwrap();

    wakes("revoke_jti", &mut rx, async {
        assert!(s.revoke_jti("j1", t(600), t(1)).await.unwrap());
    })
    .await;
    wakes("revoke_grant", &mut rx, async {
        assert!(s.revoke_grant("g1", revoked(2)).await.unwrap());
    })
    .await;
    wakes("revoke_user_grants", &mut rx, async {
        assert_eq!(s.revoke_user_grants("u1", revoked(3)).await.unwrap(), 2);
    })
    .await;
    wakes("disable_user", &mut rx, async {
        s.disable_user("bob", revoked(4)).await.unwrap();
    })
    .await;
    wakes("set_password with eviction", &mut rx, async {
        s.set_password("carol", "$argon2id$y", Some(revoked(5)))
            .await
            .unwrap();
    })
    .await;
    wakes("remove_user", &mut rx, async {
        s.remove_user("dave", revoked(6)).await.unwrap();
    })
    .await;
    wakes("remove_client", &mut rx, async {
        s.remove_client("id-web", revoked(7)).await.unwrap();
    })
    .await;
    // Each wake-up stood for entries now readable from the cursor.
    let read = s.revocations_after(0, 100, t(0)).await.unwrap();
    let mut names: Vec<String> = read
        .iter()
        .map(|e| e.jti.clone().or(e.sid.clone()).unwrap())
        .collect();
    names.sort();
    let mut want = ["j1", "g1", "g2", "g6", "g3", "g4", "g5", "g7"]
        .map(String::from)
        .to_vec();
    want.push(client_credentials_sid("id-web"));
    want.sort();
    assert_eq!(names, want);
}

/// PostgreSQL, two store instances on one database (two replicas): a commit through one
/// wakes a reader of the other, which then reads the entry from its cursor.
pub(super) async fn a_commit_on_one_replica_wakes_the_other(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let mut rx = b.feed_changes();
    listening(&*b, &mut rx).await;
    let before = b.last_revocation_seq().await.unwrap();
    wakes("a revocation on the other replica", &mut rx, async {
        assert!(a.revoke_jti("j-remote", t(600), t(1)).await.unwrap());
    })
    .await;
    let read = b.revocations_after(before, 10, t(0)).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].jti.as_deref(), Some("j-remote"));
    // A repeat that writes nothing (the jti is known) may or may not wake; a revocation of
    // a grant through `b` wakes `a`'s readers as well.
    let mut rx_a = a.feed_changes();
    listening(&*a, &mut rx_a).await;
    alice_and_bob(&*a).await;
    a.insert_grant(&grant("g-remote", "u1"), None)
        .await
        .unwrap();
    wakes("a grant revoked on the other replica", &mut rx_a, async {
        assert!(b.revoke_grant("g-remote", revoked(2)).await.unwrap());
    })
    .await;
}
