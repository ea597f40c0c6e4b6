//! The [`Guard`]: the policy value (verifier, validation, sources, cache, revocation,
//! clock) and the pipeline that runs it on a request.
//!
//! source -> RFC 6750 parse -> size limit -> cache lookup by token hash -> verify ->
//! validate -> revocation check -> identity (the scope check is per route).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use http::request::Parts;
use tessera_token::{
    BearerToken, Clock, Error as TokenError, SystemClock, TokenHash, UnixTime, Validation,
};

use crate::cache::VerifiedCache;
use crate::revocation::RevocationCheck;
use crate::source::{self, Found, TokenSources};
use crate::{AuthRejection, BuildError, FetchError, GuardError, Identity, Verifier, challenge};

/// The resource-server guard: cheap to clone (an `Arc` inside), built once at start-up
/// with [`Guard::builder`], shared by the layer and the extractors.
#[derive(Clone)]
pub struct Guard(Arc<Inner>);

struct Inner {
    verifier: Verifier,
    validation: Validation,
    realm: String,
    sources: TokenSources,
    cache: VerifiedCache,
    cache_ttl: Duration,
    revocation: Option<Arc<dyn RevocationCheck>>,
    clock: Arc<dyn Clock>,
    json_body: bool,
}

/// Builds a [`Guard`]. The verifier and the validation policy (issuer and audience) are
/// mandatory; everything else has a safe default.
pub struct GuardBuilder {
    inner: Inner,
    cache_capacity: usize,
}

impl Guard {
    /// Starts a guard verifying with `verifier` under `validation`.
    pub fn builder(verifier: Verifier, validation: Validation) -> GuardBuilder {
        GuardBuilder {
            inner: Inner {
                verifier,
                validation,
                realm: "api".into(),
                sources: TokenSources::default(),
                cache: VerifiedCache::new(0),
                cache_ttl: Duration::from_secs(300),
                revocation: None,
                clock: Arc::new(SystemClock),
                json_body: true,
            },
            cache_capacity: 10_000,
        }
    }

    /// Authenticates a request head: `Ok(None)` when no token came. Form bodies are not
    /// read here (only the layer reads them).
    pub async fn authenticate(&self, parts: &Parts) -> Result<Option<Arc<Identity>>, GuardError> {
        if let Some(hit) = self.cached(parts) {
            return hit.map(Some);
        }
        let found =
            source::from_parts(parts, &self.0.sources).inspect_err(|e| self.log(e, None))?;
        match found {
            Found::Token(t) => self.verify(&t).await.map(Some),
            Found::MaybeInForm | Found::Nothing => Ok(None),
        }
    }

    /// Verifies one token: cache, verifier, revocation.
    pub async fn verify(&self, token: &BearerToken) -> Result<Arc<Identity>, GuardError> {
        let inner = &*self.0;
        let now = inner.clock.now();
        let raw = token.expose();
        let limit = inner.validation.token_len_limit();
        if raw.len() > limit {
            let e = GuardError::InvalidToken(TokenError::TooLarge {
                len: raw.len(),
                limit,
            });
            self.log(&e, None);
            return Err(e);
        }
        // With the cache off there is nothing to look up: skip the hash.
        let hash = inner
            .cache
            .is_enabled()
            .then(|| TokenHash::of(raw.as_bytes()));
        if let Some(hash) = &hash
            && let Some(identity) = inner.cache.get(hash, now)
        {
            return self.check_revoked(identity, Some(hash), now, raw);
        }
        let verified = match inner.verifier.verify(token, &inner.validation, now).await {
            Ok(v) => v,
            Err(e) => {
                self.log(&e, Some(raw));
                return Err(e);
            }
        };
        let identity = Arc::new(verified.identity);
        let identity = self.check_revoked(identity, hash.as_ref(), now, raw)?;
        let mut until = now.saturating_add(inner.cache_ttl);
        if let Some(cap) = verified.cache_until {
            until = until.min(cap);
        }
        if let Some(exp) = identity.exp {
            until = until.min(exp);
        }
        if let Some(hash) = hash
            && until > now
        {
            inner.cache.insert(hash, identity.clone(), until);
        }
        Ok(identity)
    }

