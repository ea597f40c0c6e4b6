//! The proof-header cache: a hit saves the header's parse, never a check. Only headers
//! of proofs that verified are entered, the cache stays within its capacity, and it
//! keys on the header segment's exact bytes.

use serde_json::{Value, json};

use super::NOW;
use crate::dpop::{ProofCheck, ProofKeyCache, verify_proof, verify_proof_cached};
use crate::{Algorithm, Error, SigningKey, b64};

const URL: &str = "https://api.example/notes";

fn claims(jti: &str) -> Value {
    json!({"jti": jti, "htm": "GET", "htu": URL, "iat": NOW.secs()})
}

fn header_of(key: &SigningKey) -> Value {
    let jwk = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
    json!({"typ": "dpop+jwt", "alg": key.algorithm().name(), "jwk": jwk})
}

/// A proof whose header segment is `header` (as given), signed by `signer`.
fn signed(signer: &SigningKey, header: &str, claims: &Value) -> String {
    let input = format!("{header}.{}", b64::encode(claims.to_string()));
    let sig = signer.sign_bytes(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(sig))
}

fn segment(header: &Value) -> String {
    b64::encode(header.to_string())
}

fn check() -> ProofCheck<'static> {
    ProofCheck::new("GET", URL, NOW)
}

/// Both paths give the same answer; returns the cached one.
fn both(proof: &str, check: &ProofCheck<'_>, cache: &ProofKeyCache) -> Result<String, Error> {
    let cached = verify_proof_cached(proof, check, cache).map(|v| v.jkt);
    assert_eq!(cached, verify_proof(proof, check).map(|v| v.jkt));
    cached
}

#[test]
fn a_cached_header_still_needs_a_signature_by_its_key() {
    let cache = ProofKeyCache::new(8);
    let victim = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let attacker = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let header = segment(&header_of(&victim));
    let jkt = both(&signed(&victim, &header, &claims("a")), &check(), &cache).unwrap();
    assert_eq!(cache.len(), 1);
    // The victim's header (now cached) on a proof signed by another key.
    let forged = signed(&attacker, &header, &claims("b"));
    assert_eq!(
        both(&forged, &check().with_jkt(&jkt), &cache),
        Err(Error::BadSignature)
    );
    // A valid proof with its signature altered.
    let good = signed(&victim, &header, &claims("c"));
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut sig = b64::decode(sig, "sig").unwrap();
    sig[0] ^= 1;
    let tampered = format!("{input}.{}", b64::encode(sig));
    assert_eq!(both(&tampered, &check(), &cache), Err(Error::BadSignature));
    // Every other check still runs on a hit.
    let stale = signed(
        &victim,
        &header,
        &json!({"jti": "d", "htm": "GET", "htu": URL, "iat": NOW.secs() - 3600}),
    );
    assert!(matches!(
        both(&stale, &check(), &cache),
        Err(Error::InvalidDpopProof(_))
    ));
    let elsewhere = ProofCheck::new("POST", URL, NOW);
    assert!(matches!(
        both(&signed(&victim, &header, &claims("e")), &elsewhere, &cache),
        Err(Error::InvalidDpopProof(_))
    ));
    assert!(matches!(
        both(
            &signed(&victim, &header, &claims("f")),
            &check().with_jkt("another-key"),
            &cache
        ),
        Err(Error::InvalidDpopProof(_))
    ));
    assert_eq!(cache.len(), 1);
}

#[test]
fn only_headers_of_proofs_that_verified_are_cached() {
    let cache = ProofKeyCache::new(8);
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let other = SigningKey::generate(Algorithm::Es256).unwrap();
    let header = segment(&header_of(&key));
    // Signed by another key, wrong method, stale: none enters the cache.
    both(&signed(&other, &header, &claims("a")), &check(), &cache).unwrap_err();
    let post = ProofCheck::new("POST", URL, NOW);
    both(&signed(&key, &header, &claims("b")), &post, &cache).unwrap_err();
    assert!(cache.is_empty());
    // So the forged proof is still refused after a good one cached the header.
    both(&signed(&key, &header, &claims("c")), &check(), &cache).unwrap();
    assert_eq!(cache.len(), 1);
    assert_eq!(
        both(&signed(&other, &header, &claims("d")), &check(), &cache),
        Err(Error::BadSignature)
    );
    // A refused header is never cached, whatever signs it.
    let mut private = header_of(&key);
    private["jwk"]["d"] = json!("AAAA");
    let private = segment(&private);
    for _ in 0..2 {
        assert!(matches!(
            both(&signed(&key, &private, &claims("e")), &check(), &cache),
            Err(Error::InvalidDpopProof(_))
        ));
    }
    assert_eq!(cache.len(), 1);
}

#[test]
fn the_cache_is_bounded_and_zero_caches_nothing() {
    let cache = ProofKeyCache::new(3);
    let keys: Vec<SigningKey> = (0..10)
        .map(|_| SigningKey::generate(Algorithm::EdDsa).unwrap())
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let header = segment(&header_of(key));
        both(
            &signed(key, &header, &claims(&i.to_string())),
            &check(),
            &cache,
        )
        .unwrap();
        assert!(cache.len() <= 3);
    }
    assert_eq!(cache.len(), 3);
    // Evicted or not, every key's proofs still verify.
    for (i, key) in keys.iter().enumerate() {
        let header = segment(&header_of(key));
        let jkt = key.public_jwk().unwrap().thumbprint().unwrap();
        assert_eq!(
            both(
                &signed(key, &header, &claims(&format!("again-{i}"))),
                &check(),
                &cache
            ),
            Ok(jkt)
        );
    }
    let off = ProofKeyCache::new(0);
    let header = segment(&header_of(&keys[0]));
    both(&signed(&keys[0], &header, &claims("z")), &check(), &off).unwrap();
    assert!(off.is_empty());
}

#[test]
fn the_cache_keys_on_the_exact_header_bytes() {
    let cache = ProofKeyCache::new(8);
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let header = header_of(&key);
    let text = header.to_string();
    both(
        &signed(&key, &b64::encode(&text), &claims("a")),
        &check(),
        &cache,
    )
    .unwrap();
    // The cached header with a duplicate member appended is another header: refused as
    // it always was, not served from the cache.
    let duplicate = format!(
        r#"{},"alg":"{}"}}"#,
        &text[..text.len() - 1],
        key.algorithm().name()
    );
    assert_eq!(
        both(
            &signed(&key, &b64::encode(&duplicate), &claims("b")),
            &check(),
            &cache
        ),
        Err(Error::DuplicateMember)
    );
    // The same JSON with whitespace: other bytes, parsed afresh (and accepted).
    let spaced = format!(" {text}");
    both(
        &signed(&key, &b64::encode(&spaced), &claims("c")),
        &check(),
        &cache,
    )
    .unwrap();
    assert_eq!(cache.len(), 2);
    // One key's cached header does not stand in for another key's.
    let other = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let theirs = segment(&header_of(&other));
    assert_eq!(
        both(&signed(&other, &theirs, &claims("d")), &check(), &cache),
        Ok(other.public_jwk().unwrap().thumbprint().unwrap())
    );
    // A header segment with one more (non-alphabet) byte is not the cached one.
    let mangled = format!("{}=", b64::encode(&text));
    assert!(both(&signed(&key, &mangled, &claims("e")), &check(), &cache).is_err());
}
