//! OpenID Connect pieces shared by the endpoints: the ID token (OpenID Connect Core
//! sections 2 and 3.1.3.6) and the claims the userinfo endpoint returns.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_token::{Algorithm, Audience, Claims, UnixTime};

use crate::oauth::OAuthError;
use crate::state::Core;
use crate::store::{Amr, ClientRecord};

/// The assurance ladder (`acr`), lowest first: a password alone, then a password and a
/// second factor, then a phishing-resistant factor (a passkey, with a password or alone
/// with the authenticator's user verification). docs/security.md documents it; discovery
/// lists it. The one place the ladder is written: comparisons use its order.
pub(crate) const ACR_VALUES: [&str; 3] = [ACR_PWD, ACR_MFA, ACR_PHR];
/// `acr` of a sign-in with a password alone.
pub(crate) const ACR_PWD: &str = "urn:tessera:acr:pwd";
/// `acr` of a sign-in with a password and a second factor.
pub(crate) const ACR_MFA: &str = "urn:tessera:acr:mfa";
/// `acr` of a sign-in with a passkey (origin-bound, so phishing-resistant).
pub(crate) const ACR_PHR: &str = "urn:tessera:acr:phr";

/// Where `acr` stands on the ladder ([`ACR_VALUES`], lowest first); `None` when it is
/// not one of ours. Every comparison of assurance goes through this, so a new rung is one
/// more entry in [`ACR_VALUES`] (and the arm of [`acr`] that earns it).
pub(crate) fn acr_rank(acr: &str) -> Option<usize> {
    ACR_VALUES.iter().position(|v| *v == acr)
}

/// True when a sign-in that reached `reached` satisfies a request for `asked` (at least
/// as high on the ladder); an unknown value on either side never does.
pub(crate) fn acr_meets(reached: &str, asked: &str) -> bool {
    match (acr_rank(reached), acr_rank(asked)) {
        (Some(r), Some(a)) => r >= a,
        _ => false,
    }
}

/// The `acr` of a sign-in made with `amr`.
pub(crate) fn acr(amr: &Amr) -> &'static str {
    if amr.has_passkey() {
        ACR_PHR
    } else if amr.is_mfa() {
        ACR_MFA
    } else {
        ACR_PWD
    }
}

/// Adds `acr` and `amr` (OpenID Connect Core section 2, RFC 8176) for a sign-in made
/// with `amr` to `claims`.
pub(crate) fn add_assurance(claims: &mut Claims, amr: &Amr) {
    claims.acr = Some(acr(amr).to_owned());
    claims
        .extra
        .insert("amr".into(), Value::from(amr.values().to_vec()));
}

/// What an ID token is about.
pub(crate) struct IdTokenFor<'a> {
    pub(crate) sub: &'a str,
    pub(crate) client: &'a ClientRecord,
    pub(crate) auth_time: UnixTime,
    /// How the user signed in (`amr`, and the `acr` it earns).
    pub(crate) amr: &'a Amr,
    pub(crate) nonce: Option<&'a str>,
    pub(crate) sid: &'a str,
    /// The access token issued with it (for `at_hash`).
    pub(crate) access_token: &'a str,
}

/// Signs an ID token (`typ: JWT`) for the client with its `id_token_signed_response_alg`
/// (RS256 unless it registered another; its access tokens keep their own algorithm):
/// `iss`, `sub`, `aud` = client_id, `exp`, `iat`, `auth_time`, `acr`, `amr`, `nonce` (when
/// the request had one), `sid` and `at_hash`.
pub(crate) fn mint_id_token(core: &Core, t: &IdTokenFor<'_>) -> Result<String, OAuthError> {
    let ring = core.keys.current();
    let key = ring.id_token_signer(t.client.id_token_alg).ok_or_else(|| {
        let alg = t.client.id_token_alg.unwrap_or(crate::keys::ID_TOKEN_ALG);
        OAuthError::no_signing_key(alg.name(), core.key_retry_after())
    })?;
    let now = core.clock.now();
    let mut claims = Claims {
        iss: Some(core.issuer.clone()),
        sub: Some(t.sub.to_owned()),
        aud: Audience::new([t.client.id.clone()]),
        exp: Some(now.saturating_add(core.config.tokens.access_token_ttl)),
        iat: Some(now),
        auth_time: Some(t.auth_time),
        sid: Some(t.sid.to_owned()),
        ..Claims::default()
    };
    add_assurance(&mut claims, t.amr);
    if let Some(nonce) = t.nonce {
        claims.extra.insert("nonce".into(), Value::from(nonce));
    }
    claims.extra.insert(
        "at_hash".into(),
        Value::from(at_hash(key.algorithm(), t.access_token)),
    );
    key.sign(&claims, Some("JWT"))
        .map_err(|e| OAuthError::Server(e.to_string()))
}

/// `at_hash` (OpenID Connect Core section 3.1.3.6): base64url of the left half of the
/// hash of the access token, with the hash of the ID token's `alg` (SHA-256 for ES256
/// and RS256; SHA-512 for EdDSA with Ed25519, as the OpenID Foundation's errata and
/// common libraries use).
pub(crate) fn at_hash(alg: Algorithm, access_token: &str) -> String {
    let hash = match alg {
        Algorithm::EdDsa => &digest::SHA512,
        _ => &digest::SHA256,
    };
    let d = digest::digest(hash, access_token.as_bytes());
    let bytes = d.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_compares_by_rank_and_refuses_unknown_values() {
        assert!(acr_meets(ACR_MFA, ACR_PWD));
        assert!(acr_meets(ACR_MFA, ACR_MFA));
        assert!(!acr_meets(ACR_PWD, ACR_MFA));
        assert!(!acr_meets("urn:other", ACR_PWD));
        assert!(!acr_meets(ACR_MFA, "urn:other"));
        let ranks: Vec<_> = ACR_VALUES.iter().map(|v| acr_rank(v)).collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_algs_hash() {
        // OpenID Connect Core, Appendix A.3-style check: 16 bytes for SHA-256 -> 22 chars.
        let h = at_hash(
            Algorithm::Es256,
            "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
        );
        assert_eq!(h, "77QmUPtjPfzWtF2AnpK9RQ");
        assert_eq!(at_hash(Algorithm::EdDsa, "x").len(), 43);
        assert_ne!(
            at_hash(Algorithm::Es256, "a"),
            at_hash(Algorithm::Es256, "b")
        );
    }
}
