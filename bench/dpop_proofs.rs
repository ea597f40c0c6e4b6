//! DPoP proofs for `bench/run.sh`: wrk cannot sign, and a proof is good for one request
//! (the replay cache refuses it twice), so the harness writes them ahead, right before
//! the row that spends them.
//!
//! ```sh
//! dpop_proofs --key KEY.pem --htm GET --htu URL --count N --out PREFIX --files T
//! ```
//!
//! `--key` is an Ed25519 PKCS#8 PEM file, generated (and its RFC 7638 thumbprint printed
//! as `JKT <thumbprint>`) if missing. Writes `count` proofs for `htm`/`htu`, one per line,
//! `iat` = now, each with a `jti` unique to this run, dealt round robin into `PREFIX.0`
//! .. `PREFIX.<T-1>` (one file per wrk thread, so no two threads spend one proof). With
//! `DPOP_ACCESS_TOKEN` set, each proof carries that token's `ath`.

// A benchmark fixture that cannot be built should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use clap::Parser;
use tessera_token::dpop::{access_token_hash, sign_proof};
use tessera_token::{Algorithm, Clock, SigningKey, SystemClock};

/// The most proofs one run may write (a bound on the harness's disk and wrk's memory).
const MAX_PROOFS: usize = 2_000_000;

#[derive(Parser)]
struct Args {
    /// The client's Ed25519 key (PKCS#8 PEM); generated if the file does not exist.
    #[arg(long)]
    key: PathBuf,
    /// The request method the proofs are for.
    #[arg(long, default_value = "GET")]
    htm: String,
    /// The request URL the proofs are for.
    #[arg(long)]
    htu: String,
    /// How many proofs.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Output prefix: the proofs go to PREFIX.0 .. PREFIX.<files - 1>.
    #[arg(long)]
    out: PathBuf,
    /// Number of output files (wrk threads).
    #[arg(long, default_value_t = 1)]
    files: usize,
}

fn main() {
    let args = Args::parse();
    assert!(args.count <= MAX_PROOFS, "at most {MAX_PROOFS} proofs");
    assert!(args.files >= 1, "at least one file");
    let key = match std::fs::read_to_string(&args.key) {
        Ok(pem) => SigningKey::from_pkcs8_pem(&pem).unwrap(),
        Err(_) => {
            let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
            std::fs::write(&args.key, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
            key
        }
    };
    println!("JKT {}", key.public_jwk().unwrap().thumbprint().unwrap());
    let ath = std::env::var("DPOP_ACCESS_TOKEN")
        .ok()
        .map(|t| access_token_hash(&t));
    let mut run = [0u8; 8];
    SystemRandom::new().fill(&mut run).unwrap();
    let run: String = run.iter().map(|b| format!("{b:02x}")).collect();
    let iat = SystemClock.now().secs();
    let mut outs: Vec<BufWriter<File>> = (0..args.files)
        .map(|i| {
            let mut path = args.out.clone().into_os_string();
            path.push(format!(".{i}"));
            BufWriter::new(File::create(path).unwrap())
        })
        .collect();
    for i in 0..args.count {
        let mut claims = serde_json::json!({
            "jti": format!("{run}-{i}"),
            "htm": args.htm,
            "htu": args.htu,
            "iat": iat,
        });
        if let Some(ath) = &ath {
            claims["ath"] = ath.as_str().into();
        }
        let proof = sign_proof(&key, &claims).unwrap();
        writeln!(outs[i % args.files], "{proof}").unwrap();
    }
    for mut out in outs {
        out.flush().unwrap();
    }
}
