//! The [`Guard`]: the policy value (verifier, validation, sources, cache, revocation,
//! DPoP, clock) and the pipeline that runs it on a request.
//!
//! source -> RFC 6750 / RFC 9449 parse -> size limit -> cache lookup by token hash ->
//! verify -> validate -> revocation check -> binding (scheme, DPoP proof, nonce, replay;
//! on every request, cached or not) -> identity (the scope check is per route).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use http::request::Parts;
use tessera_token::{BearerToken, Clock, Error as TokenError, TokenHash, UnixTime, Validation};

use crate::assurance::{AcrLadder, AuthRequirement};
use crate::cache::VerifiedCache;
use crate::challenge::{self, Challenges, Scheme};
use crate::dpop::DpopSettings;
use crate::metadata::ResourceMetadata;
use crate::revocation::RevocationCheck;
use crate::source::{self, Found, TokenSources};
use crate::{AuthRejection, FetchError, GuardError, Identity, Verifier};

/// The resource-server guard: cheap to clone (an `Arc` inside), built once at start-up
/// with [`Guard::builder`], shared by the layer and the extractors.
#[derive(Clone)]
pub struct Guard(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) verifier: Verifier,
    pub(crate) validation: Validation,
    pub(crate) sources: TokenSources,
    pub(crate) cache: VerifiedCache,
    pub(crate) cache_ttl: Duration,
    pub(crate) revocation: Option<Arc<dyn RevocationCheck>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) challenges: Arc<Challenges>,
    pub(crate) dpop: DpopSettings,
    pub(crate) metadata: Option<ResourceMetadata>,
    pub(crate) acr_ladder: AcrLadder,
}

impl Guard {
    /// Authenticates a request head: `Ok(None)` when no token came. Form bodies are not
    /// read here (only the layer reads them).
    pub async fn authenticate(&self, parts: &Parts) -> Result<Option<Arc<Identity>>, GuardError> {
        if let Some(hit) = self.cached(parts) {
            return hit.map(Some);
        }
        let found =
            source::from_parts(parts, &self.0.sources).inspect_err(|e| self.log(e, None))?;
        match found {
            Found::Token(t, scheme) => self.verify_presented(parts, &t, scheme).await.map(Some),
            Found::MaybeInForm | Found::Nothing => Ok(None),
        }
    }

    /// Verifies one token presented alone, as `Bearer`: cache, verifier, revocation. A
    /// DPoP-bound token is refused here (its proof belongs to a request: use
    /// [`Guard::authenticate`] or the layer).
    pub async fn verify(&self, token: &BearerToken) -> Result<Arc<Identity>, GuardError> {
        let parts = http::Request::new(()).into_parts().0;
        self.verify_presented(&parts, token, Scheme::Bearer).await
    }

    /// Verifies `token`, then how the request `parts` presented it ([`DpopSettings::check`]).
    pub(crate) async fn verify_presented(
        &self,
        parts: &Parts,
        token: &BearerToken,
        scheme: Scheme,
    ) -> Result<Arc<Identity>, GuardError> {
        let (identity, hash) = self.verify_token(token).await?;
        self.check_binding(parts, scheme, token.expose(), hash.as_ref(), identity)
    }

    /// The binding check of a verified (or cached) token, on every request. `hash` is
    /// the cache's key for the token (its SHA-256), reused for the proof's `ath`.
    fn check_binding(
        &self,
        parts: &Parts,
        scheme: Scheme,
        raw: &str,
        hash: Option<&TokenHash>,
        identity: Arc<Identity>,
    ) -> Result<Arc<Identity>, GuardError> {
        let now = self.0.clock.now();
        match self.0.dpop.check(parts, scheme, raw, hash, &identity, now) {
            Ok(()) => Ok(identity),
            Err(e) => {
                self.log(&e, Some(raw));
                Err(e)
            }
        }
    }

    /// Verifies one token: cache, verifier, revocation. Also returns the token's SHA-256
    /// when the cache computed it.
    async fn verify_token(
        &self,
        token: &BearerToken,
    ) -> Result<(Arc<Identity>, Option<TokenHash>), GuardError> {
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
            let identity = self.check_revoked(identity, Some(hash), now, raw)?;
            return Ok((identity, Some(*hash)));
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
        Ok((identity, hash))
    }

    /// The warm path: a request whose only `Authorization` header is exactly
    /// `Bearer <token>` or `DPoP <token>` with a token already in the cache. A cached
    /// token passed the strict RFC 6750 parse before, and those exact bytes parse the
    /// same way again, so the parse is skipped; the query rule, the revocation check and
    /// the binding check (a fresh, unreplayed proof for a DPoP token) still apply. `None`
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
        let (token, scheme) = match value.as_bytes().strip_prefix(b"Bearer ") {
            Some(t) => (t, Scheme::Bearer),
            None => (value.as_bytes().strip_prefix(b"DPoP ")?, Scheme::Dpop),
        };
        if token.is_empty() || token.len() > self.0.validation.token_len_limit() {
            return None;
        }
        let now = self.0.clock.now();
        let hash = TokenHash::of(token);
        let identity = self.0.cache.get(&hash, now)?;
        let raw = std::str::from_utf8(token).unwrap_or_default();
        Some(
            self.check_revoked(identity, Some(&hash), now, raw)
                .and_then(|id| self.check_binding(parts, scheme, raw, Some(&hash), id)),
        )
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

    /// The RFC 6750 response for `err` (status, `WWW-Authenticate` challenges, optional
    /// JSON body) to a request that used the `Bearer` scheme; [`Guard::error_response_to`]
    /// answers a request in its own scheme.
    pub fn error_response(&self, err: &GuardError) -> Response {
        challenge::response(&self.0.challenges, Scheme::Bearer, err)
    }

    /// The response for `err` to the request `parts`: the error goes on the challenge of
    /// the scheme the request used (`Bearer` or `DPoP`, RFC 9449 section 7.1).
    pub fn error_response_to(&self, parts: &Parts, err: &GuardError) -> Response {
        challenge::response(&self.0.challenges, Scheme::of(&parts.headers), err)
    }

    /// The extractors' typed refusal for `err`, shaped by this guard's settings.
    pub(crate) fn rejection(&self, err: GuardError, scheme: Scheme) -> AuthRejection {
        AuthRejection::new(err, self.0.challenges.clone(), scheme)
    }

    /// The RFC 9728 metadata this guard serves, if configured.
    pub fn resource_metadata(&self) -> Option<&ResourceMetadata> {
        self.0.metadata.as_ref()
    }

    /// Fetches remote keys now, so the first request does not wait for them.
    pub async fn warm_up(&self) -> Result<(), FetchError> {
        self.0.verifier.warm_up(self.0.clock.now()).await
    }

    /// Checks an authenticated identity against a route's authentication requirement
    /// (RFC 9470) on the guard's `acr` ladder, clock and leeway; what [`crate::RequireAcr`]
    /// and [`crate::RequireAuthAge`] run, for handlers that decide per request.
    pub fn check_authentication(
        &self,
        identity: &Identity,
        requirement: &AuthRequirement,
    ) -> Result<(), GuardError> {
        requirement.check(
            identity.claims(),
            &self.0.acr_ladder,
            self.0.clock.now(),
            self.0.validation.clock_leeway(),
        )
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

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("verifier", &self.0.verifier)
            .field("issuers", &self.0.validation.issuers())
            .field("audiences", &self.0.validation.audiences())
            .field("realm", &self.0.challenges.realm)
            .field("dpop", &self.0.dpop.policy)
            .field("sources", &self.0.sources)
            .finish_non_exhaustive()
    }
}
