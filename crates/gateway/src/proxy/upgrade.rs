//! WebSocket pass-through: which upgrades are forwarded (a `GET` asking for exactly one
//! protocol of `proxy.upgrades`, `websocket` by default, never `h2c`), and the tunnel once
//! the upstream answers 101: both connections are taken over from hyper and bytes are
//! copied both ways, within a cap on open tunnels, an idle timeout and a lifetime.

use std::sync::Arc;
use std::time::Duration;

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Method};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tessera_token::UnixTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The upgrade a request asks for, if the gateway passes it: a `GET` with `upgrade` among
/// the `Connection` options (RFC 9110 section 7.8) and one `Upgrade` header naming exactly
/// one protocol of `allowed` (ASCII case ignored). Anything else (`h2c`, a list, another
/// method) is `None`: the request goes on as a plain one, its `Upgrade` removed with the
/// other hop-by-hop headers, so no tunnel can open past the route table.
pub(crate) fn requested(
    method: &Method,
    headers: &HeaderMap,
    allowed: &[String],
) -> Option<HeaderValue> {
    let asks = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|o| o.trim().eq_ignore_ascii_case("upgrade"));
    let mut upgrade = headers.get_all(UPGRADE).iter();
    let (Some(value), None) = (upgrade.next(), upgrade.next()) else {
        return None;
    };
    let protocol = value.to_str().ok()?.trim();
    let passed = *method == Method::GET
        && asks
        && !protocol.to_ascii_lowercase().starts_with("h2c")
        && allowed.iter().any(|a| a.eq_ignore_ascii_case(protocol));
    if !passed {
        return None;
    }
    HeaderValue::from_str(protocol).ok()
}

/// Whether the upstream's 101 switched to the protocol that was asked for.
pub(crate) fn switched_to(asked: &HeaderValue, answered: Option<&HeaderValue>) -> bool {
    answered
        .and_then(|a| a.to_str().ok())
        .zip(asked.to_str().ok())
        .is_some_and(|(a, b)| a.trim().eq_ignore_ascii_case(b.trim()))
}

/// The bounds of upgraded connections.
#[derive(Debug, Clone)]
pub(crate) struct Tunnels {
    slots: Arc<Semaphore>,
    idle: Duration,
    max_lifetime: Duration,
    public_lifetime: Duration,
}

impl Tunnels {
    pub(crate) fn new(
        max: usize,
        idle: Duration,
        max_lifetime: Duration,
        public_lifetime: Duration,
    ) -> Tunnels {
        Tunnels {
            slots: Arc::new(Semaphore::new(max)),
            idle,
            max_lifetime,
            public_lifetime,
        }
    }

    /// A slot for one tunnel; `None` when `max_tunnels` are open.
    pub(crate) fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// The configured lifetime, shortened to `authorised` (how long the caller's token
    /// still holds for the route, from [`authorised_for`]) when that is sooner; a tunnel
    /// opened without a token gets `tunnel_public_lifetime_secs`.
    pub(crate) fn lifetime(&self, authorised: Option<Duration>) -> Duration {
        authorised
            .map_or(self.public_lifetime, |d| d)
            .min(self.max_lifetime)
    }

    /// Copies bytes between the client's and the upstream's upgraded connections (a task
    /// of its own: the 101 must reach the client first) until both sides have closed, no
    /// byte has moved either way for the idle timeout, or `lifetime` has passed. `slot`
    /// is given back when the tunnel ends.
    pub(crate) fn splice(
        &self,
        client: OnUpgrade,
        upstream: OnUpgrade,
        slot: OwnedSemaphorePermit,
        lifetime: Duration,
    ) {
        let idle = self.idle;
        tokio::spawn(async move {
            let _slot = slot;
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(both) => both,
                Err(e) => {
                    tracing::debug!(error = %e, "an upgrade did not complete");
                    return;
                }
            };
            match tokio::time::timeout(lifetime, pump(client, upstream, idle)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "a tunnel ended with an error"),
                Err(_) => tracing::debug!("a tunnel reached its lifetime; closed"),
            }
        });
    }
}

/// How long after `now` a token's allowance lasts: until its `exp` and, on a route with
/// `max_age`, until `auth_time + max_age` (without `auth_time`, not at all: the guard has
/// refused such a token already).
pub(crate) fn authorised_for(
    now: UnixTime,
    exp: Option<UnixTime>,
    auth_time: Option<UnixTime>,
    max_age: Option<Duration>,
) -> Duration {
    let left = |end: i64| Duration::from_secs(u64::try_from(end - now.secs()).unwrap_or(0));
    let by_age = max_age.map(|age| {
        auth_time.map_or(Duration::ZERO, |t| {
            left(
                t.secs()
                    .saturating_add(i64::try_from(age.as_secs()).unwrap_or(i64::MAX)),
            )
        })
    });
    let by_exp = exp.map(|e| left(e.secs()));
    match (by_exp, by_age) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(Duration::MAX),
    }
}

type Half = (ReadHalf<TokioIo<Upgraded>>, WriteHalf<TokioIo<Upgraded>>);

