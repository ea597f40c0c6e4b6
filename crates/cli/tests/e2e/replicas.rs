//! Several `tessera serve` replicas on one PostgreSQL database with one master key, each
//! property seen from both sides: start-up on an empty database, refresh races, revocation,
//! key rotation, login throttling, and a database restart under load.

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use tessera_guard::{Guard, GuardError, RemoteIssuer, Verifier};
use tessera_testkit::Postgres;
use tessera_token::{BearerToken, Validation};

use crate::harness::{BIN, PASSWORD, Reply, Server};

/// Behind one load balancer, replicas share one issuer.
const ISSUER: &str = "http://localhost:8080";

/// Two replicas on one database with one master key, a confidential client `web`
/// (password, refresh_token) and the user `alice`.
struct Replicas {
    a: Arc<Server>,
    b: Arc<Server>,
    web: (String, String),
    master_key: String,
    url: String,
}

impl Replicas {
    /// Starts both replicas at the same moment on a fresh, empty database of `pg`.
    fn start(pg: &Postgres, config: &str) -> Self {
        let config = format!("issuer = \"{ISSUER}\"\n{config}");
        let url = pg.fresh_database("replicas").unwrap();
        let master_key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let env = [("TESSERA_MASTER_KEY", master_key.as_str())];
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| Server::start_on(Some(&url), &config, &env));
            let b = scope.spawn(|| Server::start_on(Some(&url), &config, &env));
            (a.join().unwrap(), b.join().unwrap())
        });
        let (id, secret) = a.add_client("web", "password,refresh_token", "a", &[]);
        a.add_user("alice", PASSWORD);
        Replicas {
            a: Arc::new(a),
            b: Arc::new(b),
            web: (id, secret.unwrap()),
            master_key,
            url,
        }
    }

    fn web(&self) -> Option<(&str, &str)> {
        Some((&self.web.0, &self.web.1))
    }

    /// `tessera ARGS` against the shared database with the replicas' master key and config.
    fn cli(&self, args: &[&str]) -> Output {
        let dir = self.a.dir.path();
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.join("cli"))
            .arg("--config")
            .arg(dir.join("tessera.toml"))
            .args(["--database", &self.url])
            .args(args)
            .env("TESSERA_MASTER_KEY", &self.master_key)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tessera {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// The replicas on the e2e binary's shared cluster, or `None` (skip) without PostgreSQL.
fn replicas(config: &str) -> Option<Replicas> {
    Some(Replicas::start(crate::postgres::cluster()?, config))
}

async fn login(s: &Server, web: Option<(&str, &str)>) -> Reply {
    let r = s
        .token(
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            web,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r
}

async fn refresh(s: &Server, web: Option<(&str, &str)>, rt: &str) -> Reply {
    s.token(
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        web,
    )
    .await
}

/// `n` refreshes of `rt` at once, alternating between the replicas.
async fn race(r: &Replicas, rt: &str, n: usize) -> Vec<Reply> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = Arc::clone(if i.is_multiple_of(2) { &r.a } else { &r.b });
        let (web, rt) = (r.web.clone(), rt.to_owned());
        tasks.push(tokio::spawn(async move {
            refresh(&s, Some((&web.0, &web.1)), &rt).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn jwks_kids(s: &Server) -> Vec<String> {
    let r = s.get("/jwks.json", None).await;
    assert_eq!(r.status, 200);
    r.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid(token: &str) -> String {
    tessera_token::decode_unverified(token)
        .unwrap()
        .header
        .kid
        .unwrap()
}

/// Polls `f` until it holds; fails after 30 s.
async fn wait_for<F: AsyncFnMut() -> bool>(what: &str, mut f: F) {
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A resource server's guard whose keys come from `s`'s JWKS only.
fn guard_on(s: &Server) -> Guard {
    let issuer = RemoteIssuer::new(ISSUER)
        .jwks_uri(s.url("/jwks.json"))
        .unknown_kid_interval(Duration::ZERO);
    Guard::builder(
        Verifier::remote(issuer).unwrap(),
        Validation::access_token(ISSUER, ISSUER),
    )
    .build()
    .unwrap()
}

fn bearer(token: &str) -> BearerToken {
    BearerToken::new(token).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_started_at_once_on_an_empty_database_share_one_signing_key() {
    let Some(r) = replicas("") else { return };
    // Both migrated the same empty database at once; one of them created the first key.
    // One key per algorithm (EdDSA for access tokens, RS256 for ID tokens), not one per
    // replica.
    let (a, b) = (jwks_kids(&r.a).await, jwks_kids(&r.b).await);
    assert_eq!(
        a.len(),
        2,
        "one signing key per algorithm, not one per replica: {a:?}"
    );
    assert_eq!(a, b);
    let list: serde_json::Value =
        serde_json::from_slice(&r.cli(&["keys", "list", "--json"]).stdout).unwrap();
    let list = list.as_array().unwrap();
    let mut algs: Vec<&str> = list.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort_unstable();
    assert_eq!(algs, ["EdDSA", "RS256"], "{list:?}");
    assert!(list.iter().all(|k| k["state"] == "active"), "{list:?}");
    // A token signed by one replica verifies with the other's JWKS.
    let at = login(&r.b, r.web()).await.str("access_token");
    guard_on(&r.a).verify(&bearer(&at)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_refreshes_of_one_token_across_replicas_have_one_winner() {
    let Some(r) = replicas("refresh_reuse_grace_secs = 0\n") else {
        return;
    };
    let rt = login(&r.b, r.web()).await.str("refresh_token");
    let replies = race(&r, &rt, 50).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "exactly one refresh wins across replicas");
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(400, "invalid_grant");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_within_grace_hand_out_one_successor() {
    let Some(r) = replicas("refresh_reuse_grace_secs = 30\n") else {
        return;
    };
    let rt = login(&r.a, r.web()).await.str("refresh_token");
    let replies = race(&r, &rt, 20).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| &r.json).collect::<Vec<_>>()
    );
    let successors: HashSet<String> = replies.iter().map(|r| r.str("refresh_token")).collect();
    assert_eq!(
        successors.len(),
        1,
        "no fork: the shared master key derives one successor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_on_one_replica_is_refused_by_the_other_and_fed_by_both() {
    let Some(r) = replicas("") else { return };
    let (rs_id, rs_secret) = r.a.add_client("api", "client_credentials", "", &[]);
    let rs_secret = rs_secret.unwrap();
    let rs = Some((rs_id.as_str(), rs_secret.as_str()));
    let introspect = async |s: &Server, token: &str, who: Option<(&str, &str)>| {
        let reply = s.post_form("/introspect", &[("token", token)], who).await;
        assert_eq!(reply.status, 200, "{:?}", reply.json);
        reply.json
    };
    let first = login(&r.a, r.web()).await;
    let (at1, rt1) = (first.str("access_token"), first.str("refresh_token"));
    let second = login(&r.b, r.web()).await;
    let (at2, rt2) = (second.str("access_token"), second.str("refresh_token"));
    let sid1 = introspect(&r.b, &at1, rs).await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let jti2 = introspect(&r.b, &at2, rs).await["jti"]
        .as_str()
        .unwrap()
        .to_owned();

    // On A (RFC 7009): the first login's refresh token (its family) and the second's
    // access token.
    let revoke = async |token: &str, hint: &str| {
        r.a.post_form(
            "/revoke",
            &[("token", token), ("token_type_hint", hint)],
            r.web(),
        )
        .await
    };
    assert_eq!(revoke(&rt1, "refresh_token").await.status, 200);
    assert_eq!(revoke(&at2, "access_token").await.status, 200);

    // B refuses both, and what was not revoked still works there.
    refresh(&r.b, r.web(), &rt1)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(introspect(&r.b, &at1, rs).await, json!({ "active": false }));
    assert_eq!(introspect(&r.b, &at2, rs).await, json!({ "active": false }));
    assert_eq!(
        introspect(&r.b, &rt1, r.web()).await,
        json!({ "active": false })
    );
    assert_eq!(refresh(&r.b, r.web(), &rt2).await.status, 200);

    // Both feeds carry both entries, in the same order with the same cursor.
    let feed_a = r.a.get("/revocations", rs).await;
    let feed_b = r.b.get("/revocations", rs).await;
    assert_eq!(feed_b.status, 200, "{:?}", feed_b.json);
    assert_eq!(feed_a.json, feed_b.json);
    let entries = feed_b.json["revoked"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["sid"], sid1.as_str());
    assert_eq!(entries[1]["jti"], jti2.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotated_on_the_database_is_published_by_both_and_verified_across() {
    let Some(r) = replicas("jwks_cache_ttl_secs = 2\nkey_refresh_interval_secs = 1\n") else {
        return;
    };
    let old_kid = kid(&login(&r.a, r.web()).await.str("access_token"));
    let out = r.cli(&["keys", "rotate", "--alg", "EdDSA"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("published "));
    let list: serde_json::Value =
        serde_json::from_slice(&r.cli(&["keys", "list", "--json"]).stdout).unwrap();
    let new_kid = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "EdDSA")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .find(|k| *k != old_kid)
        .unwrap();

    // Each replica publishes the new key, then signs with it.
    for s in [&r.a, &r.b] {
        wait_for("the new key is published", async || {
            jwks_kids(s).await.contains(&new_kid)
        })
        .await;
    }
    let mut signed = Vec::new();
    for s in [&r.a, &r.b] {
        let mut token = String::new();
        wait_for("the new key signs", async || {
            token = login(s, r.web()).await.str("access_token");
            kid(&token) == new_kid
        })
        .await;
        signed.push(token);
    }
    let [by_a, by_b] = <[String; 2]>::try_from(signed).unwrap();

    // A guard on either replica's JWKS verifies what the other signed.
    let (guard_a, guard_b) = (guard_on(&r.a), guard_on(&r.b));
    let who = guard_b.verify(&bearer(&by_a)).await.unwrap();
    assert_eq!(who.client_id.as_deref(), Some(r.web.0.as_str()));
    guard_a.verify(&bearer(&by_b)).await.unwrap();
    // A forged signature is still refused.
    let (head, sig) = by_a.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let forged = format!("{head}.{flipped}{}", &sig[1..]);
    assert!(matches!(
        guard_b.verify(&bearer(&forged)).await,
        Err(GuardError::InvalidToken(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_are_counted_across_replicas() {
    const LIMIT: usize = 4;
    let Some(r) = replicas(&format!(
        "login_failures_per_account = {LIMIT}\nlogin_max_block_secs = 60\n"
    )) else {
        return;
    };
    let wrong = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "a wrong guess"),
    ];
    // Wrong passwords, alternating between the replicas, until one answers 429. Counted
    // per replica, neither would block before 2 * LIMIT - 1 failures; counted in the shared
    // database, the block starts at LIMIT (or at LIMIT + 1 if the first, one-second block
    // ended before the next attempt).
    let mut failures: usize = 0;
    let blocked = loop {
        let s = if failures.is_multiple_of(2) {
            &r.a
        } else {
            &r.b
        };
        let reply = s.token(&wrong, r.web()).await;
        if reply.status == 429 {
            break reply;
        }
        reply.assert_error(400, "invalid_grant");
        failures += 1;
        assert!(failures < 2 * LIMIT, "no block after {failures} failures");
    };
    blocked.assert_error(429, "temporarily_unavailable");
    assert!(blocked.headers.contains_key("retry-after"));
    assert!(
        (LIMIT..=LIMIT + 1).contains(&failures),
        "blocked after {failures} failures, limit {LIMIT}"
    );
}

/// One client's refresh chain under load: the last refresh token it was given, and every
/// token it has used successfully.
#[derive(Debug, Default)]
struct Chain {
    last: String,
    used: Vec<String>,
    unavailable: u32,
    /// Why the chain ended early, with how many 503s had come just before; any entry
    /// fails the test.
    unexpected: Vec<String>,
}

/// Refreshes its own chain from `first` on `s` until `stop`, counting successes in
/// `done`; 503s are retried with the same token on the same replica, which must answer
/// with the successor even when the rotation had committed before the 503.
async fn run_chain(
    s: Arc<Server>,
    web: (String, String),
    first: String,
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Chain {
    let web = Some((web.0.as_str(), web.1.as_str()));
    let mut chain = Chain {
        last: first,
        ..Chain::default()
    };
    let mut after_503 = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let reply = refresh(&s, web, &chain.last).await;
        match reply.status.as_u16() {
            200 => {
                after_503 = 0;
                let next = reply.str("refresh_token");
                chain.used.push(std::mem::replace(&mut chain.last, next));
                done.fetch_add(1, Ordering::Relaxed);
                // A steady load, not a flood: the checks afterwards visit every token.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            503 if reply.error() == "temporarily_unavailable" => {
                after_503 += 1;
                chain.unavailable += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            status => {
                chain.unexpected.push(format!(
                    "{status} {} after {after_503} consecutive 503s",
                    reply.json
                ));
                break;
            }
        }
    }
    if !stop.load(Ordering::Relaxed) {
        // Ended early: do not hold up the waits for progress; the checks say why.
        done.fetch_add(1 << 20, Ordering::Relaxed);
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_loses_no_refresh_token_and_reuses_none() {
    const CHAINS: usize = 4;
    // A cluster of its own: stopping the shared one would break the other tests.
    let Some(pg) = tessera_testkit::postgres() else {
        return;
    };
    let Postgres::Started(cluster) = &pg else {
        eprintln!("SKIPPED: an external TESSERA_TEST_DATABASE_URL cannot be stopped");
        return;
    };
    let r = Replicas::start(&pg, "refresh_reuse_grace_secs = 0\n");
    let on = |i: usize| if i.is_multiple_of(2) { &r.a } else { &r.b };
    let stop = Arc::new(AtomicBool::new(false));
    let done: Vec<Arc<AtomicUsize>> = (0..CHAINS).map(|_| Arc::default()).collect();
    let mut firsts = Vec::new();
    for i in 0..CHAINS {
        firsts.push(login(on(i), r.web()).await.str("refresh_token"));
    }
    let tasks: Vec<_> = firsts
        .into_iter()
        .zip(&done)
        .enumerate()
        .map(|(i, (first, done))| {
            let (s, web) = (Arc::clone(on(i)), r.web.clone());
            tokio::spawn(run_chain(
                s,
                web,
                first,
                Arc::clone(done),
                Arc::clone(&stop),
            ))
        })
        .collect();
    // Every chain refreshes at least twice before, and twice after, the outage.
    let progressed = |since: Vec<usize>| {
        let done = &done;
        async move || {
            done.iter()
                .zip(&since)
                .all(|(d, s)| d.load(Ordering::Relaxed) >= s + 2)
        }
    };
    let counts = || done.iter().map(|d| d.load(Ordering::Relaxed)).collect();
    wait_for("load before the outage", progressed(vec![0; CHAINS])).await;
    // The load keeps running on the other worker threads meanwhile.
    tokio::task::block_in_place(|| cluster.stop()).unwrap();
    // Longer than a request waits for a connection (3 s), so requests see the outage.
    tokio::time::sleep(Duration::from_secs(6)).await;
    tokio::task::block_in_place(|| cluster.start_server()).unwrap();
    for s in [&r.a, &r.b] {
        wait_for("the replica is ready again", async || {
            s.get("/readyz", None).await.status == 200
        })
        .await;
    }
    wait_for("load after the outage", progressed(counts())).await;
    stop.store(true, Ordering::Relaxed);
    let mut chains = Vec::new();
    for t in tasks {
        chains.push(t.await.unwrap());
    }

    for (i, c) in chains.iter().enumerate() {
        assert!(
            c.unexpected.is_empty(),
            "chain {i} ended early: {:?}",
            c.unexpected
        );
    }
    // What the outage hit (it varies from run to run): rotations whose acknowledgement
    // was lost and whose retry got the successor, and context updates skipped after a
    // committed rotation.
    let logs = format!("{}{}", r.a.log(), r.b.log());
    eprintln!(
        "503s: {}; retries answered after an unconfirmed rotation: {}; skipped context updates: {}",
        chains.iter().map(|c| c.unavailable).sum::<u32>(),
        logs.matches("answered with its successor").count(),
        logs.matches("could not record the refresh context").count(),
    );
    assert!(
        chains.iter().any(|c| c.unavailable > 0),
        "the outage was not seen under load"
    );
    let active = async |s: &Server, rt: &str| {
        let reply = s.post_form("/introspect", &[("token", rt)], r.web()).await;
        assert_eq!(reply.status, 200, "{:?}", reply.json);
        reply.json["active"] == true
    };
    for (i, c) in chains.iter().enumerate() {
        let s = on(i + 1);
        // Looked at without using them (RFC 7662): every used token is spent, the last
        // one given is live.
        for used in &c.used {
            assert!(!active(s, used).await, "chain {i}: a used token is live");
        }
        assert!(active(s, &c.last).await, "chain {i} lost its last token");
        // Not lost: the last token each client was given refreshes, exactly once.
        let reply = refresh(s, r.web(), &c.last).await;
        assert_eq!(
            reply.status, 200,
            "chain {i} lost its token: {:?}",
            reply.json
        );
        refresh(s, r.web(), &c.last)
            .await
            .assert_error(400, "invalid_grant");
        // Never twice: no used token refreshes (that reuse also revoked the family).
        for used in &c.used {
            refresh(s, r.web(), used)
                .await
                .assert_error(400, "invalid_grant");
        }
    }
}

/// `CHAINS` clients, each refreshing its own chain as fast as it can for `SECONDS`,
/// spread over `servers`; returns rotations per second. Every reply must be a 200.
async fn rotation_rate(servers: &[Arc<Server>], web: &(String, String)) -> f64 {
    const CHAINS: usize = 16;
    const SECONDS: u64 = 10;
    let basic = Some((web.0.as_str(), web.1.as_str()));
    let mut firsts = Vec::new();
    for i in 0..CHAINS {
        let s = &servers[i % servers.len()];
        firsts.push(login(s, basic).await.str("refresh_token"));
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(SECONDS);
    let tasks: Vec<_> = firsts
        .into_iter()
        .enumerate()
        .map(|(i, mut rt)| {
            let (s, web) = (Arc::clone(&servers[i % servers.len()]), web.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let reply = refresh(&s, Some((&web.0, &web.1)), &rt).await;
                    assert_eq!(reply.status, 200, "{:?}", reply.json);
                    rt = reply.str("refresh_token");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// A measurement, not a test (docs/operations.md): refresh rotations per second over HTTP
/// with 16 concurrent clients for 10 s, on SQLite, on PostgreSQL, and on two PostgreSQL
/// replicas. Run it in release mode:
/// `cargo test --release -p tessera --test e2e refresh_rotations_per_second -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement; run explicitly in release mode"]
async fn refresh_rotations_per_second() {
    let sqlite = Arc::new(Server::start());
    let (id, secret) = sqlite.add_client("web", "password,refresh_token", "a", &[]);
    sqlite.add_user("alice", PASSWORD);
    let web = (id, secret.unwrap());
    let rate = rotation_rate(&[Arc::clone(&sqlite)], &web).await;
    eprintln!("SQLite, 1 server: {rate:.0} rotations/s");
    drop(sqlite);
    let Some(pg) = crate::postgres::cluster() else {
        return;
    };
    let r = Replicas::start(pg, "");
    let rate = rotation_rate(&[Arc::clone(&r.a)], &r.web).await;
    eprintln!("PostgreSQL, 1 server: {rate:.0} rotations/s");
    let rate = rotation_rate(&[Arc::clone(&r.a), Arc::clone(&r.b)], &r.web).await;
    eprintln!("PostgreSQL, 2 replicas: {rate:.0} rotations/s");
}
