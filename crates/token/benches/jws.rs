//! Speed of the token core next to the raw aws-lc-rs primitives it wraps: JWS sign and
//! verify per algorithm, the `Authorization` header parser and opaque tokens.
//!
//! Each `tessera` row is measured in the same run as its `raw` row over the same bytes, so
//! the ratio holds on a noisy machine even when the absolute numbers move. Results and how
//! to read them: `docs/benchmarks.md`.

// A bench whose fixture cannot be built should fail loudly, not be skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use tessera_token::{
    Algorithm, Audience, Claims, KeySet, OpaqueToken, SigningKey, TokenKind, UnixTime, Validation,
    decode_unverified, parse_authorization,
};

const ISSUER: &str = "https://auth.tessera.example";
const AUDIENCE: &str = "https://notes.example/api";
const NOW: i64 = 1_800_000_000;
/// A 32-byte HS256 secret (the minimum Tessera accepts).
const HMAC_SECRET: &[u8; 32] = b"bench-only-hs256-secret-32-bytes";

/// A realistic RFC 9068 access-token claims set: 391 bytes of JSON.
fn claims() -> Claims {
    Claims {
        iss: Some(ISSUER.into()),
        sub: Some("user_2c9f6b1e-8a7d-4b3f-9e21-5d0c7a3f8b14".into()),
        aud: Audience::new([AUDIENCE]),
        exp: Some(UnixTime::from_secs(NOW + 600)),
        nbf: Some(UnixTime::from_secs(NOW)),
        iat: Some(UnixTime::from_secs(NOW)),
        jti: Some("8f14e45f-ceea-467a-9af0-2d1c5b3e7a61".into()),
        client_id: Some("notes-web-3f9a2b".into()),
        scope: Some("openid profile notes:read notes:write".parse().unwrap()),
        sid: Some("sid_7b2e91c4d05a4f3e8c16".into()),
        auth_time: Some(UnixTime::from_secs(NOW - 120)),
        acr: Some("urn:tessera:acr:password+totp".into()),
        ..Claims::default()
    }
}

/// The raw aws-lc-rs signer and verifier for the same key a `SigningKey` holds.
enum Raw {
    EdDsa(Ed25519KeyPair, ParsedPublicKey),
    Es256(EcdsaKeyPair, ParsedPublicKey),
    Rs256(RsaKeyPair, ParsedPublicKey),
    Hs256(Box<hmac::Key>),
}

impl Raw {
    /// Loads the raw primitive from the tessera key's PKCS#8 export (or the shared secret).
    fn of(key: &SigningKey) -> Raw {
        if key.algorithm() == Algorithm::Hs256 {
            return Raw::Hs256(Box::new(hmac::Key::new(hmac::HMAC_SHA256, HMAC_SECRET)));
        }
        let der = key.to_pkcs8_der().unwrap();
        match key.algorithm() {
            Algorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(&der).unwrap();
                let public =
                    ParsedPublicKey::new(&signature::ED25519, pair.public_key().as_ref()).unwrap();
                Raw::EdDsa(pair, public)
            }
            Algorithm::Es256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                        .unwrap();
                let public = ParsedPublicKey::new(
                    &signature::ECDSA_P256_SHA256_FIXED,
                    pair.public_key().as_ref(),
                )
                .unwrap();
                Raw::Es256(pair, public)
            }
            Algorithm::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
                let public = ParsedPublicKey::new(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    pair.public_key().as_ref(),
                )
                .unwrap();
                Raw::Rs256(pair, public)
            }
            other => panic!("no raw primitive for {other}"),
        }
    }

    fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Vec<u8> {
        match self {
            Raw::EdDsa(k, _) => k.sign(message).as_ref().to_vec(),
            Raw::Es256(k, _) => k.sign(rng, message).unwrap().as_ref().to_vec(),
            Raw::Rs256(k, _) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, rng, message, &mut sig)
                    .unwrap();
                sig
            }
            Raw::Hs256(k) => hmac::sign(k, message).as_ref().to_vec(),
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Raw::EdDsa(_, p) | Raw::Es256(_, p) | Raw::Rs256(_, p) => {
                p.verify_sig(message, sig).is_ok()
            }
            Raw::Hs256(k) => hmac::verify(k, message, sig).is_ok(),
        }
    }
}

fn signing_key(alg: Algorithm) -> SigningKey {
    let key = match alg {
        Algorithm::Hs256 => SigningKey::from_hmac_secret(HMAC_SECRET).unwrap(),
        other => SigningKey::generate(other).unwrap(),
    };
    key.with_kid("2026-11-k1")
}

