//! The push-revocation bench (issue 18): starts the real `tessera serve` on loopback,
//! opens N subscriptions to its revocation feed (raw HTTP/1.1, each its own task and
//! connection), then revokes R access tokens one after another and measures, for each,
//! the time from the `/revoke` answer to each subscriber holding the entry. Reports
//! p50/p99/max over every (subscriber, revocation), the p99 of "the last subscriber has
//! it", and the server's resident memory per subscription (VmRSS before and after the
//! subscriptions opened). Bounded: every wait has a deadline; the server is killed by
//! its PID at the end. Run by `bench/push.sh`.
//!
//!   push_fanout --tessera PATH [--subscribers N] [--revocations R]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for anything.
const DEADLINE: Duration = Duration::from_secs(60);

type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn cli(tessera: &str, data: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(tessera)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One subscriber: subscribes, then records when each `jti` first reaches it.
async fn subscriber(
    addr: String,
    auth: String,
    arrivals: Arrivals,
    opened: tokio::sync::mpsc::Sender<()>,
) {
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET /revocations HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\nauthorization: {auth}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut text = String::new();
    let mut first = true;
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let at = Instant::now();
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if first && text.contains("event: revoked") {
            first = false;
            let _ = opened.send(()).await;
        }
        // Whole events only; keep a partial one for the next read.
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let mut rest = event.as_str();
            while let Some(i) = rest.find("\"jti\":\"") {
                let tail = &rest[i + 7..];
                let j = &tail[..tail.find('"').unwrap()];
                arrivals
                    .lock()
                    .unwrap()
                    .entry(j.to_owned())
                    .or_default()
                    .push(at);
                rest = tail;
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let tessera = arg("--tessera", "target/release/tessera");
    let n: usize = arg("--subscribers", "1000").parse().unwrap();
    let rounds: usize = arg("--revocations", "20").parse().unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let config = work.path().join("tessera.toml");
    let cap = n + 64;
    std::fs::write(
        &config,
        format!(
            "max_connections = {cap}\nmax_connections_per_ip = {cap}\nfeed_subscriptions_per_client = {cap}\n"
        ),
    )
    .unwrap();
    let mut server = Command::new(&tessera)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .env("TESSERA_LOG", "warn,tessera=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id();
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx.recv_timeout(DEADLINE).expect("server started");
    let addr = base.trim_start_matches("http://").to_owned();
    let svc = cli(
        &tessera,
        &data,
        &[
            "client",
            "add",
            "svc",
            "--grant-types",
            "client_credentials",
            "--scope",
            "a",
            "--audience",
            "api",
            "--json",
        ],
    );
    let rs = cli(
        &tessera,
        &data,
        &[
            "client",
            "add",
            "rs",
            "--grant-types",
            "client_credentials",
            "--scope",
            "",
            "--json",
        ],
    );
    let basic = |v: &serde_json::Value| {
        use base64::Engine;
        let raw = format!(
            "{}:{}",
            v["client_id"].as_str().unwrap(),
            v["client_secret"].as_str().unwrap()
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let (svc_auth, rs_auth) = (basic(&svc), basic(&rs));

    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = resident_kib(pid);
    let arrivals: Arrivals = Arc::default();
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(n);
    for _ in 0..n {
        tokio::spawn(subscriber(
            addr.clone(),
            rs_auth.clone(),
            Arc::clone(&arrivals),
            opened_tx.clone(),
        ));
    }
    let start = Instant::now();
    for _ in 0..n {
        tokio::time::timeout(DEADLINE, opened_rx.recv())
            .await
            .expect("subscriptions open");
    }
    let open_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let subscribed_kib = resident_kib(pid);

    let http = reqwest::Client::new();
    let mut samples = Vec::new();
    let mut lasts = Vec::new();
    for _ in 0..rounds {
        let t: serde_json::Value = http
            .post(format!("{base}/token"))
            .header("authorization", &svc_auth)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let at = t["access_token"].as_str().unwrap().to_owned();
        let payload = at.split('.').nth(1).unwrap();
        let claims: serde_json::Value = {
            use base64::Engine;
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap()
        };
        let jti = claims["jti"].as_str().unwrap().to_owned();
        let r = http
            .post(format!("{base}/revoke"))
            .header("authorization", &svc_auth)
            .form(&[("token", at.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answered = Instant::now();
        let deadline = answered + DEADLINE;
        loop {
            let got = arrivals.lock().unwrap().get(&jti).map_or(0, Vec::len);
            if got >= n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {got} of {n} subscribers got the entry"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let times = arrivals.lock().unwrap().remove(&jti).unwrap();
        let mut last = 0.0f64;
        for t in times {
            let ms = t.saturating_duration_since(answered).as_secs_f64() * 1000.0;
            last = last.max(ms);
            samples.push(ms);
        }
        lasts.push(last);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples.sort_by(f64::total_cmp);
    lasts.sort_by(f64::total_cmp);
    println!("subscribers: {n} (opened in {open_secs:.2} s); revocations: {rounds}");
    println!(
        "per subscriber, /revoke answer -> entry received: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
    println!(
        "every subscriber has it (slowest of the {n}) per revocation: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lasts, 0.50),
        percentile(&lasts, 0.99),
        lasts[lasts.len() - 1]
    );
    println!(
        "server resident memory: {idle_kib} KiB idle, {subscribed_kib} KiB with {n} subscriptions: {:.1} KiB per subscription",
        (subscribed_kib.saturating_sub(idle_kib)) as f64 / n as f64
    );
    let _ = server.kill();
    let _ = server.wait();
}