    /// The warm path: a request whose only `Authorization` header is exactly
    /// `Bearer <token>` with a token already in the cache. A cached token passed the
    /// strict RFC 6750 parse before, and those exact bytes parse the same way again, so
    /// the parse is skipped; the query rule and the revocation check still apply. `None`
    /// sends the request down the full path.
    pub(crate) fn cached(&self, parts: &Parts) -> Option<Result<Arc<Identity>, GuardError>> {
        if !self.0.cache.is_enabled() {
            return None;
        }
        if parts
            .uri
            .query()
            .is_some_and(source::query_has_access_token)
        {
            return None;
        }
        let mut values = parts.headers.get_all(http::header::AUTHORIZATION).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let token = value.as_bytes().strip_prefix(b"Bearer ")?;
        if token.is_empty() || token.len() > self.0.validation.token_len_limit() {
            return None;
        }
        let now = self.0.clock.now();
        let hash = TokenHash::of(token);
        let identity = self.0.cache.get(&hash, now)?;
        let raw = std::str::from_utf8(token).unwrap_or_default();
        Some(self.check_revoked(identity, Some(&hash), now, raw))
    }

    fn check_revoked(
        &self,
        identity: Arc<Identity>,
        hash: Option<&TokenHash>,
        now: UnixTime,
        raw: &str,
    ) -> Result<Arc<Identity>, GuardError> {
        if let Some(r) = &self.0.revocation
            && r.is_revoked(identity.claims(), now)
        {
            if let Some(hash) = hash {
                self.0.cache.remove(hash);
            }
            self.log(&GuardError::Revoked, Some(raw));
            return Err(GuardError::Revoked);
        }
        Ok(identity)
    }

    /// The RFC 6750 response for `err` (status, `WWW-Authenticate`, optional JSON body).
    pub fn error_response(&self, err: &GuardError) -> Response {
        challenge::response(&self.0.realm, self.0.json_body, err)
    }

    /// The extractors' typed refusal for `err`, shaped by this guard's settings.
    pub(crate) fn rejection(&self, err: GuardError) -> AuthRejection {
        AuthRejection::new(err, &self.0.realm, self.0.json_body)
    }

    /// Fetches remote keys now, so the first request does not wait for them.
    pub async fn warm_up(&self) -> Result<(), FetchError> {
        self.0.verifier.warm_up(self.0.clock.now()).await
    }

    /// The current time on the guard's clock.
    pub fn now(&self) -> UnixTime {
        self.0.clock.now()
    }

    /// Key-set fetches (discovery included) a remote verifier has completed so far,
    /// successful or not (for metrics and tests).
    pub fn key_fetches(&self) -> u64 {
        self.0.verifier.fetch_count()
    }

    /// Tokens in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.0.cache.len()
    }

    pub(crate) fn sources(&self) -> &TokenSources {
        &self.0.sources
    }

    /// Logs a refusal with its reason and the token's `kid`/`iss` (read unverified,
    /// never the token itself).
    pub(crate) fn log(&self, err: &GuardError, raw: Option<&str>) {
        // A refused token is routine (expired tokens, scanners): DEBUG, so a flood of bad
        // tokens is not a flood of log writes. A verifier that cannot work is a WARN.
        let serious = matches!(err, GuardError::Unavailable(_) | GuardError::NotConfigured);
        let enabled = if serious {
            tracing::enabled!(tracing::Level::WARN)
        } else {
            tracing::enabled!(tracing::Level::DEBUG)
        };
        // Decoding for kid/iss costs a parse: pay it only when the event is recorded.
        if !enabled {
            return;
        }
        if matches!(err, GuardError::MissingToken) {
            tracing::debug!(reason = %err, "request refused");
            return;
        }
        let (kid, iss) = raw
            .and_then(|t| tessera_token::decode_unverified(t).ok())
            .map(|u| (u.header.kid, u.claims.iss))
            .unwrap_or_default();
        let clip = |s: Option<String>| s.map(|s| s.chars().take(80).collect::<String>());
        let (kid, iss) = (clip(kid), clip(iss));
        if serious {
            tracing::warn!(reason = %err, kid, iss, "request refused");
        } else {
            tracing::debug!(reason = %err, kid, iss, "bearer token refused");
        }
    }
}

impl GuardBuilder {
    /// The `realm` of challenges (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.inner.realm = realm.into();
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

    /// Whether error responses carry a JSON body `{"error", "error_description"}`
    /// (default true).
    pub fn json_body(mut self, json: bool) -> Self {
        self.inner.json_body = json;
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
        Ok(Guard(Arc::new(self.inner)))
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("verifier", &self.0.verifier)
            .field("issuers", &self.0.validation.issuers())
            .field("audiences", &self.0.validation.audiences())
            .field("realm", &self.0.realm)
            .field("sources", &self.0.sources)
            .finish_non_exhaustive()
    }
}
