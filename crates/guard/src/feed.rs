//! The revocation feed client (contract in `docs/revocation-feed.md`): polls the
//! authorization server for revoked `jti`s and `sid`s and fills a [`RevocationList`].

use std::fmt;
use std::sync::Arc;
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
        })
    }

    /// Time between polls (default 5 s): the longest a revocation takes to reach this guard.
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
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
            for e in page.revoked {
                let exp = UnixTime::from_secs(e.exp);
                match (e.jti, e.sid) {
                    (Some(jti), None) => self.list.revoke_jti(jti, exp),
                    (None, Some(sid)) => self.list.revoke_sid(sid, exp),
                    _ => {
                        tracing::warn!(
                            "revocation feed entry names neither or both of jti and sid"
                        );
                        continue;
                    }
                }
                read += 1;
            }
            if page.cursor.is_some() {
                *cursor = page.cursor;
            }
            if !page.has_more {
                break;
            }
        }
        self.list.prune(now.saturating_sub(self.leeway));
        Ok(read)
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

    /// Polls forever at the interval on the current tokio runtime. Failures are logged
    /// (never the credentials) and the last known list is kept.
    pub fn spawn(self: Arc<Self>, clock: Arc<dyn Clock>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.poll_once(clock.now()).await {
                    tracing::warn!(endpoint = %self.endpoint, error = %e, "revocation feed poll failed; keeping the last known list");
                }
                tokio::time::sleep(self.interval).await;
            }
        })
    }
}

impl fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationFeed")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}
