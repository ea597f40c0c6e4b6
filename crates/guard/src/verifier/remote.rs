//! The remote-issuer verifier: discovery, then the JWKS, cached per `Cache-Control`
//! within a floor and a ceiling, refreshed in the background, refetched on an unknown
//! `kid` at most once per interval, and served from cache while the issuer is down.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tessera_token::{Error as TokenError, JwkSet, KeySet, UnixTime, Validation};
use url::Url;

use super::discovery::discover_with;
use super::{Inner, Verifier};
use crate::net::{config_url, default_client, max_age, read_body, transport, url_allowed};
use crate::{BuildError, FetchError, GuardError, Identity};

/// Configuration of a remote issuer whose signing keys are fetched over HTTPS.
#[derive(Debug, Clone)]
pub struct RemoteIssuer {
    issuer: String,
    jwks_uri: Option<String>,
    floor: Duration,
    ceiling: Duration,
    default_ttl: Duration,
    unknown_kid_interval: Duration,
    retry_interval: Duration,
    client: Option<reqwest::Client>,
}

impl RemoteIssuer {
    /// Keys of `issuer`, found through its discovery metadata. The issuer must be https
    /// (plain http only on loopback).
    pub fn new(issuer: impl Into<String>) -> Self {
        RemoteIssuer {
            issuer: issuer.into(),
            jwks_uri: None,
            floor: Duration::from_secs(60),
            ceiling: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(300),
            unknown_kid_interval: Duration::from_secs(10),
            retry_interval: Duration::from_secs(2),
            client: None,
        }
    }

    /// Uses this JWKS URL instead of discovering it.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Shortest time a key set is kept, whatever `Cache-Control` says (default 60 s).
    pub fn cache_floor(mut self, d: Duration) -> Self {
        self.floor = d;
        self
    }

    /// Longest time a key set is kept before refreshing (default 24 h).
    pub fn cache_ceiling(mut self, d: Duration) -> Self {
        self.ceiling = d;
        self
    }

    /// How long a key set is kept when the response has no `max-age` (default 5 min).
    pub fn default_ttl(mut self, d: Duration) -> Self {
        self.default_ttl = d;
        self
    }

    /// An unknown `kid` triggers at most one refetch per this interval (default 10 s), so
    /// random `kid`s cannot make the guard hammer the issuer.
    pub fn unknown_kid_interval(mut self, d: Duration) -> Self {
        self.unknown_kid_interval = d;
        self
    }

    /// While no key set was ever fetched, a failed fetch is retried at most once per
    /// this interval (default 2 s); requests in between get 503.
    pub fn retry_interval(mut self, d: Duration) -> Self {
        self.retry_interval = d;
        self
    }

    /// Uses this HTTP client (default: 5 s connect and 10 s total timeouts, no redirects).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }
}

impl Verifier {
    /// Verifies with the keys of a remote issuer. Nothing is fetched yet: the first
    /// request (or [`crate::Guard::warm_up`]) does.
    pub fn remote(config: RemoteIssuer) -> Result<Self, BuildError> {
        config_url(&config.issuer, "issuer")?;
        let jwks_uri = config
            .jwks_uri
            .as_deref()
            .map(|u| config_url(u, "jwks_uri"))
            .transpose()?;
        if config.floor > config.ceiling {
            return Err(BuildError::Invalid(
                "cache_floor must not exceed cache_ceiling",
            ));
        }
        let client = match config.client.clone() {
            Some(c) => c,
            None => default_client()?,
        };
        Ok(Verifier {
            inner: Inner::Remote(RemoteJwks(Arc::new(Shared {
                jwks_uri: RwLock::new(jwks_uri),
                config,
                client,
                state: RwLock::new(None),
                fetch_lock: tokio::sync::Mutex::new(()),
                last_kid_fetch: AtomicI64::new(i64::MIN),
                last_failure: AtomicI64::new(i64::MIN),
                refreshing: AtomicBool::new(false),
                fetches: AtomicU64::new(0),
            }))),
        })
    }
}

#[derive(Clone)]
pub(super) struct RemoteJwks(Arc<Shared>);

struct Shared {
    config: RemoteIssuer,
    client: reqwest::Client,
    jwks_uri: RwLock<Option<Url>>,
    state: RwLock<Option<Arc<Loaded>>>,
    /// Single flight: one fetch at a time; waiters re-check the state after it.
    fetch_lock: tokio::sync::Mutex<()>,
    last_kid_fetch: AtomicI64,
    last_failure: AtomicI64,
    refreshing: AtomicBool,
    fetches: AtomicU64,
}

struct Loaded {
    keys: Arc<KeySet>,
    refresh_at: UnixTime,
    generation: u64,
}

impl RemoteJwks {
    pub(super) async fn verify(
        &self,
        token: &str,
        validation: &Validation,
        now: UnixTime,
    ) -> Result<Identity, GuardError> {
        let loaded = match self.current() {
            Some(l) => l,
            None => self.load_blocking(now).await?,
        };
        if now >= loaded.refresh_at {
            self.spawn_refresh(now);
        }
        match loaded.keys.verify(token, validation, now) {
            Err(TokenError::UnknownKid) => {}
            other => {
                return other
                    .map(Identity::from_verified)
                    .map_err(GuardError::InvalidToken);
            }
        }
        // Unknown kid: maybe a rotation. Under the fetch lock (single flight), use a set
        // someone fetched meanwhile, or fetch if the last unknown-kid fetch is at least
        // an interval old. Requests with known kids never take this lock.
        let fresh = {
            let _g = self.0.fetch_lock.lock().await;
            match self.current() {
                Some(cur) if cur.generation != loaded.generation => Some(cur),
                _ => {
                    let last = self.0.last_kid_fetch.load(Ordering::Acquire);
                    let interval = secs(self.0.config.unknown_kid_interval);
                    if now.secs().saturating_sub(last) >= interval {
                        self.0.last_kid_fetch.store(now.secs(), Ordering::Release);
                        self.fetch_and_store(now).await.ok()
                    } else {
                        None
                    }
                }
            }
        };
        match fresh {
            Some(l) => l
                .keys
                .verify(token, validation, now)
                .map(Identity::from_verified)
                .map_err(GuardError::InvalidToken),
            None => Err(GuardError::InvalidToken(TokenError::UnknownKid)),
        }
    }

