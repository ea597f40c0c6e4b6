//! [`GuardBuilder`]: the guard's options with their safe defaults, checked once in
//! [`GuardBuilder::build`].

use std::sync::Arc;
use std::time::Duration;

use tessera_token::{SystemClock, Validation};
use zeroize::Zeroizing;

use crate::assurance::AcrLadder;
use crate::cache::VerifiedCache;
use crate::challenge::Challenges;
use crate::dpop::{DpopPolicy, DpopReplayCache, DpopSettings, NonceKey, replay_cache};
use crate::guard::Inner;
use crate::metadata::ResourceMetadata;
use crate::revocation::RevocationCheck;
use crate::source::TokenSources;
use crate::{BuildError, Clock, Guard, Verifier};

/// Builds a [`Guard`]. The verifier and the validation policy (issuer and audience) are
/// mandatory; everything else has a safe default.
pub struct GuardBuilder {
    inner: Inner,
    cache_capacity: usize,
    challenges: Challenges,
    replay_capacity: usize,
    replay: Option<DpopReplayCache>,
    nonce: Option<(Zeroizing<Vec<u8>>, Duration)>,
}

/// Default capacity of the DPoP replay cache, in proofs.
const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// Longest DPoP proof window accepted by [`GuardBuilder::dpop_proof_window`].
const MAX_PROOF_WINDOW: Duration = Duration::from_secs(300);
/// Longest clock-skew leeway accepted by [`GuardBuilder::dpop_proof_window`].
const MAX_PROOF_LEEWAY: Duration = Duration::from_secs(60);
/// Largest [`GuardBuilder::dpop_key_cache_capacity`]: one client can fill the cache with
/// headers of its own (each at most 8 KiB), so its size must stay a memory bound.
const MAX_KEY_CACHE_CAPACITY: usize = 65_536;

impl Guard {
    /// Starts a guard verifying with `verifier` under `validation`.
    pub fn builder(verifier: Verifier, validation: Validation) -> GuardBuilder {
        GuardBuilder {
            inner: Inner {
                verifier,
                validation,
                sources: TokenSources::default(),
                cache: VerifiedCache::new(0),
                cache_ttl: Duration::from_secs(300),
                revocation: None,
                clock: Arc::new(SystemClock),
                challenges: Arc::default(),
                dpop: DpopSettings::new(1),
                metadata: None,
                acr_ladder: AcrLadder::default(),
            },
            cache_capacity: 10_000,
            challenges: Challenges::default(),
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            replay: None,
            nonce: None,
        }
    }
}

