//! The guard's whole per-request path (token source, RFC 6750 parse, cache, verify,
//! validation, revocation check) next to the raw aws-lc-rs signature verify, measured in
//! the same run over the same token, so the ratios hold on a noisy machine.
//!
//! - `raw_verify`: `ParsedPublicKey::verify_sig` over the token's signing input: the floor.
//! - `cold`: `Guard::authenticate` with the cache off: every request verifies.
//! - `warm`: the same with the cache on and the token already seen: a hash and a lookup.
//! - `dpop_cold`: a DPoP request (RFC 9449), cache off: the bound token's signature and
//!   the proof (its embedded key parsed, its signature, thumbprint, `ath`, replay cache).
//!   Proof and key of the token's algorithm, so one proof verify is one `raw_verify`.
//! - `dpop_warm`: the same with the token cached: the proof check alone.
//! - `dpop_cold_nokey`: `dpop_cold` with the proof-header cache off too (a client's first
//!   proof: its header parsed, key built and thumbprinted); `dpop_cold` finds the header
//!   there, as every proof after a client's first does.
//! - `router/*`: one request through an axum router, with and without the guard layer
//!   (warm), the unauthenticated route being the floor.
//!
//! Each DPoP iteration gets a fresh proof (made outside the timed part), as the replay
//! cache would refuse a second use.
//!
//! Before criterion runs, `interleaved` times raw verify, cold and warm (bearer and DPoP)
//! one after the other, round after round, and prints their medians and ratios: on a
//! shared machine whose load changes from second to second, this ratio is the one to
//! trust. `GUARD_BENCH_SKIP_INTERLEAVED=1` skips it (to profile one criterion row).
//!
//! Results: `docs/benchmarks.md`, section "Guard".

// A bench whose fixture cannot be built should fail loudly, not be skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, ParsedPublicKey};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group};
use http::Request;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_guard::{Auth, Guard, ManualClock, RevocationList, Verifier};
use tessera_token::dpop::{access_token_hash, sign_proof};
use tessera_token::{
    Algorithm, Audience, Claims, Confirmation, KeySet, SigningKey, UnixTime, Validation,
};
use tower::ServiceExt;

const ISSUER: &str = "https://auth.tessera.example";
const AUDIENCE: &str = "https://notes.example/api";
const NOW: i64 = 1_800_000_000;

/// The same realistic RFC 9068 claims set as the token-core bench (about 350 bytes).
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

/// Polls a future that never waits (the static verifier) to completion.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the static guard path never waits"),
    }
}

fn raw_key(key: &SigningKey) -> ParsedPublicKey {
    let jwk = key.public_jwk().unwrap();
    let b = |s: &Option<String>| URL_SAFE_NO_PAD.decode(s.as_deref().unwrap()).unwrap();
    match key.algorithm() {
        Algorithm::EdDsa => ParsedPublicKey::new(&signature::ED25519, b(&jwk.x)).unwrap(),
        Algorithm::Es256 => {
            let mut point = vec![4u8];
            point.extend(b(&jwk.x));
            point.extend(b(&jwk.y));
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).unwrap()
        }
        _ => unreachable!(),
    }
}

fn guard(key: &SigningKey, cache: usize) -> Guard {
    guard_with(
        key,
        cache,
        tessera_token::dpop::ProofKeyCache::DEFAULT_CAPACITY,
    )
}

fn guard_with(key: &SigningKey, cache: usize, key_cache: usize) -> Guard {
    let keys = KeySet::new(vec![key.verifying_key().unwrap()]).unwrap();
    Guard::builder(
        Verifier::keys(keys),
        Validation::access_token(ISSUER, AUDIENCE),
    )
    .clock(Arc::new(ManualClock::new(UnixTime::from_secs(NOW))))
    .cache_capacity(cache)
    .dpop_key_cache_capacity(key_cache)
    // The clock stands still, so no proof ever leaves the replay cache: room for every
    // proof a criterion row makes (the default's per-key share, 25,000, ran out).
    .dpop_replay_capacity(1_000_000)
    .public_base_url("https://notes.example")
    // A revocation list with entries, so the warm path pays for its lookup.
    .revocation({
        let l = Arc::new(RevocationList::new());
        l.revoke_jti("some-other-jti", UnixTime::from_secs(NOW + 600));
        l
    })
    .build()
    .unwrap()
}

