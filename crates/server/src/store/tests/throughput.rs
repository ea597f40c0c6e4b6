//! Refresh rotations per second on each backend: ignored tests that print a figure and
//! assert nothing about time. Run with
//! `cargo test --release -p tessera-server rotation_throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use super::fixtures::{grant, t, token};
use crate::store::{RotateOutcome, Store};

/// Chains rotated at once (one per simulated client), and rotations per chain.
const CHAINS: usize = 16;
const PER_CHAIN: usize = 200;

async fn rotations_per_second(name: &str, s: Arc<dyn Store>) {
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
                        .rotate_refresh_token(&parent, &next, t(i as i64))
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
