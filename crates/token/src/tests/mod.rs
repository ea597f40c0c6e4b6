//! Negative and property tests across modules: every refusal the token core promises.

mod claim_rules;
mod dpop;
mod dpop_cache;
mod dpop_jwk;
mod header_cache;
mod jws_refusals;
mod keys;
mod opaque_and_pkce;
mod props;

use serde_json::{Value, json};

use crate::{Algorithm, KeySet, SigningKey, UnixTime, Validation};

pub(super) const ISS: &str = "https://auth.example";
pub(super) const AUD: &str = "notes-api";
pub(super) const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

pub(super) fn key(alg: Algorithm) -> SigningKey {
    SigningKey::generate(alg)
        .unwrap()
        .with_kid(format!("{alg}-1"))
}

pub(super) fn keyset(keys: &[&SigningKey]) -> KeySet {
    KeySet::new(keys.iter().map(|k| k.verifying_key().unwrap()).collect()).unwrap()
}

pub(super) fn policy() -> Validation {
    Validation::new(ISS, AUD)
}

/// A claims set that passes `policy()` at `NOW`.
pub(super) fn good_claims() -> Value {
    json!({
        "iss": ISS,
        "sub": "alice",
        "aud": AUD,
        "exp": NOW.secs() + 600,
        "iat": NOW.secs(),
        "jti": "j-1",
        "client_id": "c-1",
        "scope": "notes:read",
    })
}

/// Signs exactly these header and claims bytes.
pub(super) fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    key.sign_raw(
        &serde_json::to_vec(header).unwrap(),
        &serde_json::to_vec(claims).unwrap(),
    )
    .unwrap()
}

/// The standard header for `key`.
pub(super) fn header_for(key: &SigningKey) -> Value {
    json!({ "alg": key.algorithm().name(), "kid": key.kid(), "typ": "at+jwt" })
}
