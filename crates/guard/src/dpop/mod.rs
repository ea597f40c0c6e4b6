//! DPoP at the resource server (RFC 9449 section 7): which schemes a guard accepts, and
//! the check of a request's binding after its token verified, run on every request
//! (warm cache or not): the token's `cnf` against the scheme, then the proof (key
//! thumbprint, method, public URL, `iat`, `ath`, and last its signature), the nonce, and
//! last the replay cache.

mod nonce;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::OriginalUri;
use http::HeaderName;
use http::request::Parts;
use tessera_token::dpop::{self, ProofCheck, ProofKeyCache, Replay, ReplayCache};
use tessera_token::{Error as TokenError, TokenHash, UnixTime};

pub(crate) use nonce::NonceKey;

use crate::challenge::Scheme;
use crate::{GuardError, Identity};

/// The `DPoP` request header carrying the proof.
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header (RFC 9449 section 8.1).
pub(crate) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
/// The refusal of a bearer token on a route that requires DPoP.
pub(crate) const DPOP_REQUIRED: &str = "this resource requires a DPoP-bound token";

/// Which authentication schemes a guard accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopPolicy {
    /// `Bearer` only: the `DPoP` scheme is refused, and so is every DPoP-bound token.
    Disabled,
    /// Both (the default): unbound tokens as `Bearer`, bound tokens only as `DPoP` with
    /// their proof.
    #[default]
    Allowed,
    /// `DPoP` only: every token must be bound and come with its proof (for a whole
    /// guard; [`crate::RequireDpop`] does it per route).
    Required,
}

/// A DPoP replay cache several guards can share
/// ([`crate::GuardBuilder::dpop_replay_cache`]): a guard rebuilt (say, on a key rotation)
/// with the cache of the one it replaces still refuses the proofs that one accepted.
#[derive(Clone)]
pub struct DpopReplayCache(pub(crate) Arc<ReplayCache>);

/// One proof key may hold at most 1/`KEY_SHARE` of a guard's replay cache, so one token
/// holder flooding the guard with fresh proofs cannot refuse DPoP to everyone else.
pub(crate) const KEY_SHARE: usize = 4;

impl DpopReplayCache {
    /// A cache of at most `capacity` live proofs (see
    /// [`crate::GuardBuilder::dpop_replay_capacity`]).
    pub fn new(capacity: usize) -> Self {
        DpopReplayCache(Arc::new(replay_cache(capacity)))
    }
}

/// The guard's replay cache: entries owned by their proof key.
pub(crate) fn replay_cache(capacity: usize) -> ReplayCache {
    ReplayCache::new(capacity, KEY_SHARE)
}

impl std::fmt::Debug for DpopReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopReplayCache").finish_non_exhaustive()
    }
}

/// The guard's DPoP settings and state.
pub(crate) struct DpopSettings {
    pub(crate) policy: DpopPolicy,
    /// The public URL the API is reached at (scheme, host, optional path prefix).
    pub(crate) public_base_url: Option<String>,
    pub(crate) window: Duration,
    pub(crate) leeway: Duration,
    pub(crate) nonce: Option<NonceKey>,
    pub(crate) replay: Arc<ReplayCache>,
    /// Proof headers (client keys) seen in proofs that verified.
    pub(crate) keys: ProofKeyCache,
}

impl DpopSettings {
    pub(crate) fn new(replay_capacity: usize) -> Self {
        DpopSettings {
            policy: DpopPolicy::Allowed,
            public_base_url: None,
            window: dpop::DEFAULT_PROOF_WINDOW,
            leeway: Duration::from_secs(5),
            nonce: None,
            replay: Arc::new(replay_cache(replay_capacity)),
            keys: ProofKeyCache::default(),
        }
    }

    /// Checks how the verified token `raw` (with `identity`) was presented with `scheme`
    /// on the request `parts`. `hash`, when the caller has it, is the SHA-256 of `raw`'s
    /// bytes (the cache's key): the proof's `ath` is checked against it rather than
    /// hashing the token again.
    pub(crate) fn check(
        &self,
        parts: &Parts,
        scheme: Scheme,
        raw: &str,
        hash: Option<&TokenHash>,
        identity: &Identity,
        now: UnixTime,
    ) -> Result<(), GuardError> {
        let jkt = bound_key(identity)?;
        let mut proofs = parts.headers.get_all(DPOP).iter();
        let proof = proofs.next();
        match scheme {
            Scheme::Bearer => {
                if proof.is_some() {
                    return Err(GuardError::InvalidRequest(
                        "a DPoP proof came with the Bearer scheme".into(),
                    ));
                }
                if jkt.is_some() {
                    return Err(GuardError::TokenBinding(
                        "the token is bound to a key: present it with the DPoP scheme and a proof",
                    ));
                }
                if self.policy == DpopPolicy::Required {
                    return Err(GuardError::TokenBinding(DPOP_REQUIRED));
                }
                Ok(())
            }
            Scheme::Dpop => {
                if self.policy == DpopPolicy::Disabled {
                    return Err(GuardError::InvalidRequest(
                        "the DPoP scheme is not accepted here".into(),
                    ));
                }
                let Some(jkt) = jkt else {
                    return Err(GuardError::TokenBinding(
                        "the token is not bound to a key: present it with the Bearer scheme",
                    ));
                };
                let Some(proof) = proof else {
                    return Err(invalid_proof("missing DPoP proof"));
                };
                if proofs.next().is_some() {
                    return Err(invalid_proof("more than one DPoP header"));
                }
                let proof = proof
                    .to_str()
                    .map_err(|_| invalid_proof("malformed DPoP proof"))?;
                // The cache keys by SHA-256 of the token's bytes, which is what `ath`
                // hashes: one hash serves both.
                let hash = hash
                    .copied()
                    .unwrap_or_else(|| TokenHash::of(raw.as_bytes()));
                self.check_proof(parts, proof, &hash, jkt, now)
            }
        }
    }