    /// Fetches now (start-up warm-up).
    pub(super) async fn refresh(&self, now: UnixTime) -> Result<(), FetchError> {
        let _g = self.0.fetch_lock.lock().await;
        self.fetch_and_store(now).await.map(drop)
    }

    pub(super) fn issuer(&self) -> &str {
        &self.0.config.issuer
    }

    pub(super) fn fetch_count(&self) -> u64 {
        self.0.fetches.load(Ordering::Acquire)
    }

    fn current(&self) -> Option<Arc<Loaded>> {
        self.0
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// First load, single flight: waits for the fetch lock and uses the set another task
    /// loaded meanwhile; otherwise fetches, at most once per retry interval after a
    /// failure (requests in between get 503).
    async fn load_blocking(&self, now: UnixTime) -> Result<Arc<Loaded>, GuardError> {
        let _g = self.0.fetch_lock.lock().await;
        if let Some(cur) = self.current() {
            return Ok(cur);
        }
        let last = self.0.last_failure.load(Ordering::Acquire);
        if now.secs().saturating_sub(last) < secs(self.0.config.retry_interval) {
            return Err(GuardError::Unavailable("signing keys unavailable"));
        }
        self.fetch_and_store(now)
            .await
            .map_err(|_| GuardError::Unavailable("signing keys unavailable"))
    }

    /// Starts a background refresh unless one is running; requests keep using the
    /// current (stale) keys meanwhile.
    fn spawn_refresh(&self, now: UnixTime) {
        if self.0.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.0.refreshing.store(false, Ordering::Release);
            return;
        };
        let this = self.clone();
        rt.spawn(async move {
            let _g = this.0.fetch_lock.lock().await;
            if this.current().is_none_or(|l| now >= l.refresh_at) {
                let _ = this.fetch_and_store(now).await;
            }
            this.0.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches and installs a new key set; on failure keeps the old one, retried after
    /// the retry interval. Call with the fetch lock held.
    async fn fetch_and_store(&self, now: UnixTime) -> Result<Arc<Loaded>, FetchError> {
        let result = self.fetch().await;
        let current = self.current();
        let mut state = self.0.state.write().unwrap_or_else(PoisonError::into_inner);
        let outcome = match result {
            Ok((keys, ttl)) => {
                let loaded = Arc::new(Loaded {
                    keys: Arc::new(keys),
                    refresh_at: now.saturating_add(ttl),
                    generation: current.map_or(1, |c| c.generation + 1),
                });
                *state = Some(loaded.clone());
                Ok(loaded)
            }
            Err(e) => {
                tracing::warn!(
                    iss = %self.0.config.issuer,
                    error = %e,
                    cached = current.is_some(),
                    "JWKS fetch failed; keeping cached keys"
                );
                self.0.last_failure.store(now.secs(), Ordering::Release);
                if let Some(cur) = current {
                    *state = Some(Arc::new(Loaded {
                        keys: cur.keys.clone(),
                        refresh_at: now.saturating_add(self.0.config.retry_interval),
                        generation: cur.generation,
                    }));
                }
                Err(e)
            }
        };
        drop(state);
        // Counted once the outcome is installed: whoever sees the count sees the state.
        self.0.fetches.fetch_add(1, Ordering::Release);
        outcome
    }

    async fn fetch(&self) -> Result<(KeySet, Duration), FetchError> {
        let uri = self.jwks_url().await?;
        let resp = self
            .0
            .client
            .get(uri)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let c = &self.0.config;
        let ttl = max_age(resp.headers())
            .unwrap_or(c.default_ttl)
            .clamp(c.floor, c.ceiling);
        let body = read_body(resp).await?;
        let set = JwkSet::from_json(&body).map_err(|_| FetchError::Invalid("not a JWK Set"))?;
        let keys = KeySet::from_jwks(&set)
            .map_err(|_| FetchError::Invalid("JWK Set has an unusable key"))?;
        tracing::debug!(iss = %c.issuer, keys = keys.keys().len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
        Ok((keys, ttl))
    }

    async fn jwks_url(&self) -> Result<Url, FetchError> {
        if let Some(u) = self
            .0
            .jwks_uri
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(u);
        }
        let meta = discover_with(&self.0.client, &self.0.config.issuer).await?;
        let raw = meta
            .jwks_uri
            .ok_or(FetchError::Invalid("metadata has no jwks_uri"))?;
        let url = Url::parse(&raw).map_err(|_| FetchError::Invalid("jwks_uri is not a URL"))?;
        if !url_allowed(&url) {
            return Err(FetchError::InsecureUrl(raw));
        }
        *self
            .0
            .jwks_uri
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(url.clone());
        Ok(url)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("issuer", &self.0.config.issuer)
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}
