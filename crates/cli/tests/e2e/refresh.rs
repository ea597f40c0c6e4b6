//! The refresh token grant: rotation, reuse detection, concurrency and grace.

use std::collections::HashSet;
use std::sync::Arc;

use crate::harness::{PASSWORD, Reply, Server};

struct Login {
    id: String,
    secret: String,
}

fn setup(s: &Server) -> Login {
    let (id, secret) = s.add_client("web", "password,refresh_token", "a b", &[]);
    s.add_user("alice", PASSWORD);
    Login {
        id,
        secret: secret.unwrap(),
    }
}

async fn login(s: &Server, c: &Login) -> Reply {
    let r = s
        .token(
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            Some((&c.id, &c.secret)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r
}

async fn refresh(s: &Server, c: &Login, rt: &str, scope: Option<&str>) -> Reply {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    s.token(&form, Some((&c.id, &c.secret))).await
}

#[tokio::test]
async fn rotation_and_reuse_detection() {
    let s = Server::start();
    let c = setup(&s);
    let first = login(&s, &c).await;
    let rt1 = first.str("refresh_token");
    let sid = crate::harness::verify(&s, &first.str("access_token"), &s.base)
        .await
        .sid
        .clone();

    let r2 = refresh(&s, &c, &rt1, None).await;
    assert_eq!(r2.status, 200, "{:?}", r2.json);
    let rt2 = r2.str("refresh_token");
    assert_ne!(rt1, rt2);
    let claims = crate::harness::verify(&s, &r2.str("access_token"), &s.base).await;
    assert_eq!(claims.sid, sid, "same family");
    assert_eq!(r2.json["scope"], "a b");

    // Narrowing is allowed, widening is not.
    let r3 = refresh(&s, &c, &rt2, Some("a")).await;
    assert_eq!(r3.json["scope"], "a");
    let rt3 = r3.str("refresh_token");
    refresh(&s, &c, &rt3, Some("a c"))
        .await
        .assert_error(400, "invalid_scope");

    // Reuse of rt1 revokes the family: rt3 dies too.
    refresh(&s, &c, &rt1, None)
        .await
        .assert_error(400, "invalid_grant");
    refresh(&s, &c, &rt3, None)
        .await
        .assert_error(400, "invalid_grant");

    // Garbage and another client's token are invalid_grant.
    refresh(&s, &c, "tsr_rt_garbage", None)
        .await
        .assert_error(400, "invalid_grant");
    let fresh = login(&s, &c).await.str("refresh_token");
    let (other, other_secret) = s.add_client("other", "refresh_token", "", &[]);
    let r = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &fresh)],
            Some((&other, &other_secret.unwrap())),
        )
        .await;
    r.assert_error(400, "invalid_grant");
}

async fn race(s: Arc<Server>, c: Arc<Login>, rt: String, n: usize) -> Vec<Reply> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (s, c, rt) = (Arc::clone(&s), Arc::clone(&c), rt.clone());
        tasks.push(tokio::spawn(
            async move { refresh(&s, &c, &rt, None).await },
        ));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_refreshes_without_grace_have_one_winner() {
    // Fifty connections from one address: more than the default per-source cap (32).
    let s = Arc::new(Server::start_with("max_connections_per_ip = 100\n", &[]));
    let c = Arc::new(setup(&s));
    let rt = login(&s, &c).await.str("refresh_token");
    let replies = race(Arc::clone(&s), c, rt, 50).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "exactly one refresh wins");
    for r in replies.iter().filter(|r| r.status != 200) {
        r.assert_error(400, "invalid_grant");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_within_grace_share_one_successor() {
    let s = Arc::new(Server::start_with("refresh_reuse_grace_secs = 30\n", &[]));
    let c = Arc::new(setup(&s));
    let rt = login(&s, &c).await.str("refresh_token");
    let replies = race(Arc::clone(&s), Arc::clone(&c), rt, 20).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| &r.json).collect::<Vec<_>>()
    );
    let successors: HashSet<String> = replies.iter().map(|r| r.str("refresh_token")).collect();
    assert_eq!(successors.len(), 1, "no fork");
    let next = successors.into_iter().next().unwrap();
    assert_eq!(
        refresh(&s, &c, &next, None).await.status,
        200,
        "the successor works"
    );
}
