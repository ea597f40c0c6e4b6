//! The revocation feed client (contract in `docs/revocation-feed.md`): holds a push
//! subscription to the authorization server ([`push`]) and polls it when the
//! subscription is down, for revoked `jti`s and `sid`s, and fills a [`RevocationList`].
//! Both resume from one cursor, so an entry is applied once whichever way it came.

mod push;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tessera_token::{SecretString, UnixTime};
use url::Url;

use crate::net::{basic_auth, config_url, default_client, read_body, transport};
use crate::{BuildError, Clock, FetchError, RevocationList};

/// Pages read in one poll at most (a guard far behind catches up over several polls).
const MAX_PAGES: usize = 100;

/// A client of the revocation feed. `Debug` never shows the secret.
pub struct RevocationFeed {
    endpoint: Url,
    client_id: String,
    secret: SecretString,
    interval: Duration,
    leeway: Duration,
    page_size: u32,
    list: Arc<RevocationList>,
    cursor: tokio::sync::Mutex<Option<String>>,
    client: reqwest::Client,
    push: bool,
    idle_limit: Duration,
    /// Entries applied since start (each once).
    applied: AtomicU64,
    /// Whether a push subscription is open now.
    subscribed: AtomicBool,
    /// When the feed last answered (a poll read to the end, or anything on an open
    /// subscription, keep-alives included), in Unix seconds; `i64::MIN` before that.
    last_synced: AtomicI64,
}

#[derive(Deserialize)]
struct Page {
    revoked: Vec<Entry>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    exp: i64,
}

impl RevocationFeed {
    /// Reads the feed at `endpoint` (the metadata's `tessera_revocation_feed_endpoint`)
    /// as client `client_id` with `secret` (HTTP Basic).
    pub fn new(
        endpoint: &str,
        client_id: impl Into<String>,
        secret: SecretString,
    ) -> Result<Self, BuildError> {
        Ok(RevocationFeed {
            endpoint: config_url(endpoint, "revocation_feed_endpoint")?,
            client_id: client_id.into(),
            secret,
            interval: Duration::from_secs(5),
            leeway: tessera_token::DEFAULT_LEEWAY,
            page_size: 500,
            list: Arc::new(RevocationList::new()),
            cursor: tokio::sync::Mutex::new(None),
            client: default_client()?,
            push: true,
            idle_limit: push::IDLE_LIMIT,
            applied: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
            last_synced: AtomicI64::new(i64::MIN),
        })
    }

    /// Time between polls (default 5 s): the longest a revocation takes to reach this
    /// guard without push. While a subscription is open the guard still polls at this
    /// interval (a safety poll), so a subscription that went silent without closing
    /// never leaves it less informed than polling alone.
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Whether to hold a push subscription (default on): revocations arrive as they are
    /// committed; polling at the interval takes over while the subscription is down.
    pub fn push(mut self, on: bool) -> Self {
        self.push = on;
        self
    }

    /// Longest silence on a push subscription before it counts as dead (default 45 s:
    /// three of the server's default keep-alive intervals, and above its largest, 30 s).
    /// A server that announces its keep-alive interval (`Tessera-Feed-Keepalive`) shortens
    /// it to twice that interval plus 5 s.
    pub fn push_idle_limit(mut self, d: Duration) -> Self {
        self.idle_limit = d;
        self
    }

    /// Entries applied to the list since start. Each entry the server sends is applied
    /// once, whether it came by push or by poll.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Whether a push subscription is open now.
    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// When the list was last known to be current: the last poll that read the feed to its
    /// end, or the last data (a revocation or a keep-alive) on an open push subscription.
    /// `None` before the first. A caller that must not act on a stale list (revocations
    /// committed since then are unknown here) compares it with its clock.
    pub fn last_synced(&self) -> Option<UnixTime> {
        match self.last_synced.load(Ordering::Acquire) {
            i64::MIN => None,
            secs => Some(UnixTime::from_secs(secs)),
        }
    }

    /// Records that the list is current at `now` (never moves back).
    fn synced(&self, now: UnixTime) {
        self.last_synced.fetch_max(now.secs(), Ordering::AcqRel);
    }

    /// How long past its `exp` an entry is kept (default: the validation leeway, 30 s).
    pub fn leeway(mut self, d: Duration) -> Self {
        self.leeway = d;
        self
    }

    /// Uses this HTTP client.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// The list this feed fills; hand it to [`crate::GuardBuilder::revocation`].
    pub fn list(&self) -> Arc<RevocationList> {
        self.list.clone()
    }

