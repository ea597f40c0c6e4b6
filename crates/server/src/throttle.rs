//! Throttling of failed logins, per account and per client IP. After `threshold` failures
//! within the window, each further failure blocks for 1, 2, 4, ... seconds, capped at
//! `max_block`: slow for guessing, never a permanent lock-out. State lives in the store.

use std::net::IpAddr;
use std::time::Duration;

use crate::oauth::OAuthError;
use crate::state::AppState;

/// Throttling policy (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures per account within the window before blocking starts.
    pub per_account: u32,
    /// Failures per client IP within the window before blocking starts.
    pub per_ip: u32,
    /// The counting window.
    pub window: Duration,
    /// Longest block.
    pub max_block: Duration,
}

impl ThrottlePolicy {
    /// How long to block after the `count`-th failure, if at all.
    pub fn block_for(&self, count: u32, threshold: u32) -> Option<Duration> {
        let over = count.checked_sub(threshold)?;
        let secs = 1u64.checked_shl(over.min(32)).unwrap_or(u64::MAX);
        Some(Duration::from_secs(secs).min(self.max_block))
    }
}

fn keys(username: &str, ip: Option<IpAddr>) -> [Option<String>; 2] {
    [
        Some(format!("user:{username}")),
        ip.map(|ip| format!("ip:{ip}")),
    ]
}

/// Refuses with 429 and `Retry-After` while the account or the IP is blocked.
pub(crate) async fn check(
    state: &AppState,
    username: &str,
    ip: Option<IpAddr>,
) -> Result<(), OAuthError> {
    let now = state.clock.now();
    let mut until = None;
    for key in keys(username, ip).into_iter().flatten() {
        if let Some(t) = state.store.login_blocked_until(&key, now).await? {
            until = until.max(Some(t));
        }
    }
    match until {
        Some(t) => Err(OAuthError::TooManyRequests {
            retry_after: u64::try_from(t.secs() - now.secs()).unwrap_or(1).max(1),
        }),
        None => Ok(()),
    }
}

/// Counts a failure for the account and the IP, blocking them when over the threshold.
pub(crate) async fn failed(
    state: &AppState,
    username: &str,
    ip: Option<IpAddr>,
) -> Result<(), OAuthError> {
    let policy = state.config.throttle;
    let now = state.clock.now();
    let [user_key, ip_key] = keys(username, ip);
    for (key, threshold) in [(user_key, policy.per_account), (ip_key, policy.per_ip)] {
        let Some(key) = key else { continue };
        let count = state
            .store
            .record_login_failure(&key, now, policy.window)
            .await?;
        if let Some(block) = policy.block_for(count, threshold) {
            // The clock has whole seconds: one more makes the block last at least
            // `block` however late in its second the failure came.
            let until = now.saturating_add(block + Duration::from_secs(1));
            state.store.block_login(&key, until).await?;
            tracing::warn!(
                kind = key.split(':').next().unwrap_or_default(),
                count,
                block_secs = block.as_secs(),
                "login throttled"
            );
        }
    }
    Ok(())
}

/// Distinct accounts failing from one address within the window that make it look like
/// password spraying (one guess against many accounts, under the per-account threshold).
pub(crate) const SPRAY_ACCOUNTS: u32 = 5;

/// Counts the failed account per address; when one address reaches [`SPRAY_ACCOUNTS`]
/// distinct accounts within the window, returns that count (once per window).
pub(crate) async fn spray_suspected(
    state: &AppState,
    username: &str,
    ip: Option<IpAddr>,
) -> Result<Option<u32>, OAuthError> {
    let Some(ip) = ip else { return Ok(None) };
    let window = state.config.throttle.window;
    let now = state.clock.now();
    let pair = format!("ipuser:{ip}|{username}");
    if state.store.record_login_failure(&pair, now, window).await? != 1 {
        return Ok(None);
    }
    let accounts = state
        .store
        .record_login_failure(&format!("ipaccounts:{ip}"), now, window)
        .await?;
    Ok((accounts == SPRAY_ACCOUNTS).then_some(accounts))
}

/// Forgets the account's failures after a successful login (the IP's stay).
pub(crate) async fn succeeded(state: &AppState, username: &str) -> Result<(), OAuthError> {
    Ok(state
        .store
        .clear_login_failures(&format!("user:{username}"))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_grow_and_are_capped() {
        let p = ThrottlePolicy {
            per_account: 3,
            per_ip: 10,
            window: Duration::from_secs(900),
            max_block: Duration::from_secs(60),
        };
        assert_eq!(p.block_for(2, 3), None);
        assert_eq!(p.block_for(3, 3), Some(Duration::from_secs(1)));
        assert_eq!(p.block_for(5, 3), Some(Duration::from_secs(4)));
        assert_eq!(p.block_for(40, 3), Some(Duration::from_secs(60)));
        assert_eq!(p.block_for(u32::MAX, 3), Some(Duration::from_secs(60)));
    }
}
