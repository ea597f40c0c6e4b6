//! Start-up: the [`Gateway`] from its configuration. The guard gets the issuer's keys by
//! discovery (fetched lazily: an issuer that is down answers 503 until it is back), the
//! route table and identity headers are compiled, and with `[revocation]` the feed is
//! discovered, read once and then followed by a push subscription. Until that first read
//! the gateway answers 503 to every request needing a token (a revoked token must not pass
//! because the issuer was down when the gateway started); an issuer that is down at start
//! is retried in the background with backoff (1 s doubling to 30 s) rather than failing the
//! start, so a gateway and its issuer may start in any order. Once running, a feed out of
//! reach for longer than `revocation.max_staleness_secs` closes the gate again (503) until
//! it answers: revocations committed meanwhile are unknown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tessera_guard::{
    AcrLadder, FetchError, Guard, RemoteIssuer, ResourceMetadata, RevocationCheck, RevocationFeed,
    RevocationList, SystemClock, Verifier, discover,
};
use tessera_token::{Claims, SecretString, UnixTime, Validation};

use crate::config::GatewayConfig;
use crate::decide::Gateway;
use crate::identity::IdentityHeaders;
use crate::routes::Routes;

/// First pause between attempts to reach an issuer that is down at start.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest pause between those attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Why the gateway cannot start. Each message names the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The route table or identity headers do not compile.
    #[error("{0}")]
    Config(String),
    /// `revocation.client_secret_env` names a variable that is not set.
    #[error(
        "revocation.client_secret_env names {0}, which is not set (or not UTF-8): export the revocation client's secret in it, or remove [revocation]"
    )]
    MissingSecret(String),
    /// The guard refused its settings (a bad `public_base_url` and the like).
    #[error("{0}")]
    Guard(#[from] tessera_guard::BuildError),
    /// The issuer answers, but its discovery metadata names another issuer: no token would
    /// ever verify, and waiting will not fix it.
    #[error(
        "issuer {0:?}: the discovery metadata at that address names another issuer; `issuer` must equal it character for character (RFC 8414 section 3.3)"
    )]
    IssuerMismatch(String),
    /// The issuer answers but publishes no revocation feed.
    #[error(
        "issuer {0:?} publishes no revocation feed (tessera_revocation_feed_endpoint): remove [revocation] or point `issuer` at a Tessera server"
    )]
    NoFeed(String),
}

/// What can be checked without the network: the route table and the identity headers
/// (also what `--check` runs).
pub fn offline_parts(config: &GatewayConfig) -> Result<(Routes, IdentityHeaders), StartError> {
    let routes = Routes::new(&config.routes, config.default).map_err(StartError::Config)?;
    // A route's acr off the ladder could never be met: every request refused. A start-up
    // error instead.
    let ladder = acr_values(config);
    if let Some(r) = config
        .routes
        .iter()
        .find(|r| r.acr.as_ref().is_some_and(|a| !ladder.contains(a)))
    {
        return Err(StartError::Config(format!(
            "route {:?}: acr {:?} is not one of acr_values {ladder:?}",
            r.path,
            r.acr.as_deref().unwrap_or_default()
        )));
    }
    let identity = IdentityHeaders::new(&config.identity).map_err(StartError::Config)?;
    Ok((routes, identity))
}

/// Builds the gateway: guard, routes, identity headers and (with `[revocation]`) the
/// feed subscription, started on the current runtime.
pub async fn gateway_from_config(config: &GatewayConfig) -> Result<Gateway, StartError> {
    let (routes, identity) = offline_parts(config)?;
    let verifier = Verifier::remote(RemoteIssuer::new(&config.issuer))?;
    let mut builder = Guard::builder(
        verifier,
        Validation::access_token(&config.issuer, &config.audience)
            .leeway(Duration::from_secs(config.leeway_secs)),
    )
    .cache_capacity(config.cache_capacity)
    .acr_ladder(AcrLadder::new(acr_values(config)));
    if let Some(realm) = &config.realm {
        builder = builder.realm(realm.clone());
    }
    match &config.public_base_url {
        Some(url) => {
            let scopes: Vec<String> = config
                .routes
                .iter()
                .flat_map(|r| r.scopes.iter().cloned())
                .collect();
            let metadata = ResourceMetadata::new(url.clone())
                .authorization_server(config.issuer.clone())
                .scopes(dedup(scopes));
            builder = builder
                .public_base_url(url.clone())
                .resource_metadata(metadata);
        }
        None => tracing::warn!(
            "public_base_url is not set: DPoP proofs are checked against the Host the proxy forwards, and no RFC 9728 metadata is served; set it in production"
        ),
    }
    let ready = Arc::new(AtomicBool::new(true));
    if config.revocation.is_none() {
        tracing::warn!(
            "no [revocation] section: revoked tokens stay valid at the gateway until they expire"
        );
    }
    if let Some(revocation) = &config.revocation {
        let secret = std::env::var(&revocation.client_secret_env)
            .map_err(|_| StartError::MissingSecret(revocation.client_secret_env.clone()))?;
        let late = Arc::new(LateList::default());
        builder = builder.revocation(late.clone());
        ready.store(false, Ordering::Release);
        let follower = FeedStart {
            issuer: config.issuer.clone(),
            client_id: revocation.client_id.clone(),
            secret: SecretString::new(secret),
            late,
            ready: ready.clone(),
            max_staleness: revocation.max_staleness(),
        };
        // The first attempt decides the start: a wrong issuer fails it, one that is down
        // is retried in the background.
        match follower.attempt().await {
            Ok(()) => {}
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(why)) => {
                tracing::warn!(issuer = %config.issuer, error = %why, "cannot read the revocation feed yet; answering 503 to requests needing a token and retrying");
                tokio::spawn(follower.retry());
            }
        }
    }
    let guard = builder.build()?;
    if let Err(e) = guard.warm_up().await {
        // Not fatal: the guard fetches the keys again on the next request (503 meanwhile).
        match e {
            FetchError::IssuerMismatch => {
                return Err(StartError::IssuerMismatch(config.issuer.clone()));
            }
            e => tracing::warn!(error = %e, "could not fetch the issuer's keys yet; will retry"),
        }
    }
    Ok(Gateway::new(guard, routes, identity).ready_when(ready))
}