/// Copies both ways until both directions have ended or nothing moved for `idle`.
async fn pump(client: Upgraded, upstream: Upgraded, idle: Duration) -> std::io::Result<()> {
    let (mut cr, mut cw): Half = tokio::io::split(TokioIo::new(client));
    let (mut ur, mut uw): Half = tokio::io::split(TokioIo::new(upstream));
    let (mut up_buf, mut down_buf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut client_open, mut upstream_open) = (true, true);
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "tunnel idle");
    while client_open || upstream_open {
        tokio::select! {
            () = tokio::time::sleep(idle) => {
                tracing::debug!("a tunnel was idle too long; closed");
                return Ok(());
            }
            n = cr.read(&mut up_buf), if client_open => {
                let n = n?;
                if n == 0 {
                    client_open = false;
                    uw.shutdown().await?;
                } else {
                    tokio::time::timeout(idle, uw.write_all(&up_buf[..n]))
                        .await
                        .map_err(|_| timed_out())??;
                }
            }
            n = ur.read(&mut down_buf), if upstream_open => {
                let n = n?;
                if n == 0 {
                    upstream_open = false;
                    cw.shutdown().await?;
                } else {
                    tokio::time::timeout(idle, cw.write_all(&down_buf[..n]))
                        .await
                        .map_err(|_| timed_out())??;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_lives_until_exp_or_auth_time_plus_max_age_and_public_ones_briefly() {
        let t = UnixTime::from_secs;
        let now = t(1_000);
        let secs = Duration::from_secs;
        assert_eq!(authorised_for(now, Some(t(1_600)), None, None), secs(600));
        assert_eq!(
            authorised_for(now, Some(t(1_600)), Some(t(900)), Some(secs(300))),
            secs(200)
        );
        assert_eq!(
            authorised_for(now, Some(t(1_100)), Some(t(900)), Some(secs(300))),
            secs(100)
        );
        assert_eq!(
            authorised_for(now, Some(t(1_600)), None, Some(secs(300))),
            Duration::ZERO
        );
        assert_eq!(
            authorised_for(now, Some(t(1_600)), Some(t(100)), Some(secs(300))),
            Duration::ZERO
        );
        let tunnels = Tunnels::new(1, secs(60), secs(3_600), secs(300));
        assert_eq!(tunnels.lifetime(None), secs(300));
        assert_eq!(tunnels.lifetime(Some(secs(200))), secs(200));
        assert_eq!(tunnels.lifetime(Some(secs(9_000))), secs(3_600));
        let short_max = Tunnels::new(1, secs(60), secs(100), secs(300));
        assert_eq!(short_max.lifetime(None), secs(100));
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_a_get_asking_for_one_allowed_protocol_is_an_upgrade() {
        let ws = vec!["websocket".to_owned()];
        let ask = |method: Method, pairs: &[(&str, &str)]| requested(&method, &map(pairs), &ws);
        assert_eq!(
            ask(
                Method::GET,
                &[
                    ("connection", "keep-alive, Upgrade"),
                    ("upgrade", "WebSocket")
                ]
            )
            .unwrap(),
            "WebSocket"
        );
        for (method, pairs) in [
            (
                Method::GET,
                &[
                    ("connection", "Upgrade, HTTP2-Settings"),
                    ("upgrade", "h2c"),
                ][..],
            ),
            (
                Method::GET,
                &[("connection", "upgrade"), ("upgrade", "websocket, h2c")][..],
            ),
            (
                Method::GET,
                &[("connection", "upgrade"), ("upgrade", "TLS/1.2")][..],
            ),
            (Method::GET, &[("upgrade", "websocket")][..]),
            (
                Method::GET,
                &[
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("upgrade", "h2c"),
                ][..],
            ),
            (
                Method::POST,
                &[("connection", "upgrade"), ("upgrade", "websocket")][..],
            ),
        ] {
            assert_eq!(ask(method.clone(), pairs), None, "{method} {pairs:?}");
        }
        // Even listed, h2c is never passed.
        let h2c = vec!["h2c".to_owned()];
        let h = map(&[("connection", "upgrade"), ("upgrade", "h2c")]);
        assert_eq!(requested(&Method::GET, &h, &h2c), None);
    }

    #[test]
    fn a_101_must_switch_to_the_protocol_asked_for() {
        let asked = HeaderValue::from_static("websocket");
        assert!(switched_to(
            &asked,
            Some(&HeaderValue::from_static("WebSocket"))
        ));
        assert!(!switched_to(&asked, Some(&HeaderValue::from_static("h2c"))));
        assert!(!switched_to(&asked, None));
    }

    #[test]
    fn a_tunnel_lives_at_most_the_configured_time_or_until_the_token_expires() {
        let t = Tunnels::new(
            1,
            Duration::from_secs(5),
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        assert_eq!(t.lifetime(None), Duration::from_secs(60));
        assert_eq!(
            t.lifetime(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            t.lifetime(Some(Duration::from_secs(600))),
            Duration::from_secs(60)
        );
        let first = t.slot().unwrap();
        assert!(t.slot().is_none());
        drop(first);
        assert!(t.slot().is_some());
    }
}
