//! `GET /revocations` with `Accept: text/event-stream`: a push subscription to the
//! revocation feed as Server-Sent Events (docs/revocation-feed.md, "Push"). Each
//! `revoked` event carries a page of the pull format with the cursor as its `id`, so a
//! reconnecting subscriber's `Last-Event-ID` is its cursor; an `end` event closes it.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::feed::hub::Refused;
use crate::feed::stream::{Pushed, Subscriber};
use crate::http::AppState;
use crate::http::error::no_store;
use crate::http::feed::{RevocationFeed, cursor, reader};
use crate::oauth::OAuthError;

/// Seconds a client refused for holding too many subscriptions is told to wait.
const RETRY_TOO_MANY: u64 = 5;

/// True when the request asks for an event stream.
pub(super) fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// Authenticates, checks the cursor (`Last-Event-ID`, else `after`), takes a place in the
/// client's count and answers with the stream.
pub(super) async fn subscribe(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Response, OAuthError> {
    let client = reader(state, headers).await?;
    let raw = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| OAuthError::invalid_request("Last-Event-ID is not a cursor"))?,
        ),
        None => query.get("after").map(String::as_str),
    };
    let after = cursor(state, raw).await?;
    let config = &state.config.revocation;
    let sub = state
        .feed_hub
        .subscribe(
            &state.store,
            &state.clock,
            &client,
            config.feed_subscriptions_per_client,
            config.feed_subscriptions_max,
        )
        .map_err(|r| match r {
            Refused::TooMany => OAuthError::TooManySubscriptions {
                retry_after: RETRY_TOO_MANY,
            },
            Refused::Draining => OAuthError::Draining,
            Refused::Full => OAuthError::SubscriptionsFull,
        })?;
    let subscriber = Subscriber::new(
        state.store.clone(),
        state.clock.clone(),
        sub,
        after,
        Instant::now() + jittered(config.feed_subscription_max),
    );
    let events = futures_util::stream::unfold(subscriber, |mut s| async move {
        let next = s.next().await?;
        Some((Ok::<_, Infallible>(event(next)), s))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(config.feed_keepalive))
        .into_response();
    let h = response.headers_mut();
    no_store(h);
    // Proxies that buffer responses (nginx) would hold the events back.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // The guard counts the subscription dead after twice this plus a few seconds of silence.
    h.insert(
        "tessera-feed-keepalive",
        HeaderValue::from(config.feed_keepalive.as_secs()),
    );
    Ok(response)
}

/// `max` give or take up to a fifth, at random (never past 540 s, the option's ceiling,
/// under the serving layer's 10-minute connection age): subscriptions opened together
/// (after a restart) do not all end, and come back, together.
fn jittered(max: std::time::Duration) -> std::time::Duration {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 2];
    // Without randomness (never seen) the subscription simply lasts `max`.
    let r = SystemRandom::new().fill(&mut b).map_or(0.5, |()| {
        f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
    });
    max.mul_f64(0.8 + 0.4 * r)
        .min(std::time::Duration::from_secs(540))
}

/// The SSE event for what the subscription sends.
fn event(p: Pushed) -> Event {
    match p {
        Pushed::Page(page) => {
            let id = page.cursor.to_string();
            let body = RevocationFeed::from(page);
            // A struct of strings, numbers and bools: serializing it cannot fail.
            let data = serde_json::to_string(&body).unwrap_or_default();
            Event::default().event("revoked").id(id).data(data)
        }
        Pushed::End(why) => Event::default()
            .event("end")
            .data(format!("{{\"reason\":\"{}\"}}", why.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::jittered;

    #[test]
    fn subscription_lifetimes_are_spread_and_stay_under_the_ceiling() {
        let max = Duration::from_secs(300);
        let got: Vec<_> = (0..64).map(|_| jittered(max)).collect();
        assert!(
            got.iter()
                .all(|d| *d >= max.mul_f64(0.8) && *d <= max.mul_f64(1.2))
        );
        assert!(got.iter().any(|d| *d != got[0]), "not all the same");
        assert!(jittered(Duration::from_secs(540)) <= Duration::from_secs(540));
    }
}
