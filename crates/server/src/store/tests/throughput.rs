//! Refresh rotations per second on each backend: ignored tests that print a figure and
//! assert nothing about time. Run with
//! `cargo test --release -p tessera-server rotation_throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use super::fixtures::{alice_and_bob, grant, t, token};
use crate::store::{RotateOutcome, Store};

/// Chains rotated at once (one per simulated client), and rotations per chain.
const CHAINS: usize = 16;
const PER_CHAIN: usize = 200;

async fn rotations_per_second(name: &str, s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    for (label, chains) in [("1 caller", 1), ("16 callers", CHAINS)] {
        let mut firsts = Vec::new();
        for c in 0..chains {
            let id = format!("{label}-{c}");
            let first = token(&id);
            s.insert_grant(&grant(&id, "u1"), Some(&first))
                .await
                .unwrap();
            firsts.push((id, first));
        }
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (id, first) in firsts {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                let mut parent = first.hash;
                for i in 0..PER_CHAIN {
                    let next = token(&id);
                    let out = s
                        .rotate_refresh_token(&parent, &next, t(i as i64), None)
                        .await
                        .unwrap();
                    assert_eq!(out, RotateOutcome::Rotated);
                    parent = next.hash;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let n = chains * PER_CHAIN;
        println!(
            "{name}, {label}: {n} rotations in {secs:.2} s = {:.0} rotations/s",
            n as f64 / secs
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, prints a figure"]
async fn rotation_throughput_sqlite() {
    let (s, _dir) = super::sqlite_store().await;
    rotations_per_second("sqlite (file, WAL, synchronous=NORMAL)", s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, prints a figure"]
async fn rotation_throughput_postgres() {
    let Some(s) = super::pg_store().await else {
        return;
    };
    rotations_per_second("postgres (testkit cluster, loopback, fsync=off)", s).await;
}

/// CPU time this process has used so far (user + system), seconds, from `/proc`.
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0 // CLK_TCK is 100 on Linux
}

/// One refresh-token lookup (the store read behind introspection and refresh) after
/// another: wall and CPU time per read, the floor under any endpoint that reads the store.
async fn lookups(name: &str, s: Arc<dyn Store>) {
    alice_and_bob(&*s).await;
    let first = token("lookup");
    s.insert_grant(&grant("lookup", "u1"), Some(&first))
        .await
        .unwrap();
    const N: u32 = 20_000;
    for _ in 0..1_000 {
        s.refresh_token(&first.hash).await.unwrap().unwrap();
    }
    let (start, cpu) = (Instant::now(), process_cpu_secs());
    for _ in 0..N {
        s.refresh_token(&first.hash).await.unwrap().unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = process_cpu_secs() - cpu;
    println!(
        "{name}: refresh_token lookup {:.1} us wall, {:.1} us CPU (all threads) per read",
        wall * 1e6 / f64::from(N),
        cpu * 1e6 / f64::from(N)
    );
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "measurement, prints a figure"]
async fn lookup_cost_sqlite() {
    let (s, _dir) = super::sqlite_store().await;
    lookups("sqlite (file, WAL)", s).await;
}

/// How long one janitor pass holds SQLite's write lock when nothing is due, over 200,000
/// live grants and refresh tokens: with the expiry indexes, then with them dropped (each
/// batch then scans its table). Prints the medians of five passes.
#[tokio::test(flavor = "current_thread")]
#[ignore = "measurement, prints a figure"]
async fn purge_cost_sqlite() {
    use sqlx::Connection;
    const ROWS: i64 = 200_000;
    let (s, dir) = super::sqlite_store().await;
    let path = dir.path().join(crate::store::sqlite::DB_FILE);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let fill = [
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO grants (id, client_id, user_id, scope, audience, created_at, expires_at) \
         SELECT 'g' || i, 'c', 'u', '', 'a', ?2, ?3 FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO refresh_tokens (hash, grant_id, issued_at, expires_at) \
         SELECT randomblob(32), 'g' || i, ?2, ?3 FROM n",
    ];
    for sql in fill {
        sqlx::query(sql)
            .bind(ROWS)
            .bind(t(0).secs())
            .bind(t(86_400).secs())
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let purge = crate::store::Purge {
        now: t(60),
        revoked_before: t(60),
        audit_before: t(60),
        batch: crate::store::PURGE_BATCH,
    };
    let median_ms = async || {
        let mut runs = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            assert_eq!(s.purge_expired(&purge).await.unwrap(), 0);
            runs.push(start.elapsed().as_secs_f64() * 1e3);
        }
        runs.sort_by(f64::total_cmp);
        runs[2]
    };
    let indexed = median_ms().await;
    for index in ["refresh_tokens_expires", "grants_expires", "grants_revoked"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {index}")))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let scanned = median_ms().await;
    println!(
        "sqlite janitor pass with nothing due over {ROWS} grants and refresh tokens: \
         {indexed:.2} ms with the expiry indexes, {scanned:.2} ms scanning"
    );
}
