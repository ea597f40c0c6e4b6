//! The key set's cache of token headers: a hit saves the header's parse and nothing
//! else. Every answer is the one an empty cache gives.

use serde_json::json;

use super::*;
use crate::{Error, b64};

fn verify(keys: &KeySet, token: &str) -> Result<(), Error> {
    keys.verify(token, &policy(), NOW).map(|_| ())
}

/// `token` with its payload or signature segment replaced.
fn with_segment(token: &str, index: usize, segment: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = segment;
    parts.join(".")
}

#[test]
fn a_cached_header_never_skips_the_signature() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let token = forge(&k, &header_for(&k), &good_claims());
    assert_eq!(verify(&keys, &token), Ok(()));
    assert_eq!(keys.cached_headers(), 1);
    // The same header bytes over other claims, with the first token's signature.
    let mut claims = good_claims();
    claims["sub"] = json!("mallory");
    let other = forge(&k, &header_for(&k), &claims);
    let spliced = with_segment(&token, 1, other.split('.').nth(1).unwrap());
    assert_eq!(verify(&keys, &spliced), Err(Error::BadSignature));
    let mut sig = b64::decode(token.split('.').nth(2).unwrap(), "sig").unwrap();
    sig[0] ^= 1;
    let flipped = with_segment(&token, 2, &b64::encode(&sig));
    assert_eq!(verify(&keys, &flipped), Err(Error::BadSignature));
    assert_eq!(verify(&keys, &token), Ok(()));
}

#[test]
fn headers_of_refused_tokens_are_not_cached() {
    let trusted = key(Algorithm::EdDsa);
    let keys = keyset(&[&trusted]);
    // The trusted key's header, signed by another key with that kid.
    let impostor = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid(trusted.kid().unwrap());
    let forged = forge(&impostor, &header_for(&impostor), &good_claims());
    assert_eq!(verify(&keys, &forged), Err(Error::BadSignature));
    let stranger = key(Algorithm::Es256);
    let unknown = forge(&stranger, &header_for(&stranger), &good_claims());
    assert_eq!(verify(&keys, &unknown), Err(Error::UnknownKid));
    let claims = b64::encode(serde_json::to_vec(&good_claims()).unwrap());
    let none = b64::encode(br#"{"alg":"none"}"#);
    assert_eq!(
        verify(&keys, &format!("{none}.{claims}.AAAA")),
        Err(Error::AlgNone)
    );
    assert_eq!(keys.cached_headers(), 0);
}

/// The cache holds the header's reading, not a decision: a verified token whose `typ`
/// or claims the policy refuses is refused again, the same way, once its header is in.
#[test]
fn a_cached_header_is_checked_like_a_fresh_one() {
    let k = key(Algorithm::Es256);
    let keys = keyset(&[&k]);
    let id_token = forge(
        &k,
        &json!({ "alg": "ES256", "kid": k.kid(), "typ": "JWT" }),
        &good_claims(),
    );
    let access_only = policy().require_typ("at+jwt");
    let check = |token: &str| keys.verify(token, &access_only, NOW).map(|_| ());
    let first = check(&id_token);
    assert!(matches!(first, Err(Error::WrongType)), "{first:?}");
    assert_eq!(keys.cached_headers(), 1);
    assert_eq!(check(&id_token), first);
    let mut claims = good_claims();
    claims["exp"] = json!(NOW.secs() - 600);
    let expired = forge(&k, &header_for(&k), &claims);
    let first = verify(&keys, &expired);
    assert!(first.is_err());
    assert_eq!(verify(&keys, &expired), first);
}

/// Keyed by the exact bytes: a header one byte away from a cached one is read afresh,
/// so a repeated member is refused however close it is to a header seen before.
#[test]
fn only_the_exact_bytes_hit() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let sign = |header: &str| {
        k.sign_raw(
            header.as_bytes(),
            &serde_json::to_vec(&good_claims()).unwrap(),
        )
        .unwrap()
    };
    let kid = k.kid().unwrap();
    let plain = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt"}}"#);
    assert_eq!(verify(&keys, &sign(&plain)), Ok(()));
    let repeated = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt","typ":"JWT"}}"#);
    assert_eq!(verify(&keys, &sign(&repeated)), Err(Error::DuplicateMember));
    let spaced = format!(r#"{{"alg":"EdDSA", "kid":"{kid}","typ":"at+jwt"}}"#);
    assert_eq!(verify(&keys, &sign(&spaced)), Ok(()));
    assert_eq!(keys.cached_headers(), 2);
    let hmac_kid = format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"at+jwt"}}"#);
    assert_eq!(
        verify(&keys, &sign(&hmac_kid)),
        Err(Error::AlgMismatch),
        "another alg under a cached kid is still checked against the key"
    );
}

/// Eight slots, filled once: more headers than that (a JWKS with a dozen live keys) are
/// parsed each time, and the first eight stay cached rather than evicting each other.
#[test]
fn the_cache_is_bounded_and_keeps_working_past_it() {
    let signers: Vec<SigningKey> = (0..12)
        .map(|i| {
            SigningKey::generate(Algorithm::EdDsa)
                .unwrap()
                .with_kid(format!("k{i}"))
        })
        .collect();
    let keys = keyset(&signers.iter().collect::<Vec<_>>());
    let tokens: Vec<String> = signers
        .iter()
        .map(|k| forge(k, &header_for(k), &good_claims()))
        .collect();
    for _ in 0..2 {
        for t in &tokens {
            assert_eq!(verify(&keys, t), Ok(()));
        }
        assert_eq!(keys.cached_headers(), 8);
    }
    // A copy starts empty and verifies the same.
    let copy = keys.clone();
    assert_eq!(copy.cached_headers(), 0);
    assert_eq!(verify(&copy, &tokens[0]), Ok(()));
}

/// Threads verifying at once share the cache without a lock: every answer is right, and
/// racing inserts of one header take at most one slot each.
#[test]
fn concurrent_verifies_agree() {
    let k = key(Algorithm::Es256);
    let keys = keyset(&[&k]);
    let token = forge(&k, &header_for(&k), &good_claims());
    let mut bad = good_claims();
    bad["aud"] = json!("someone-else");
    let wrong = forge(&k, &header_for(&k), &bad);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    assert_eq!(verify(&keys, &token), Ok(()));
                    assert!(verify(&keys, &wrong).is_err());
                }
            });
        }
    });
    assert!((1..=4).contains(&keys.cached_headers()));
}