fn request_parts(token: &str) -> http::request::Parts {
    Request::get("/notes?page=2")
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// A DPoP-bound token and its client's key.
struct Bound {
    token: String,
    key: SigningKey,
}

static PROOFS: AtomicU64 = AtomicU64::new(0);

impl Bound {
    fn new(issuer: &SigningKey) -> Self {
        let key = SigningKey::generate(issuer.algorithm()).unwrap();
        let claims = Claims {
            cnf: Some(Confirmation {
                jkt: Some(key.public_jwk().unwrap().thumbprint().unwrap()),
                ..Confirmation::default()
            }),
            ..claims()
        };
        let token = issuer.sign(&claims, Some("at+jwt")).unwrap();
        Bound { token, key }
    }

    /// The head of `GET /notes?page=2` with the token and a fresh proof.
    fn request(&self) -> http::request::Parts {
        let proof = sign_proof(
            &self.key,
            &serde_json::json!({
                "jti": format!("bench-{}", PROOFS.fetch_add(1, Ordering::Relaxed)),
                "htm": "GET", "htu": "https://notes.example/notes", "iat": NOW,
                "ath": access_token_hash(&self.token),
            }),
        )
        .unwrap();
        Request::get("/notes?page=2")
            .header("authorization", format!("DPoP {}", self.token))
            .header("dpop", proof)
            .header("accept", "application/json")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }
}

struct Fixture {
    name: &'static str,
    raw: ParsedPublicKey,
    input: String,
    sig: Vec<u8>,
    parts: http::request::Parts,
    cold: Guard,
    cold_nokey: Guard,
    warm: Guard,
    bound: Bound,
}

fn fixtures() -> Vec<Fixture> {
    [("EdDSA", Algorithm::EdDsa), ("ES256", Algorithm::Es256)]
        .into_iter()
        .map(|(name, alg)| {
            let key = SigningKey::generate(alg).unwrap().with_kid("k1");
            let token = key.sign(&claims(), Some("at+jwt")).unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let warm = guard(&key, 10_000);
            let parts = request_parts(&token);
            ready(warm.authenticate(&parts)).unwrap().unwrap();
            let bound = Bound::new(&key);
            ready(warm.authenticate(&bound.request())).unwrap().unwrap();
            let cold = guard(&key, 0);
            ready(cold.authenticate(&bound.request())).unwrap().unwrap();
            Fixture {
                name,
                raw: raw_key(&key),
                input: input.to_owned(),
                sig: URL_SAFE_NO_PAD.decode(sig).unwrap(),
                parts,
                cold,
                cold_nokey: guard_with(&key, 0, 0),
                warm,
                bound,
            }
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

/// Raw, cold and warm timed in turn, round after round: the same load hits all three.
fn interleaved() {
    const ROUNDS: usize = 4000;
    for f in fixtures() {
        let (mut raw, mut cold, mut warm) = (vec![], vec![], vec![]);
        let (mut dpop_cold, mut dpop_warm, mut dpop_nokey) = (vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            f.raw
                .verify_sig(black_box(f.input.as_bytes()), black_box(&f.sig))
                .unwrap();
            raw.push(t.elapsed());
            let t = Instant::now();
            black_box(ready(f.cold.authenticate(black_box(&f.parts))).unwrap());
            cold.push(t.elapsed());
            let t = Instant::now();
            black_box(ready(f.warm.authenticate(black_box(&f.parts))).unwrap());
            warm.push(t.elapsed());
            let (p1, p2) = (f.bound.request(), f.bound.request());
            let t = Instant::now();
            black_box(ready(f.cold.authenticate(black_box(&p1))).unwrap());
            dpop_cold.push(t.elapsed());
            let t = Instant::now();
            black_box(ready(f.warm.authenticate(black_box(&p2))).unwrap());
            dpop_warm.push(t.elapsed());
            let p3 = f.bound.request();
            let t = Instant::now();
            black_box(ready(f.cold_nokey.authenticate(black_box(&p3))).unwrap());
            dpop_nokey.push(t.elapsed());
        }
        let (r, c, w) = (median(raw), median(cold), median(warm));
        let (dc, dw, dn) = (median(dpop_cold), median(dpop_warm), median(dpop_nokey));
        println!(
            "interleaved guard/{}: median raw_verify {r:.2} us, cold {c:.2} us ({:.3}x raw), warm {w:.3} us, \
             dpop_cold {dc:.2} us ({:.3}x raw), dpop_cold_nokey {dn:.2} us ({:.3}x raw), \
             dpop_warm {dw:.2} us ({:.3}x raw)",
            f.name,
            c / r,
            dc / r,
            dn / r,
            dw / r
        );
    }
}

fn bench_guard(c: &mut Criterion) {
    for f in fixtures() {
        let (raw, input, sig, parts) = (&f.raw, &f.input, &f.sig, &f.parts);
        let (cold, cold_nokey, warm) = (&f.cold, &f.cold_nokey, &f.warm);
        let mut g = c.benchmark_group(format!("guard/{}", f.name));
        g.bench_function("raw_verify", |b| {
            b.iter(|| {
                raw.verify_sig(black_box(input.as_bytes()), black_box(sig))
                    .unwrap()
            })
        });
        g.bench_function("cold", |b| {
            b.iter(|| ready(cold.authenticate(black_box(parts))).unwrap().unwrap())
        });
        g.bench_function("warm", |b| {
            b.iter(|| ready(warm.authenticate(black_box(parts))).unwrap().unwrap())
        });
        let bound = &f.bound;
        g.bench_function("dpop_cold", |b| {
            b.iter_batched_ref(
                || bound.request(),
                |p| ready(cold.authenticate(black_box(p))).unwrap().unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("dpop_cold_nokey", |b| {
            b.iter_batched_ref(
                || bound.request(),
                |p| {
                    ready(cold_nokey.authenticate(black_box(p)))
                        .unwrap()
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("dpop_warm", |b| {
            b.iter_batched_ref(
                || bound.request(),
                |p| ready(warm.authenticate(black_box(p))).unwrap().unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

fn bench_router(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let key = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid("k1");
    let token = key.sign(&claims(), Some("at+jwt")).unwrap();
    let guard = guard(&key, 10_000);
    let app = Router::new()
        // The floor's handler behind the guard (the example API's `/ping`), so the
        // difference between the two rows is the guard alone.
        .route("/ping", get(|_: Auth| async { "ok" }))
        .layer(guard.layer())
        .route("/healthz", get(|| async { "ok" }));
    let req = |path: &str| {
        Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let mut g = c.benchmark_group("guard/router");
    g.bench_function("unauthenticated_floor", |b| {
        b.iter(|| rt.block_on(app.clone().oneshot(req("/healthz"))).unwrap())
    });
    g.bench_function("guarded_warm", |b| {
        b.iter(|| {
            let r = rt.block_on(app.clone().oneshot(req("/ping"))).unwrap();
            assert!(r.status().is_success());
            r
        })
    });
    g.finish();
}

criterion_group!(benches, bench_guard, bench_router);

fn main() {
    // For profiling one criterion row (`perf record … --profile-time 10`) without the
    // interleaved rounds in the samples.
    if std::env::var_os("GUARD_BENCH_SKIP_INTERLEAVED").is_none() {
        interleaved();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