    /// Reads every new entry now (following `has_more`), then forgets expired ones.
    /// Returns how many entries were read.
    pub async fn poll_once(&self, now: UnixTime) -> Result<usize, FetchError> {
        let mut cursor = self.cursor.lock().await;
        let mut read = 0;
        let mut at_end = false;
        for _ in 0..MAX_PAGES {
            let page = match self.fetch(cursor.as_deref()).await {
                Err(FetchError::Status(400)) if cursor.is_some() => {
                    // The server no longer knows our cursor: start over (entries are
                    // idempotent, and only expired ones were dropped).
                    tracing::warn!(
                        "revocation feed refused the cursor; restarting from the beginning"
                    );
                    *cursor = None;
                    continue;
                }
                other => other?,
            };
            read += self.apply(page.revoked);
            advance(&mut cursor, page.cursor);
            if !page.has_more {
                at_end = true;
                break;
            }
        }
        self.list.prune(now.saturating_sub(self.leeway));
        if at_end {
            self.synced(now);
        }
        Ok(read)
    }

    /// Puts `entries` into the list (the caller holds the cursor and moves it past them);
    /// returns how many.
    fn apply(&self, entries: Vec<Entry>) -> usize {
        let mut n = 0;
        for e in entries {
            let exp = UnixTime::from_secs(e.exp);
            match (e.jti, e.sid) {
                (Some(jti), None) => self.list.revoke_jti(jti, exp),
                (None, Some(sid)) => self.list.revoke_sid(sid, exp),
                _ => {
                    tracing::warn!("revocation feed entry names neither or both of jti and sid");
                    continue;
                }
            }
            n += 1;
        }
        self.applied.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    async fn fetch(&self, after: Option<&str>) -> Result<Page, FetchError> {
        let mut url = self.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(after) = after {
                q.append_pair("after", after);
            }
            q.append_pair("limit", &self.page_size.to_string());
        }
        let resp = self
            .client
            .get(url)
            .header(
                reqwest::header::AUTHORIZATION,
                basic_auth(&self.client_id, self.secret.expose()),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let body = read_body(resp).await?;
        serde_json::from_slice(&body).map_err(|_| FetchError::Invalid("not a revocation feed page"))
    }

    /// Follows the feed forever on the current tokio runtime: a poll, then (with
    /// [`push`](Self::push)) a subscription held until it ends (polling at the interval
    /// meanwhile); when it ends at the server's request the guard polls and subscribes
    /// again after a short random pause (up to 1 s), when it fails it
    /// polls and retries after a backoff (1 s doubling to 10 s, never longer than the
    /// interval). Without push it polls at the interval. Failures are logged (never the
    /// credentials) and the last known list is kept.
    pub fn spawn(self: Arc<Self>, clock: Arc<dyn Clock>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut retry = push::RETRY_MIN;
            loop {
                if let Err(e) = self.poll_once(clock.now()).await {
                    tracing::warn!(endpoint = %self.endpoint, error = %e, "revocation feed poll failed; keeping the last known list");
                }
                if !self.push {
                    tokio::time::sleep(self.interval).await;
                    continue;
                }
                match self.subscribe(&*clock).await {
                    Ok(push::Ended::Renew) => {
                        retry = push::RETRY_MIN;
                        // Spread the guards the server ended at once over a moment.
                        tokio::time::sleep(push::renew_pause()).await;
                        continue;
                    }
                    Ok(push::Ended::Elsewhere(why)) => {
                        retry = push::RETRY_MIN;
                        tracing::info!(endpoint = %self.endpoint, reason = why, "revocation feed subscription ended; polling until it is back");
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = %self.endpoint, error = %e, "revocation feed subscription failed; polling until it is back");
                    }
                }
                tokio::time::sleep(retry.min(self.interval)).await;
                retry = (retry * 2).min(push::RETRY_MAX);
            }
        })
    }
}

/// Moves `cursor` to `new` only if `new` is further along: the cursors are decimal
/// sequence numbers, compared as integers, and a lagging replica's answer (or a poll that
/// raced a push) never sends the guard back over entries it applied.
fn advance(cursor: &mut Option<String>, new: Option<String>) {
    let Some(new) = new else { return };
    let forward = match (cursor.as_deref().map(str::parse::<u64>), new.parse::<u64>()) {
        (Some(Ok(old)), Ok(n)) => n > old,
        (Some(Ok(_)), Err(_)) => false,
        _ => true,
    };
    if forward {
        *cursor = Some(new);
    }
}

impl fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationFeed")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("interval", &self.interval)
            .field("push", &self.push)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::advance;

    #[test]
    fn the_cursor_only_moves_forward() {
        let mut c = None;
        advance(&mut c, Some("9".into()));
        assert_eq!(c.as_deref(), Some("9"));
        advance(&mut c, Some("10".into()));
        assert_eq!(
            c.as_deref(),
            Some("10"),
            "compared as integers, not strings"
        );
        for back in ["3", "10", "x", ""] {
            advance(&mut c, Some(back.into()));
            assert_eq!(c.as_deref(), Some("10"), "{back:?}");
        }
        advance(&mut c, None);
        assert_eq!(c.as_deref(), Some("10"));
    }
}
