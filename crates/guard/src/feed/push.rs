//! The push side of the feed client: one Server-Sent Events subscription on the feed's
//! endpoint (`Accept: text/event-stream`), resumed with `Last-Event-ID` = the cursor.
//! Each `revoked` event is a page of the pull format, applied under the cursor lock and
//! moving the cursor, so a poll or the next subscription starts after it; `end` closes
//! the subscription. Silence longer than the idle limit (the server sends keep-alives,
//! and announces their interval in `Tessera-Feed-Keepalive`: the limit is then twice it
//! plus 5 s) counts as a dead connection; and the guard polls at its interval meanwhile
//! (the safety poll), so a silent subscription is never worse than polling alone.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Page, RevocationFeed};
use crate::net::{MAX_BODY, basic_auth, transport};
use crate::sse::SseParser;
use crate::{Clock, FetchError};

/// Default longest silence on a subscription.
pub(super) const IDLE_LIMIT: Duration = Duration::from_secs(45);
/// The response header in which the server announces its keep-alive interval (seconds).
pub(super) const KEEPALIVE_HEADER: &str = "tessera-feed-keepalive";
/// Slack over two announced keep-alive intervals before silence counts as death.
const IDLE_SLACK: Duration = Duration::from_secs(5);
/// Longest random pause before subscribing again after the server ended a subscription.
const RENEW_PAUSE_MAX_MS: u64 = 1000;
/// First and longest pause before subscribing again after a failure.
pub(super) const RETRY_MIN: Duration = Duration::from_secs(1);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(10);
/// The whole request may last this long (the server ends a subscription well before).
const LONGEST: Duration = Duration::from_secs(3600);
/// Expired entries are forgotten at most this often while subscribed.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How a subscription ended without failing.
#[derive(Debug)]
pub(super) enum Ended {
    /// The server ended it on schedule: subscribe again at once.
    Renew,
    /// The server is draining or could not read its store (or closed without saying):
    /// poll, and subscribe again after a pause.
    Elsewhere(&'static str),
}

impl RevocationFeed {
    /// Opens a subscription after the current cursor and applies what it sends until it
    /// ends.
    pub(super) async fn subscribe(&self, clock: &dyn Clock) -> Result<Ended, FetchError> {
        let after = self.cursor.lock().await.clone();
        let mut request = self
            .client
            .get(self.endpoint.clone())
            .header(
                reqwest::header::AUTHORIZATION,
                basic_auth(&self.client_id, self.secret.expose()),
            )
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(LONGEST);
        if let Some(after) = after {
            request = request.header("last-event-id", after);
        }
        let mut resp = request.send().await.map_err(|e| transport(&e))?;
        if !resp.status().is_success() {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        let streams = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !streams {
            return Err(FetchError::Invalid("the feed does not offer push"));
        }
        let idle = idle_limit(self.idle_limit, resp.headers());
        self.subscribed.store(true, Ordering::Relaxed);
        let ended = self.follow(&mut resp, clock, idle).await;
        self.subscribed.store(false, Ordering::Relaxed);
        ended
    }

    async fn follow(
        &self,
        resp: &mut reqwest::Response,
        clock: &dyn Clock,
        idle: Duration,
    ) -> Result<Ended, FetchError> {
        let mut parser = SseParser::new(MAX_BODY);
        let mut pruned = Instant::now();
        let mut heard = Instant::now();
        let mut poll_at = Instant::now() + self.interval;
        loop {
            let dead = heard + idle;
            let chunk = match tokio::time::timeout_at(dead.min(poll_at), resp.chunk()).await {
                Ok(c) => c.map_err(|e| transport(&e))?,
                Err(_) if Instant::now() >= dead => {
                    return Err(FetchError::Transport("no keep-alive from the feed".into()));
                }
                Err(_) => {
                    // The safety poll: it takes the cursor lock, so what it and the
                    // subscription bring is applied once.
                    if let Err(e) = self.poll_once(clock.now()).await {
                        tracing::warn!(endpoint = %self.endpoint, error = %e, "revocation feed safety poll failed");
                    }
                    poll_at = Instant::now() + self.interval;
                    continue;
                }
            };
            heard = Instant::now();
            let Some(chunk) = chunk else {
                return Ok(Ended::Elsewhere("closed"));
            };
            for event in parser.feed(&chunk)? {
                match event.event.as_str() {
                    "revoked" => {
                        let page: Page = serde_json::from_str(&event.data)
                            .map_err(|_| FetchError::Invalid("not a revocation feed page"))?;
                        let mut cursor = self.cursor.lock().await;
                        self.apply(page.revoked);
                        super::advance(&mut cursor, page.cursor);
                    }
                    "end" => return Ok(ending(&event.data)),
                    _ => {}
                }
            }
            // The server is talking to us (a keep-alive at least): what it committed
            // before has been sent.
            self.synced(clock.now());
            if pruned.elapsed() >= PRUNE_EVERY {
                self.list.prune(clock.now().saturating_sub(self.leeway));
                pruned = Instant::now();
            }
        }
    }
}

/// The idle limit for one subscription: `configured`, shortened to twice the keep-alive
/// interval the server announced plus 5 s.
fn idle_limit(configured: Duration, headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(KEEPALIVE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| (1..=3600).contains(s))
        .map_or(configured, |s| {
            configured.min(Duration::from_secs(s) * 2 + IDLE_SLACK)
        })
}

/// A random pause of up to a second before subscribing again after the server ended a
/// subscription on schedule: guards it ended together do not come back together.
pub(super) fn renew_pause() -> Duration {
    use std::hash::BuildHasher;
    // Not a secret, only a spread: a randomly keyed hash of the moment is enough.
    let r = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    Duration::from_millis(r % RENEW_PAUSE_MAX_MS)
}

/// What the final event's `reason` asks of the subscriber.
fn ending(data: &str) -> Ended {
    #[derive(serde::Deserialize)]
    struct End {
        reason: String,
    }
    match serde_json::from_str::<End>(data).map(|e| e.reason) {
        Ok(r) if r == "max_age" => Ended::Renew,
        Ok(r) if r == "draining" => Ended::Elsewhere("draining"),
        _ => Ended::Elsewhere("unavailable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announced_keepalive_shortens_the_idle_limit() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(idle_limit(IDLE_LIMIT, &h), IDLE_LIMIT);
        h.insert(KEEPALIVE_HEADER, "2".parse().unwrap());
        assert_eq!(idle_limit(IDLE_LIMIT, &h), Duration::from_secs(9));
        h.insert(KEEPALIVE_HEADER, "600".parse().unwrap());
        assert_eq!(idle_limit(IDLE_LIMIT, &h), IDLE_LIMIT, "never longer");
        for bad in ["0", "-1", "x", "99999"] {
            h.insert(KEEPALIVE_HEADER, bad.parse().unwrap());
            assert_eq!(idle_limit(IDLE_LIMIT, &h), IDLE_LIMIT, "{bad}");
        }
    }
}
