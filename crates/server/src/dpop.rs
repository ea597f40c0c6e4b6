//! DPoP at the token endpoint (RFC 9449 sections 5 and 8): the one check of a request's
//! `DPoP` header (signature and claims by `tessera_token::dpop`, against the issuer's
//! public token URL; then the server nonce), and the one place a checked proof is
//! recorded in the replay cache, which the grants call once every other check passed.

use std::time::Duration;

use tessera_token::dpop::{self as proof, ProofCheck, Replay, VerifiedProof};

use crate::oauth::OAuthError;
use crate::state::Core;

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

/// Records `proof` in this node's replay cache until its `iat` has left the window:
/// `invalid_dpop_proof` when it was used before, `temporarily_unavailable` when the
/// cache is full of live proofs or `client` holds its share of it. Call it only once every other check passed, so a
/// refused request does not spend its proof.
pub(crate) fn record(core: &Core, client: &str, proof: &Proof) -> Result<(), OAuthError> {
    let config = &core.config.dpop;
    // `verify_proof` still accepts `iat` at exactly window + leeway from now: the entry
    // must outlive that second, so it ends one second later.
    let until = proof
        .0
        .iat
        .saturating_add(config.proof_window + config.leeway + Duration::from_secs(1));
    match core.dpop_replay.record(
        client,
        &proof.0.jkt,
        proof.0.iat,
        &proof.0.jti,
        until,
        core.clock.now(),
    ) {
        Ok(()) => Ok(()),
        Err(Replay::Seen) => Err(OAuthError::InvalidDpopProof(
            "the DPoP proof was used before",
        )),
        Err(Replay::Full { retry_after }) => {
            tracing::warn!(
                client_id = client,
                "DPoP replay cache (or this client's share) full: proofs refused until entries end"
            );
            Err(OAuthError::ProofsBusy { retry_after })
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tessera_token::dpop::sign_proof;
    use tessera_token::{Algorithm, SigningKey};

    use super::*;
    use crate::state::testing;

    const URL: &str = "http://127.0.0.1:8080/token";

    fn claims(core: &Core, jti: &str) -> Value {
        json!({"jti": jti, "htm": "POST", "htu": URL, "iat": core.clock.now().secs()})
    }

    fn key() -> SigningKey {
        SigningKey::generate(Algorithm::Es256).unwrap()
    }

    fn checked(core: &Core, proof: &str) -> Result<Option<Proof>, OAuthError> {
        check(core, &[proof], "POST", URL)
    }

    #[tokio::test]
    async fn a_valid_proof_names_its_key_and_is_used_once() {
        let (core, _dir, _clock) = testing::core().await;
        let key = key();
        let proof = sign_proof(&key, &claims(&core, "j1")).unwrap();
        let ok = checked(&core, &proof).unwrap().unwrap();
        assert_eq!(ok.jkt(), key.public_jwk().unwrap().thumbprint().unwrap());
        assert!(check(&core, &[], "POST", URL).unwrap().is_none());
        record(&core, "c", &ok).unwrap();
        // The same proof again passes the checks but not the replay cache.
        let again = checked(&core, &proof).unwrap().unwrap();
        assert_eq!(
            record(&core, "c", &again).unwrap_err(),
            OAuthError::InvalidDpopProof("the DPoP proof was used before")
        );
    }

    #[tokio::test]
    async fn proofs_for_another_request_time_or_count_are_refused() {
        let (core, _dir, clock) = testing::core().await;
        let key = key();
        let code = |r: Result<Option<Proof>, OAuthError>| r.unwrap_err().code();
        let proof = sign_proof(&key, &claims(&core, "j")).unwrap();
        assert_eq!(
            code(check(&core, &[&proof, &proof], "POST", URL)),
            "invalid_dpop_proof"
        );
        assert_eq!(
            code(check(&core, &[&proof], "GET", URL)),
            "invalid_dpop_proof"
        );
        let other = "http://127.0.0.1:8080/revoke";
        assert_eq!(
            code(check(&core, &[&proof], "POST", other)),
            "invalid_dpop_proof"
        );
        let mut stale = claims(&core, "j2");
        stale["iat"] = json!(core.clock.now().secs() - 66);
        let stale = sign_proof(&key, &stale).unwrap();
        assert_eq!(code(checked(&core, &stale)), "invalid_dpop_proof");
        // Within the window plus the leeway (60 + 5 s) it passes.
        clock.advance(Duration::from_secs(65));
        assert!(checked(&core, &proof).is_ok());
        assert_eq!(code(checked(&core, "not.a.proof")), "invalid_dpop_proof");
        let hmac = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkhTMjU2In0.e30.c2ln";
        assert_eq!(code(checked(&core, hmac)), "invalid_dpop_proof");
    }

    /// `verify_proof` accepts `iat` up to window + leeway (65 s) away, inclusive: at that
    /// very second the proof still passes the checks, so the cache must still know it.
    #[tokio::test]
    async fn a_proof_replayed_at_the_last_second_of_its_window_is_refused() {
        let (core, _dir, clock) = testing::core().await;
        let proof = sign_proof(&key(), &claims(&core, "edge")).unwrap();
        record(&core, "c", &checked(&core, &proof).unwrap().unwrap()).unwrap();
        clock.advance(Duration::from_secs(65));
        let again = checked(&core, &proof).unwrap().unwrap();
        assert_eq!(
            record(&core, "c", &again).unwrap_err(),
            OAuthError::InvalidDpopProof("the DPoP proof was used before")
        );
        clock.advance(Duration::from_secs(1));
        assert!(checked(&core, &proof).is_err(), "out of the window");
    }

    #[tokio::test]
    async fn a_required_nonce_is_asked_for_and_the_given_one_is_accepted() {
        let (mut core, _dir, clock) = testing::core().await;
        core.config.dpop.require_nonce = true;
        let key = key();
        let bare = sign_proof(&key, &claims(&core, "j1")).unwrap();
        let Err(OAuthError::UseDpopNonce { nonce }) = checked(&core, &bare) else {
            panic!("a proof without a nonce must be answered use_dpop_nonce");
        };
        assert_eq!(nonce_to_send(&core).as_deref(), Some(nonce.as_str()));
        let mut with = claims(&core, "j2");
        with["nonce"] = json!(nonce);
        let with = sign_proof(&key, &with).unwrap();
        assert!(checked(&core, &with).unwrap().is_some());
        // Three steps later the nonce is stale: a fresh one is handed out.
        clock.advance(Duration::from_secs(180));
        let mut late = claims(&core, "j3");
        late["nonce"] = json!(nonce);
        let late = sign_proof(&key, &late).unwrap();
        match checked(&core, &late) {
            Err(OAuthError::UseDpopNonce { nonce: fresh }) => assert_ne!(fresh, nonce),
            other => panic!("expected use_dpop_nonce, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn without_required_nonces_none_is_sent_and_a_foreign_one_is_refused() {
        let (core, _dir, _clock) = testing::core().await;
        assert_eq!(nonce_to_send(&core), None);
        let mut foreign = claims(&core, "j");
        foreign["nonce"] = json!("bm90LW91cnM");
        let foreign = sign_proof(&key(), &foreign).unwrap();
        assert_eq!(
            checked(&core, &foreign).unwrap_err().code(),
            "use_dpop_nonce"
        );
    }

    #[tokio::test]
    async fn a_full_replay_cache_answers_503_with_retry_after_and_forgets_nothing() {
        use axum::response::IntoResponse;

        let (mut core, _dir, clock) = testing::core().await;
        core.dpop_replay =
            tessera_token::dpop::ReplayCache::new(1, crate::state::dpop::CLIENT_SHARE);
        let key = key();
        let first = checked(&core, &sign_proof(&key, &claims(&core, "a")).unwrap())
            .unwrap()
            .unwrap();
        record(&core, "c", &first).unwrap();
        let second = checked(&core, &sign_proof(&key, &claims(&core, "b")).unwrap())
            .unwrap()
            .unwrap();
        let full = record(&core, "c", &second).unwrap_err();
        assert_eq!(full, OAuthError::ProofsBusy { retry_after: 66 });
        let response = full.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "66");
        // Once the first proof can no longer pass the window, its place is free; it is
        // never forgotten before, not even at the window's last second.
        clock.advance(Duration::from_secs(65));
        assert_eq!(
            record(&core, "c", &first).unwrap_err().code(),
            "invalid_dpop_proof"
        );
        assert_eq!(
            record(&core, "c", &second).unwrap_err().code(),
            "temporarily_unavailable"
        );
        clock.advance(Duration::from_secs(1));
        record(&core, "c", &second).unwrap();
    }

    #[tokio::test]
    async fn of_simultaneous_requests_with_one_proof_exactly_one_is_recorded() {
        let (core, _dir, _clock) = testing::core().await;
        let core = std::sync::Arc::new(core);
        let proof = sign_proof(&key(), &claims(&core, "same")).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (core, proof) = (std::sync::Arc::clone(&core), proof.clone());
                tokio::spawn(async move {
                    let ok = checked(&core, &proof).unwrap().unwrap();
                    record(&core, "c", &ok).is_ok()
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(wins, 1);
    }
}
