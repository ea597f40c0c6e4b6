//! The RFC examples in `testdata/`, checked byte for byte.

use crate::jws::verify_payload;
use crate::{Algorithm, Error, Jwk, KeySet, SigningKey, UnixTime, Validation, VerifyingKey, pkce};

const A1_TO_A3_PAYLOAD: &[u8] =
    b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

fn jwk(bytes: &[u8]) -> Jwk {
    Jwk::from_json(bytes).unwrap()
}

fn token(s: &str) -> &str {
    s.trim_end()
}

#[test]
fn rfc7515_a1_hs256_verifies() {
    let key =
        VerifyingKey::from_jwk(&jwk(include_bytes!("../testdata/rfc7515-a.1.jwk.json"))).unwrap();
    assert_eq!(key.algorithm(), Algorithm::Hs256);
    let jws = token(include_str!("../testdata/rfc7515-a.1.jws"));
    assert_eq!(verify_payload(jws, &key).unwrap(), A1_TO_A3_PAYLOAD);
}

#[test]
fn rfc7515_a1_hs256_signs_identically() {
    // HMAC is deterministic, so signing the same bytes must give the RFC's token.
    let key =
        SigningKey::from_jwk(&jwk(include_bytes!("../testdata/rfc7515-a.1.jwk.json"))).unwrap();
    let header = b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
    let jws = key.sign_raw(header, A1_TO_A3_PAYLOAD).unwrap();
    assert_eq!(jws, token(include_str!("../testdata/rfc7515-a.1.jws")));
}

#[test]
fn rfc7515_a2_rs256_verifies() {
    let key = VerifyingKey::from_jwk(&jwk(include_bytes!(
        "../testdata/rfc7515-a.2.public.jwk.json"
    )))
    .unwrap();
    assert_eq!(key.algorithm(), Algorithm::Rs256);
    let jws = token(include_str!("../testdata/rfc7515-a.2.jws"));
    assert_eq!(verify_payload(jws, &key).unwrap(), A1_TO_A3_PAYLOAD);
}

#[test]
fn rfc7515_a3_es256_verifies_and_key_pair_signs() {
    let private = jwk(include_bytes!("../testdata/rfc7515-a.3.jwk.json"));
    let key = VerifyingKey::from_jwk(&private.to_public()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::Es256);
    let jws = token(include_str!("../testdata/rfc7515-a.3.jws"));
    assert_eq!(verify_payload(jws, &key).unwrap(), A1_TO_A3_PAYLOAD);
    // ECDSA signatures are randomized: a fresh signature by the RFC key must verify too.
    let signer = SigningKey::from_jwk(&private).unwrap();
    let ours = signer
        .sign_raw(b"{\"alg\":\"ES256\"}", A1_TO_A3_PAYLOAD)
        .unwrap();
    assert_eq!(verify_payload(&ours, &key).unwrap(), A1_TO_A3_PAYLOAD);
}

#[test]
fn rfc8037_a4_ed25519_signs_identically_and_a5_verifies() {
    let private = jwk(include_bytes!("../testdata/rfc8037-a.1-private.jwk.json"));
    let signer = SigningKey::from_jwk(&private).unwrap();
    assert_eq!(
        signer.public_jwk().unwrap().x,
        jwk(include_bytes!("../testdata/rfc8037-a.2-public.jwk.json")).x
    );
    let expected = token(include_str!("../testdata/rfc8037-a.4.jws"));
    let jws = signer
        .sign_raw(b"{\"alg\":\"EdDSA\"}", b"Example of Ed25519 signing")
        .unwrap();
    assert_eq!(jws, expected);

    let public = VerifyingKey::from_jwk(&jwk(include_bytes!(
        "../testdata/rfc8037-a.2-public.jwk.json"
    )))
    .unwrap();
    assert_eq!(
        verify_payload(expected, &public).unwrap(),
        b"Example of Ed25519 signing"
    );
}

#[test]
fn rfc7515_vectors_through_the_full_policy() {
    // The RFC tokens have no `aud`, so a policy (which always names an audience) refuses
    // them after the signature verifies; before expiry only that rule fails.
    let key = VerifyingKey::from_jwk(
        &jwk(include_bytes!("../testdata/rfc7515-a.3.jwk.json")).to_public(),
    )
    .unwrap();
    let keys = KeySet::new(vec![key]).unwrap();
    let jws = token(include_str!("../testdata/rfc7515-a.3.jws"));
    let policy = Validation::new("joe", "api");
    let before_expiry = UnixTime::from_secs(1_300_819_000);
    assert_eq!(
        keys.verify(jws, &policy, before_expiry).unwrap_err(),
        Error::MissingClaim("aud")
    );
    let after_expiry = UnixTime::from_secs(1_300_819_380 + 30);
    assert_eq!(
        keys.verify(jws, &policy, after_expiry).unwrap_err(),
        Error::Expired
    );
    let other_issuer = Validation::new("mallory", "api");
    assert_eq!(
        keys.verify(jws, &other_issuer, before_expiry).unwrap_err(),
        Error::WrongIssuer
    );
}

#[test]
fn rfc7636_appendix_b_s256() {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/rfc7636-b.json")).unwrap();
    let verifier = v["code_verifier"].as_str().unwrap();
    let challenge = v["code_challenge"].as_str().unwrap();
    assert_eq!(pkce::s256_challenge(verifier), challenge);
    pkce::verify(pkce::ChallengeMethod::S256, challenge, verifier, false).unwrap();
}
