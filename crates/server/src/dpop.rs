//! DPoP at the token endpoint (RFC 9449 sections 5 and 8): the one check of a request's
//! `DPoP` header (signature and claims by `tessera_token::dpop`, against the issuer's
//! public token URL; then the server nonce), and the one place a checked proof is
//! recorded in the replay cache, which the grants call once every other check passed.

use tessera_token::dpop::{self as proof, ProofCheck, VerifiedProof};

use crate::oauth::OAuthError;
use crate::state::Core;
use crate::state::dpop::Replay;

/// A proof whose signature, claims and nonce were checked, not yet recorded: the grant
/// records it ([`record`]) when nothing else can refuse the request.
#[derive(Debug)]
pub(crate) struct Proof(VerifiedProof);

impl Proof {
    /// The RFC 7638 thumbprint of the proof's key: the `jkt` its tokens are bound to.
    pub(crate) fn jkt(&self) -> &str {
        &self.0.jkt
    }
}

/// Checks the `DPoP` header values of a `method` request to `url` (the issuer's public
/// URL and the endpoint's path, so it holds behind a proxy): none is `None`; more than
/// one, or one that fails a check, is `invalid_dpop_proof`; a missing or stale nonce
/// where one is needed is `use_dpop_nonce` with a fresh one.
pub(crate) fn check(
    core: &Core,
    headers: &[&str],
    method: &str,
    url: &str,
) -> Result<Option<Proof>, OAuthError> {
    let value = match headers {
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(OAuthError::InvalidDpopProof("more than one DPoP header")),
    };
    let now = core.clock.now();
    let config = &core.config.dpop;
    let check = ProofCheck::new(method, url, now).with_window(config.proof_window, config.leeway);
    let verified = proof::verify_proof(value, &check).map_err(refusal)?;
    // A nonce we did not hand out (another server's, or stale) is never accepted, even
    // when nonces are optional: the client is told the current one instead.
    let nonce_ok = match verified.nonce.as_deref() {
        Some(n) => core.dpop_nonces.accepts(n, now),
        None => !config.require_nonce,
    };
    if !nonce_ok {
        return Err(OAuthError::UseDpopNonce {
            nonce: core.dpop_nonces.current(now),
        });
    }
    Ok(Some(Proof(verified)))
}

/// Records `proof` in this node's replay cache until its `iat` leaves the window:
/// `invalid_dpop_proof` when it was used before, `temporarily_unavailable` when the
/// cache is full of live proofs. Call it only once every other check passed.
pub(crate) fn record(core: &Core, proof: &Proof) -> Result<(), OAuthError> {
    let config = &core.config.dpop;
    let until = proof
        .0
        .iat
        .saturating_add(config.proof_window + config.leeway);
    match core
        .dpop_replay
        .record(&proof.0.jkt, &proof.0.jti, until, core.clock.now())
    {
        Ok(()) => Ok(()),
        Err(Replay::Seen) => Err(OAuthError::InvalidDpopProof(
            "the DPoP proof was used before",
        )),
        Err(Replay::Full { retry_after }) => {
            tracing::warn!("DPoP replay cache full: proofs refused until entries end");
            Err(OAuthError::Busy { retry_after })
        }
    }
}

/// The nonce to send in `DPoP-Nonce` on every token response when nonces are required.
pub(crate) fn nonce_to_send(core: &Core) -> Option<String> {
    core.config
        .dpop
        .require_nonce
        .then(|| core.dpop_nonces.current(core.clock.now()))
}

/// The `token_type` of a response whose access token is bound to `jkt` (or not).
pub(crate) fn token_type(jkt: Option<&str>) -> &'static str {
    if jkt.is_some() { "DPoP" } else { "Bearer" }
}

/// The client-facing reason for a proof `tessera_token` refused (never the proof).
fn refusal(e: tessera_token::Error) -> OAuthError {
    use tessera_token::Error as E;
    OAuthError::InvalidDpopProof(match e {
        E::InvalidDpopProof(reason) => reason,
        E::TooLarge { .. } => "the DPoP proof is too large",
        E::BadSignature => "the DPoP proof's signature does not verify",
        E::AlgNone | E::AlgMismatch | E::Unsupported => {
            "the DPoP proof's alg must be EdDSA, ES256, RS256 or PS256 and fit its jwk"
        }
        E::WrongType => "the DPoP proof's typ must be dpop+jwt",
        E::InvalidKey(_) | E::WeakKey(_) => "the DPoP proof's jwk is not an acceptable public key",
        _ => "the DPoP proof is not a well-formed JWT with a public jwk",
    })
}
