//! Fuzzes JWS compact parsing and verification with one fixed EdDSA key and policy.
//!
//! Input not starting with `{` is taken as a compact token and goes through
//! `decode_unverified` and `KeySet::verify`. Input starting with `{` is JSON to sign:
//! `HEADER\nCLAIMS`, or `CLAIMS` alone under a fixed header. It is signed with the fixed
//! key, so `KeySet::verify` gets past the signature into the header and claims checks,
//! which a random token never reaches. Nothing may panic, and an accepted token must
//! satisfy the policy.

#![no_main]

use std::sync::LazyLock;

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tessera_token::{
    Algorithm, Jwk, KeySet, UnixTime, Validation, VerifyingKey, decode_unverified,
};

/// The Ed25519 key of RFC 8037 appendix A.1, so every crash reproduces.
const SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const PUBLIC: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "notes-api";
const NOW: i64 = 1_800_000_000;
const FIXED_HEADER: &str = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#;

struct Fixture {
    pair: Ed25519KeyPair,
    keys: KeySet,
    plain: Validation,
    access: Validation,
}

// A fixed key that fails to load is a broken harness: failing loudly is intended.
#[allow(clippy::unwrap_used)]
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let seed = URL_SAFE_NO_PAD.decode(SEED).unwrap();
    let public = URL_SAFE_NO_PAD.decode(PUBLIC).unwrap();
    let jwk = Jwk::from_json(
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{PUBLIC}","kid":"k1"}}"#).as_bytes(),
    )
    .unwrap();
    Fixture {
        pair: Ed25519KeyPair::from_seed_and_public_key(&seed, &public).unwrap(),
        keys: KeySet::new(vec![VerifyingKey::from_jwk(&jwk).unwrap()]).unwrap(),
        plain: Validation::new(ISSUER, AUDIENCE),
        access: Validation::access_token(ISSUER, AUDIENCE),
    }
});

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let f = &*FIXTURE;
    if input.starts_with('{') {
        let (header, claims) = input.split_once('\n').unwrap_or((FIXED_HEADER, input));
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let sig = f.pair.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        check(f, &token);
    } else {
        check(f, input);
    }
});

fn check(f: &Fixture, token: &str) {
    let _ = decode_unverified(token);
    let now = UnixTime::from_secs(NOW);
    for policy in [&f.plain, &f.access] {
        let Ok(verified) = f.keys.verify(token, policy, now) else {
            continue;
        };
        // Whatever passed must satisfy the policy it passed.
        assert_eq!(verified.algorithm(), Algorithm::EdDsa);
        assert_eq!(verified.kid(), Some("k1"));
        assert_eq!(verified.iss.as_deref(), Some(ISSUER));
        assert!(verified.aud.contains(AUDIENCE));
        let exp = verified.exp.map(UnixTime::secs);
        assert!(
            exp.is_some_and(|e| e.saturating_add(30) > NOW),
            "expired token accepted"
        );
        // What verifies also decodes, to the same claims.
        let unverified = decode_unverified(token);
        assert_eq!(
            unverified.map(|u| u.claims).as_ref(),
            Ok(verified.claims()),
            "decode_unverified disagrees with verify"
        );
    }
}