fn jws(c: &mut Criterion) {
    let claims = claims();
    let json_len = serde_json::to_vec(&claims).unwrap().len();
    assert!(
        (300..=400).contains(&json_len),
        "claims are {json_len} bytes"
    );
    let policy = Validation::access_token(ISSUER, AUDIENCE);
    let now = UnixTime::from_secs(NOW);
    let rng = SystemRandom::new();
    // Only under `cargo bench` (criterion's test mode runs each bench once, quickly).
    let paired = std::env::args().any(|a| a == "--bench");

    for alg in Algorithm::ALL {
        let key = signing_key(alg);
        let raw = Raw::of(&key);
        let keys = KeySet::new(vec![key.verifying_key().unwrap()]).unwrap();
        let token = key.sign(&claims, Some("at+jwt")).unwrap();
        let (signing_input, sig_b64) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
        // The fixture is sound: both sides accept the token before anything is timed.
        assert!(raw.verify(signing_input.as_bytes(), &sig));
        keys.verify(&token, &policy, now).unwrap();

        if paired {
            let msg = signing_input.as_bytes();
            paired_ratio(
                &format!("jws/{alg}/sign"),
                || {
                    black_box(key.sign(black_box(&claims), Some("at+jwt")).unwrap());
                },
                || {
                    black_box(raw.sign(&rng, black_box(msg)));
                },
            );
            paired_ratio(
                &format!("jws/{alg}/verify"),
                || {
                    black_box(keys.verify(black_box(&token), &policy, now).unwrap());
                },
                || assert!(raw.verify(black_box(msg), &sig)),
            );
        }

        let mut g = c.benchmark_group(format!("jws/{alg}"));
        g.bench_function("sign/tessera", |b| {
            b.iter(|| key.sign(black_box(&claims), Some("at+jwt")).unwrap())
        });
        g.bench_function("sign/raw", |b| {
            b.iter(|| raw.sign(&rng, black_box(signing_input.as_bytes())))
        });
        g.bench_function("verify/tessera", |b| {
            b.iter(|| keys.verify(black_box(&token), &policy, now).unwrap())
        });
        g.bench_function("verify/raw", |b| {
            b.iter(|| assert!(raw.verify(black_box(signing_input.as_bytes()), &sig)))
        });
        if alg == Algorithm::EdDsa {
            // Everything verify does except the signature and the claim rules: split,
            // base64url, strict JSON of header and claims.
            g.bench_function("decode_unverified", |b| {
                b.iter(|| decode_unverified(black_box(&token)).unwrap())
            });
        }
        g.finish();
    }
}

/// Prints the median tessera/raw time ratio over 101 adjacent pairs of ~2 ms blocks, the
/// order alternating. On a shared machine the load drifts between criterion's separate
/// runs of the two rows; within a pair it hits both alike, so this ratio is the steadier one.
fn paired_ratio(name: &str, mut tessera: impl FnMut(), mut raw: impl FnMut()) {
    const PAIRS: usize = 101;
    let block = |f: &mut dyn FnMut(), n: u32| {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed()
    };
    // Size the blocks from the slower side so each takes about 2 ms.
    block(&mut tessera, 10);
    let one = block(&mut tessera, 10) / 10;
    let n = (Duration::from_millis(2).as_nanos() / one.as_nanos().max(1)).clamp(1, 100_000);
    let n = u32::try_from(n).unwrap();
    let mut ratios: Vec<f64> = (0..PAIRS)
        .map(|i| {
            let (t, r) = if i % 2 == 0 {
                let t = block(&mut tessera, n);
                (t, block(&mut raw, n))
            } else {
                let r = block(&mut raw, n);
                (block(&mut tessera, n), r)
            };
            t.as_secs_f64() / r.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "{name}: tessera/raw paired ratio {:.3} (quartiles {:.3}..{:.3}, {PAIRS} pairs of {n} calls)",
        ratios[PAIRS / 2],
        ratios[PAIRS / 4],
        ratios[3 * PAIRS / 4],
    );
}

fn header_and_opaque(c: &mut Criterion) {
    let token = signing_key(Algorithm::EdDsa)
        .sign(&claims(), Some("at+jwt"))
        .unwrap();
    let header = format!("Bearer {token}");
    let opaque = OpaqueToken::generate(TokenKind::AccessToken).unwrap();
    let opaque = opaque.expose().to_owned();

    let mut g = c.benchmark_group("request");
    g.bench_function("parse_authorization", |b| {
        b.iter(|| {
            parse_authorization(black_box(header.as_bytes()))
                .unwrap()
                .unwrap()
        })
    });
    g.bench_function("opaque_parse_and_hash", |b| {
        b.iter(|| OpaqueToken::parse(black_box(&opaque)).unwrap().hash())
    });
    g.finish();
}

criterion_group!(benches, jws, header_and_opaque);
criterion_main!(benches);
