//! The raw cryptographic floors for `bench/run.sh`: times aws-lc-rs verifying one Ed25519
//! and one P-256 signature over a 600-byte signing input (the size of a Tessera access
//! token's `header.payload`) with the public key parsed once, signing that input with
//! Ed25519 (the least a client-credentials token costs), and SHA-256 of a 620-byte token
//! (the verified-token cache's key), and prints one machine-readable line per figure with
//! the CPU time per operation.
//!
//! CPU time, not wall time (`/proc/thread-self/stat`), so a busy machine inflates it less;
//! the harness pins it to the servers' CPU with `--pinned`.

// A benchmark fixture that cannot be built should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey};

/// CPU time this thread has used (user + system), in clock ticks.
fn thread_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Runs `op` for about `for_how_long` and returns microseconds of CPU per run.
fn time(mut op: impl FnMut(), for_how_long: Duration) -> f64 {
    for _ in 0..200 {
        op();
    }
    let (start, t0) = (Instant::now(), thread_ticks());
    let mut n = 0u64;
    while start.elapsed() < for_how_long {
        for _ in 0..100 {
            op();
        }
        n += 100;
    }
    let cpu_s = (thread_ticks() - t0) as f64 / ticks_per_second();
    cpu_s * 1e6 / n as f64
}

/// Microseconds of CPU per verify of `sig` over `input`.
fn verify(key: &ParsedPublicKey, input: &[u8], sig: &[u8], for_how_long: Duration) -> f64 {
    time(
        || {
            black_box(key.verify_sig(black_box(input), black_box(sig))).unwrap();
        },
        for_how_long,
    )
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map_or(2.0, |s| s.parse().expect("seconds"));
    let how_long = Duration::from_secs_f64(secs);
    let rng = SystemRandom::new();
    let input = vec![b'e'; 600];

    let ed = Ed25519KeyPair::generate().unwrap();
    let ed_sig = ed.sign(&input);
    let ed_pub = ParsedPublicKey::new(&signature::ED25519, ed.public_key().as_ref()).unwrap();
    let us = verify(&ed_pub, &input, ed_sig.as_ref(), how_long);
    println!("RAW alg=EdDSA cpu_us={us:.1}");
    let us = time(
        || {
            black_box(ed.sign(black_box(&input)));
        },
        how_long,
    );
    println!("RAW sign alg=EdDSA cpu_us={us:.1}");
    let token = vec![b't'; 620];
    let us = time(
        || {
            black_box(digest::digest(&digest::SHA256, black_box(&token)));
        },
        how_long,
    );
    println!("RAW sha256 bytes={} cpu_us={us:.2}", token.len());

    let es_doc =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let es = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, es_doc.as_ref())
        .unwrap();
    let es_sig = es.sign(&rng, &input).unwrap();
    let es_pub = ParsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        es.public_key().as_ref(),
    )
    .unwrap();
    let us = verify(&es_pub, &input, es_sig.as_ref(), how_long);
    println!("RAW alg=ES256 cpu_us={us:.1}");
}
