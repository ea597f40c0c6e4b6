//! Fuzzes DPoP proof verification (RFC 9449) and `htu` normalisation.
//!
//! Input not starting with `{` is taken as a compact proof. Input starting with `{` is
//! `HEADER\nCLAIMS` JSON: the harness puts the fixed Ed25519 public key into the header's
//! `jwk` when the header has none, and signs it with that key, so verification gets past
//! the signature into the header and claim rules. Nothing may panic, an accepted proof
//! must match the request it was checked against, and its `jkt` must be the thumbprint of
//! its `jwk` deserialized as a `Jwk` (the proof reads the header's key in place; this
//! checks that reading against serde's).

#![no_main]

use std::sync::LazyLock;

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tessera_token::dpop::{ProofCheck, normalize_htu, verify_proof};
use tessera_token::{Jwk, UnixTime};

/// The Ed25519 key of RFC 8037 appendix A.1, so every crash reproduces.
const SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const PUBLIC: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const URL: &str = "https://auth.example/token";
const NOW: i64 = 1_800_000_000;

// A fixed key that fails to load is a broken harness: failing loudly is intended.
#[allow(clippy::unwrap_used)]
static PAIR: LazyLock<Ed25519KeyPair> = LazyLock::new(|| {
    let seed = URL_SAFE_NO_PAD.decode(SEED).unwrap();
    let public = URL_SAFE_NO_PAD.decode(PUBLIC).unwrap();
    Ed25519KeyPair::from_seed_and_public_key(&seed, &public).unwrap()
});

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = normalize_htu(input);
    if input.starts_with('{') {
        let Some((header, claims)) = input.split_once('\n') else {
            return;
        };
        let header = match serde_json::from_str::<serde_json::Value>(header) {
            Ok(serde_json::Value::Object(mut h)) => {
                h.entry("jwk").or_insert_with(
                    || serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": PUBLIC}),
                );
                serde_json::Value::Object(h).to_string()
            }
            _ => header.to_owned(),
        };
        let mut proof = URL_SAFE_NO_PAD.encode(header);
        proof.push('.');
        proof.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let sig = PAIR.sign(proof.as_bytes());
        proof.push('.');
        proof.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        check(&proof);
    } else {
        check(input);
    }
});

fn check(proof: &str) {
    let now = UnixTime::from_secs(NOW);
    let request = ProofCheck::new("POST", URL, now);
    if let Ok(verified) = verify_proof(proof, &request) {
        assert!(!verified.jti.is_empty(), "empty jti accepted");
        assert!(
            (verified.iat.secs() - NOW).abs() <= 60,
            "stale iat accepted"
        );
        let header = proof.split('.').next().unwrap_or_default();
        let jwk = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
            .and_then(|h| serde_json::from_value::<Jwk>(h["jwk"].clone()).ok());
        let thumbprint = jwk.and_then(|j| (!j.is_private()).then(|| j.thumbprint().ok()).flatten());
        assert_eq!(
            thumbprint.as_deref(),
            Some(verified.jkt.as_str()),
            "the accepted key is not the key serde reads"
        );
    }
}