/// The feed's list once the feed has been read; nothing is revoked before (the gateway
/// answers 503 then, so the list is never asked).
#[derive(Default)]
struct LateList(OnceLock<Arc<RevocationList>>);

impl RevocationCheck for LateList {
    fn is_revoked(&self, claims: &Claims, now: UnixTime) -> bool {
        self.0.get().is_some_and(|l| l.is_revoked(claims, now))
    }
}

/// Discovering, reading and then following the revocation feed.
struct FeedStart {
    issuer: String,
    client_id: String,
    secret: SecretString,
    late: Arc<LateList>,
    ready: Arc<AtomicBool>,
    /// `revocation.max_staleness_secs` (`None`: off).
    max_staleness: Option<Duration>,
}

enum Attempt {
    /// Will not get better by waiting.
    Fatal(StartError),
    /// The issuer is down or refused (credentials being provisioned): try again.
    Retry(String),
}

impl FeedStart {
    /// One try: discovery, one full read of the feed, then the subscription in the
    /// background and the gateway ready.
    async fn attempt(&self) -> Result<(), Attempt> {
        let meta = match discover(&self.issuer).await {
            Ok(meta) => meta,
            Err(FetchError::IssuerMismatch) => {
                return Err(Attempt::Fatal(StartError::IssuerMismatch(
                    self.issuer.clone(),
                )));
            }
            Err(e) => return Err(Attempt::Retry(e.to_string())),
        };
        let Some(endpoint) = meta.tessera_revocation_feed_endpoint else {
            return Err(Attempt::Fatal(StartError::NoFeed(self.issuer.clone())));
        };
        let feed = RevocationFeed::new(&endpoint, self.client_id.clone(), self.secret.clone())
            .map_err(|e| Attempt::Fatal(e.into()))?;
        let feed = Arc::new(feed);
        let clock = Arc::new(SystemClock);
        feed.poll_once(tessera_token::Clock::now(&*clock))
            .await
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        // The list is complete up to the cursor: publish it, then open the gate.
        let _ = self.late.0.set(feed.list());
        self.ready.store(true, Ordering::Release);
        tracing::info!(%endpoint, "following the revocation feed (push, polling while the subscription is down)");
        feed.clone().spawn(clock.clone());
        if let Some(max) = self.max_staleness {
            tokio::spawn(watch_staleness(feed, clock, max, self.ready.clone()));
        }
        Ok(())
    }

    /// Tries again with backoff until one attempt succeeds. A fatal answer (a changed
    /// issuer) is logged and retried at the longest pause: the gateway stays closed.
    async fn retry(self) {
        let mut pause = RETRY_MIN;
        loop {
            tokio::time::sleep(pause).await;
            match self.attempt().await {
                Ok(()) => return,
                Err(Attempt::Fatal(e)) => {
                    tracing::error!(error = %e, "revocation feed unusable; still answering 503");
                    pause = RETRY_MAX;
                }
                Err(Attempt::Retry(why)) => {
                    tracing::warn!(error = %why, retry_secs = pause.as_secs(), "revocation feed still unreachable; still answering 503");
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// How often the staleness watch looks at the feed.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Closes the gate (`ready` false: 503 to requests needing a token, `/readyz` 503) while
/// the feed has not been current for longer than `max`, and opens it again when it is.
async fn watch_staleness(
    feed: Arc<RevocationFeed>,
    clock: Arc<SystemClock>,
    max: Duration,
    ready: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tick.tick().await;
        let current = is_current(feed.last_synced(), tessera_token::Clock::now(&*clock), max);
        match (ready.swap(current, Ordering::AcqRel), current) {
            (true, false) => tracing::warn!(
                max_staleness_secs = max.as_secs(),
                "revocation feed out of reach for longer than revocation.max_staleness_secs; answering 503 to requests needing a token until it is back"
            ),
            (false, true) => tracing::info!("revocation feed current again; deciding on tokens"),
            _ => {}
        }
    }
}

/// Whether a list last synced at `last` may still be trusted at `now`.
fn is_current(last: Option<UnixTime>, now: UnixTime, max: Duration) -> bool {
    last.is_some_and(|t| now.saturating_sub(max) <= t)
}

/// The configured `acr` ladder, or Tessera's.
fn acr_values(config: &GatewayConfig) -> Vec<String> {
    config.acr_values.clone().unwrap_or_else(|| {
        tessera_guard::TESSERA_ACR_VALUES
            .iter()
            .map(|v| (*v).to_owned())
            .collect()
    })
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_is_current_up_to_max_staleness_after_its_last_sync() {
        let max = Duration::from_secs(300);
        let t = UnixTime::from_secs(1_800_000_000);
        assert!(!is_current(None, t, max), "never synced");
        assert!(is_current(Some(t), t, max));
        assert!(is_current(Some(t), t.saturating_add(max), max));
        assert!(!is_current(
            Some(t),
            t.saturating_add(max + Duration::from_secs(1)),
            max
        ));
    }
}
