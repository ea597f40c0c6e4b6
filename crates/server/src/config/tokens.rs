//! The tokens and revocation sections: how long what the server issues lives (access and
//! refresh tokens, authorization codes), the refresh reuse grace, and the `/revoke` rate.

use std::num::NonZeroU32;
use std::time::Duration;

use super::{DAY, FileConfig, Problems, invalid};

/// Longest allowed refresh-token reuse grace window.
pub const MAX_REFRESH_GRACE: Duration = Duration::from_secs(60);

/// Lifetimes of what the server issues: for `grants`, `tokens`, `oidc` and `admin`.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh-token idle lifetime.
    pub refresh_idle_ttl: Duration,
    /// Refresh family absolute lifetime.
    pub refresh_absolute_ttl: Duration,
    /// Refresh reuse grace window.
    pub refresh_reuse_grace: Duration,
    /// Authorization-code lifetime.
    pub authorization_code_ttl: Duration,
}

impl TokenConfig {
    /// The token keys of `f`.
    pub(super) fn resolve(f: &FileConfig, p: &mut Problems) -> Self {
        let access_token_ttl = p.secs(
            "access_token_ttl_secs",
            f.access_token_ttl_secs,
            600,
            60,
            DAY,
        );
        let refresh_idle_ttl = p.secs(
            "refresh_token_idle_ttl_secs",
            f.refresh_token_idle_ttl_secs,
            14 * DAY,
            60,
            3650 * DAY,
        );
        let refresh_absolute_ttl = p.secs(
            "refresh_token_absolute_ttl_secs",
            f.refresh_token_absolute_ttl_secs,
            90 * DAY,
            60,
            3650 * DAY,
        );
        if refresh_absolute_ttl < refresh_idle_ttl {
            p.push(invalid(
                "refresh_token_absolute_ttl_secs",
                refresh_absolute_ttl.as_secs(),
                &format!(
                    "must be at least refresh_token_idle_ttl_secs ({})",
                    refresh_idle_ttl.as_secs()
                ),
            ));
        }
        TokenConfig {
            access_token_ttl,
            refresh_idle_ttl,
            refresh_absolute_ttl,
            refresh_reuse_grace: p.secs(
                "refresh_reuse_grace_secs",
                f.refresh_reuse_grace_secs,
                0,
                0,
                MAX_REFRESH_GRACE.as_secs(),
            ),
            authorization_code_ttl: p.secs(
                "authorization_code_ttl_secs",
                f.authorization_code_ttl_secs,
                60,
                1,
                600,
            ),
        }
    }
}

/// Revocation: the `/revoke` rate limit in the shared state, and the feed's push
/// subscriptions.
#[derive(Debug, Clone)]
pub struct RevocationConfig {
    /// `/revoke` requests that write, per minute per client, per node.
    pub revoke_requests_per_minute: NonZeroU32,
    /// Push subscriptions one client may hold open at once, per node.
    pub feed_subscriptions_per_client: usize,
    /// Push subscriptions this node holds open at once (the rest of `max_connections`
    /// stays for everything else).
    pub feed_subscriptions_max: usize,
    /// Longest life of one push subscription (below the serving layer's connection age).
    pub feed_subscription_max: Duration,
    /// Keep-alive interval of an idle push subscription.
    pub feed_keepalive: Duration,
}

impl RevocationConfig {
    /// The revocation keys of `f`.
    pub(super) fn resolve(f: &FileConfig, p: &mut Problems) -> Self {
        let per_minute = p.within(
            "revoke_requests_per_minute",
            f.revoke_requests_per_minute,
            600,
            1,
            1_000_000,
        );
        let per_client = p.within(
            "feed_subscriptions_per_client",
            f.feed_subscriptions_per_client,
            64,
            1,
            100_000,
        );
        let connections = f
            .max_connections
            .unwrap_or(super::serving::DEFAULT_MAX_CONNECTIONS)
            .max(1);
        let total = p.within(
            "feed_subscriptions_max",
            f.feed_subscriptions_max,
            (connections / 2).max(1),
            1,
            (connections * 3 / 4).max(1),
        );
        RevocationConfig {
            feed_subscriptions_max: total,
            revoke_requests_per_minute: NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN),
            feed_subscriptions_per_client: per_client as usize,
            feed_subscription_max: p.secs(
                "feed_subscription_max_secs",
                f.feed_subscription_max_secs,
                300,
                1,
                540,
            ),
            // At most 30: under the guard's default idle limit (45 s) with room to spare.
            feed_keepalive: p.secs("feed_keepalive_secs", f.feed_keepalive_secs, 15, 1, 30),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{FileConfig, Overrides, ServerConfig};

    fn resolve(max_connections: Option<usize>, cap: Option<usize>) -> Result<usize, String> {
        let f = FileConfig {
            max_connections,
            feed_subscriptions_max: cap,
            ..FileConfig::default()
        };
        ServerConfig::resolve(f, Overrides::default())
            .map(|c| c.revocation.feed_subscriptions_max)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_node_subscription_cap_leaves_room_for_other_connections() {
        assert_eq!(resolve(None, None).unwrap(), 256);
        assert_eq!(resolve(Some(100), None).unwrap(), 50);
        assert_eq!(resolve(Some(100), Some(75)).unwrap(), 75);
        let e = resolve(Some(100), Some(76)).unwrap_err();
        assert!(e.contains("feed_subscriptions_max"), "{e}");
        assert!(resolve(Some(100), Some(0)).is_err());
    }
}
