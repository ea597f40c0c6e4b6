//! The push side of the feed client: one Server-Sent Events subscription on the feed's
//! endpoint (`Accept: text/event-stream`), resumed with `Last-Event-ID` = the cursor.
//! Each `revoked` event is a page of the pull format, applied under the cursor lock and
//! moving the cursor, so a poll or the next subscription starts after it; `end` closes
//! the subscription. Silence longer than the idle limit (the server sends keep-alives)
//! counts as a dead connection.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Page, RevocationFeed};
use crate::net::{MAX_BODY, basic_auth, transport};
use crate::sse::SseParser;
use crate::{Clock, FetchError};

/// Default longest silence on a subscription.
pub(super) const IDLE_LIMIT: Duration = Duration::from_secs(45);
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
        self.subscribed.store(true, Ordering::Relaxed);
        let ended = self.follow(&mut resp, clock).await;
        self.subscribed.store(false, Ordering::Relaxed);
        ended
    }

    async fn follow(
        &self,
        resp: &mut reqwest::Response,
        clock: &dyn Clock,
    ) -> Result<Ended, FetchError> {
        let mut parser = SseParser::new(MAX_BODY);
        let mut pruned = Instant::now();
        loop {
            let chunk = tokio::time::timeout(self.idle_limit, resp.chunk())
                .await
                .map_err(|_| FetchError::Transport("no keep-alive from the feed".into()))?
                .map_err(|e| transport(&e))?;
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
                        if page.cursor.is_some() {
                            *cursor = page.cursor;
                        }
                    }
                    "end" => return Ok(ending(&event.data)),
                    _ => {}
                }
            }
            if pruned.elapsed() >= PRUNE_EVERY {
                self.list.prune(clock.now().saturating_sub(self.leeway));
                pruned = Instant::now();
            }
        }
    }
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