    fn check_proof(
        &self,
        parts: &Parts,
        proof: &str,
        token_hash: &TokenHash,
        jkt: &str,
        now: UnixTime,
    ) -> Result<(), GuardError> {
        let url = self.request_url(parts)?;
        let check = ProofCheck::new(parts.method.as_str(), &url, now)
            .with_access_token_hash(token_hash)
            .with_jkt(jkt)
            .with_window(self.window, self.leeway);
        let verified =
            dpop::verify_proof_cached(proof, &check, &self.keys).map_err(|e| match e {
                TokenError::InvalidDpopProof(why) => invalid_proof(why),
                TokenError::BadSignature => invalid_proof("invalid proof signature"),
                _ => invalid_proof("the proof is not an acceptable JWS"),
            })?;
        if let Some(nonces) = &self.nonce
            && !verified
                .nonce
                .as_deref()
                .is_some_and(|n| nonces.accepts(n, now))
        {
            return Err(GuardError::UseDpopNonce(nonces.current(now)));
        }
        // Last: a proof is spent only when everything else about it passed.
        // `verify_proof` accepts `iat` up to window + leeway away, that last second
        // included: the entry outlives it by a second.
        let until = verified.iat.saturating_add(
            self.window
                .saturating_add(self.leeway)
                .saturating_add(Duration::from_secs(1)),
        );
        match self.replay.record(
            &verified.jkt,
            &verified.jkt,
            verified.iat,
            &verified.jti,
            until,
            now,
        ) {
            Ok(()) => Ok(()),
            Err(Replay::Seen) => Err(invalid_proof("the proof was already used")),
            Err(Replay::Full { .. }) => {
                Err(GuardError::Unavailable("the DPoP replay cache is full"))
            }
        }
    }

    /// The request's public URL: the configured base URL plus the request's path (the
    /// original one when the router is nested); else the request's own absolute URI, or
    /// its `Host` with `http` on loopback and `https` elsewhere.
    fn request_url(&self, parts: &Parts) -> Result<String, GuardError> {
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |o| &o.0);
        let path = uri.path();
        if let Some(base) = &self.public_base_url {
            return Ok(format!("{}{path}", base.trim_end_matches('/')));
        }
        if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
            let authority = bare_host(authority.as_str())?;
            return Ok(format!("{scheme}://{authority}{path}"));
        }
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| invalid_proof("the request has no Host to check htu against"))?;
        let host = bare_host(host)?;
        let scheme = if crate::net::is_loopback_host(host) {
            "http"
        } else {
            "https"
        };
        Ok(format!("{scheme}://{host}{path}"))
    }
}

/// `host` if it is a bare `host[:port]`: a `Host` (or authority) with a path, query,
/// fragment, userinfo or whitespace would shift the URL the proof's `htu` is compared with
/// (`Host: api.example/notes` with `GET /export` would check `/notes/export`).
fn bare_host(host: &str) -> Result<&str, GuardError> {
    if host.is_empty()
        || host.chars().any(|c| {
            matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace() || c.is_control()
        })
    {
        return Err(GuardError::InvalidRequest(
            "the Host header is not a bare host[:port]".into(),
        ));
    }
    Ok(host)
}

fn invalid_proof(why: &'static str) -> GuardError {
    GuardError::InvalidDpopProof(Cow::Borrowed(why))
}

/// The token's DPoP key thumbprint, if bound; a confirmation method the guard cannot
/// check (mutual TLS, or anything unknown) refuses the token rather than ignoring it.
fn bound_key(identity: &Identity) -> Result<Option<&str>, GuardError> {
    let Some(cnf) = &identity.cnf else {
        return Ok(None);
    };
    if cnf.x5t_s256.is_some() || !cnf.other.is_empty() {
        return Err(GuardError::TokenBinding(
            "the token is bound by a confirmation method this resource does not support",
        ));
    }
    match cnf.jkt.as_deref() {
        Some(jkt) => Ok(Some(jkt)),
        None => Err(GuardError::TokenBinding(
            "the token has an empty confirmation",
        )),
    }
}
