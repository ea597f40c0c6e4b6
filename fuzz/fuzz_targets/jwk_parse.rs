//! Fuzzes JWK and JWK Set parsing and key import on arbitrary bytes: `Jwk::from_json`,
//! `JwkSet::from_json`, `VerifyingKey::from_jwk`, `SigningKey::from_jwk`,
//! `KeySet::from_jwks` and RFC 7638 thumbprints must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_token::{Jwk, JwkSet, KeySet, SigningKey, VerifyingKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(jwk) = Jwk::from_json(data) {
        check_jwk(&jwk);
    }
    if let Ok(set) = JwkSet::from_json(data) {
        for jwk in &set.keys {
            check_jwk(jwk);
        }
        let _ = KeySet::from_jwks(&set);
        let again = JwkSet::from_json(set.to_json().as_bytes());
        assert_eq!(again.as_ref(), Ok(&set), "JWK Set does not round-trip");
    }
});

fn check_jwk(jwk: &Jwk) {
    let _ = jwk.thumbprint();
    // A public key's thumbprint does not depend on private members.
    if let Ok(tp) = jwk.thumbprint()
        && jwk.kty != "oct"
    {
        assert_eq!(jwk.to_public().thumbprint(), Ok(tp));
    }
    if let Ok(key) = VerifyingKey::from_jwk(jwk) {
        assert_eq!(key.kid(), jwk.kid.as_deref());
    }
    if let Ok(key) = SigningKey::from_jwk(jwk)
        && let Some(public) = key.public_jwk()
    {
        // The public half of an imported private key is itself importable.
        assert!(
            VerifyingKey::from_jwk(&public).is_ok(),
            "public half refused"
        );
    }
    let again = Jwk::from_json(jwk.to_json().as_bytes());
    assert_eq!(again.as_ref(), Ok(jwk), "JWK does not round-trip");
}