impl GuardBuilder {
    /// The `realm` of challenges (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.challenges.realm = realm.into();
        self
    }

    /// Which schemes are accepted (default [`DpopPolicy::Allowed`]: unbound tokens as
    /// `Bearer`, DPoP-bound tokens only as `DPoP` with their proof).
    pub fn dpop(mut self, policy: DpopPolicy) -> Self {
        self.inner.dpop.policy = policy;
        self
    }

    /// The public URL clients reach this API at (e.g. `https://api.example` behind a
    /// proxy, with a path prefix if any): a proof's `htu` must be it plus the request's
    /// path. Without it the guard builds the URL from the request's `Host` header (https,
    /// or http on loopback; a `Host` that is not a bare `host[:port]` is refused), which
    /// the client controls: set it in production. [`GuardBuilder::build`] logs a warning
    /// when DPoP is accepted without it.
    pub fn public_base_url(mut self, url: impl Into<String>) -> Self {
        self.inner.dpop.public_base_url = Some(url.into());
        self
    }

    /// How far a proof's `iat` may be from now (default 60 s) and the clock-skew leeway
    /// on top (default 5 s), at most 300 s and 60 s ([`GuardBuilder::build`] refuses
    /// more). A proof is remembered in the replay cache this long.
    pub fn dpop_proof_window(mut self, window: Duration, leeway: Duration) -> Self {
        self.inner.dpop.window = window;
        self.inner.dpop.leeway = leeway;
        self
    }

    /// Requires guard-issued nonces in proofs (RFC 9449 section 9): a proof without the
    /// current one is refused with `use_dpop_nonce` and a fresh `DPoP-Nonce`. Nonces are
    /// an HMAC of the time step under `secret` (at least 32 bytes), so every instance
    /// configured with the same secret accepts the others' nonces; the previous, current
    /// and next step's nonces are accepted (an instance whose clock runs up to a step
    /// ahead hands out the next one), so a nonce lives one to two `step`s. Off by default.
    pub fn dpop_nonce(mut self, secret: impl Into<Vec<u8>>, step: Duration) -> Self {
        self.nonce = Some((Zeroizing::new(secret.into()), step));
        self
    }

    /// Capacity of the DPoP replay cache in proofs (default 100 000). When it is full of
    /// proofs still inside their window, new proofs are refused (503 with `Retry-After`)
    /// rather than a live one forgotten; one proof key may hold at most a quarter of it.
    pub fn dpop_replay_capacity(mut self, capacity: usize) -> Self {
        self.replay_capacity = capacity;
        self
    }

    /// Capacity of the cache of DPoP proof headers (default
    /// [`ProofKeyCache::DEFAULT_CAPACITY`](tessera_token::dpop::ProofKeyCache::DEFAULT_CAPACITY);
    /// 0 turns it off). A client sends the same header (its public key) with every proof:
    /// a header seen in a proof that verified is not parsed, nor its key built and
    /// thumbprinted, again. Every proof's signature is still checked. At most 65,536
    /// ([`GuardBuilder::build`] refuses more).
    pub fn dpop_key_cache_capacity(mut self, capacity: usize) -> Self {
        self.inner.dpop.keys = tessera_token::dpop::ProofKeyCache::new(capacity);
        self
    }

    /// Uses `cache` as the DPoP replay cache (instead of a new one of
    /// [`GuardBuilder::dpop_replay_capacity`]): give a guard that replaces another (a key
    /// rotation) the cache of the one it replaces, so the proofs that one accepted stay
    /// spent. The guards sharing it should have the same proof window.
    pub fn dpop_replay_cache(mut self, cache: DpopReplayCache) -> Self {
        self.replay = Some(cache);
        self
    }

    /// Serves RFC 9728 protected-resource metadata ([`Guard::metadata_router`]) and sends
    /// its URL as `resource_metadata` in every challenge. The guard fills in the members
    /// it decides: `bearer_methods_supported`, `dpop_signing_alg_values_supported`,
    /// `dpop_bound_access_tokens_required`.
    pub fn resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        self.inner.metadata = Some(metadata);
        self
    }

    /// Token sources besides the `Authorization` header (default: none).
    pub fn sources(mut self, sources: TokenSources) -> Self {
        self.inner.sources = sources;
        self
    }

    /// Verified-token cache capacity in tokens (default 10 000; 0 turns it off).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Longest time a verified token stays cached (default 5 min; never past `exp`).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.inner.cache_ttl = ttl;
        self
    }

    /// Revocation check run on every accepted token (e.g. a feed's [`crate::RevocationList`]).
    pub fn revocation(mut self, check: Arc<dyn RevocationCheck>) -> Self {
        self.inner.revocation = Some(check);
        self
    }

    /// The time source (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.inner.clock = clock;
        self
    }

    /// The issuer's `acr` values, lowest first, for [`crate::RequireAcr`] (default
    /// Tessera's, [`crate::TESSERA_ACR_VALUES`]).
    pub fn acr_ladder(mut self, ladder: AcrLadder) -> Self {
        self.inner.acr_ladder = ladder;
        self
    }

    /// Whether error responses carry a JSON body `{"error", "error_description"}`
    /// (default true).
    pub fn json_body(mut self, json: bool) -> Self {
        self.challenges.json_body = json;
        self
    }

    /// The guard. Refuses a remote issuer the validation policy would not accept (every
    /// token would then fail with "issuer not accepted").
    pub fn build(mut self) -> Result<Guard, BuildError> {
        if let Some(issuer) = self.inner.verifier.issuer()
            && !self.inner.validation.issuers().iter().any(|i| i == issuer)
        {
            return Err(BuildError::Invalid(
                "validation: the remote issuer must be one of the accepted issuers; build the Validation with the same issuer URL",
            ));
        }
        self.inner.cache = VerifiedCache::new(self.cache_capacity);
        if self.inner.dpop.keys.capacity() > MAX_KEY_CACHE_CAPACITY {
            return Err(BuildError::Invalid(
                "dpop_key_cache_capacity: at most 65536 headers (each up to 8 KiB)",
            ));
        }
        if self.inner.dpop.window > MAX_PROOF_WINDOW || self.inner.dpop.leeway > MAX_PROOF_LEEWAY {
            return Err(BuildError::Invalid(
                "dpop_proof_window: the window may be at most 300 s and the leeway at most 60 s",
            ));
        }
        if self.inner.dpop.policy != DpopPolicy::Disabled
            && self.inner.dpop.public_base_url.is_none()
        {
            tracing::warn!(
                "DPoP is accepted without public_base_url: proofs are checked against the URL the request's Host header names; set public_base_url in production"
            );
        }
        if let Some(base) = &self.inner.dpop.public_base_url {
            // Plain http is the operator's choice (the server's dangerous_allow_http); the
            // comparison works the same.
            let url = url::Url::parse(base).map_err(|_| BuildError::InvalidUrl {
                field: "public_base_url",
            })?;
            if !matches!(url.scheme(), "https" | "http") || !url.has_host() {
                return Err(BuildError::InvalidUrl {
                    field: "public_base_url",
                });
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(BuildError::Invalid(
                    "public_base_url: give scheme, host and path prefix only, without a query or fragment",
                ));
            }
        }
        if let Some((secret, step)) = &self.nonce {
            if secret.len() < 32 {
                return Err(BuildError::Invalid(
                    "dpop_nonce: the secret must be at least 32 random bytes",
                ));
            }
            self.inner.dpop.nonce = Some(NonceKey::new(secret, *step));
        }
        let policy = self.inner.dpop.policy;
        self.inner.dpop.replay = match self.replay.take() {
            Some(shared) => shared.0,
            None => Arc::new(replay_cache(self.replay_capacity)),
        };
        self.challenges.policy = policy;
        if let Some(meta) = &mut self.inner.metadata {
            meta.settle(policy, &self.inner.sources)?;
            self.challenges.resource_metadata = Some(meta.url().to_owned());
        }
        self.inner.challenges = Arc::new(self.challenges);
        Ok(Guard(Arc::new(self.inner)))
    }
}
