//! Throttling of password logins. Each attempt is reserved in the store before its
//! password is checked, counted per (account, source network) and per source network,
//! and the reservation that reaches a threshold blocks the key in the same atomic step:
//! however many guesses arrive at once, at most the threshold are checked. After the
//! threshold, each further failure blocks for 1, 2, 4, ... seconds, capped at
//! `max_block`: slow for guessing, never a permanent lock-out. A success releases its
//! reservation. Failures of an account from all networks together only raise an alarm,
//! so nobody can lock a known user out from everywhere. State lives in the store.
//!
//! Accounts appear here only as the keyed hash of their name (`login::name_tag`), so the
//! counters hold no name (nor a password typed as one).

use std::net::IpAddr;
use std::time::Duration;

use tessera_token::UnixTime;

use crate::config::ThrottlePolicy;
use crate::oauth::OAuthError;
use crate::state::Core;

impl ThrottlePolicy {
    /// How long to block after the `count`-th failure, if at all.
    pub fn block_for(&self, count: u32, threshold: u32) -> Option<Duration> {
        let over = count.checked_sub(threshold)?;
        let secs = 1u64.checked_shl(over.min(32)).unwrap_or(u64::MAX);
        Some(Duration::from_secs(secs).min(self.max_block))
    }

    /// Failures of one account from all networks within the window that raise the alarm
    /// (`login.account_targeted`): more than one network's worth.
    pub(crate) fn account_alarm(&self) -> u32 {
        self.per_account.saturating_mul(ACCOUNT_ALARM_FACTOR)
    }
}

/// How many per-network thresholds of failures against one account raise the alarm.
const ACCOUNT_ALARM_FACTOR: u32 = 2;

/// The first `bits` of an IPv6 address, as `addr/bits`.
fn v6_prefix(v6: std::net::Ipv6Addr, bits: u32) -> String {
    let net = u128::from(v6) & (u128::MAX << (128 - bits));
    format!("{}/{bits}", std::net::Ipv6Addr::from(net))
}

/// The source network attempts are counted against: an IPv4 address itself, an IPv6
/// address's /64 (one subscriber's allocation: its 2^64 addresses are one source), an
/// IPv4 address carried in IPv6 as that IPv4 address ([`unwrapped`](crate::client_addr::unwrapped)). Behind a reverse
/// proxy this is only the client's network when `trusted_proxies` names the proxy.
pub(crate) fn source_network(ip: IpAddr) -> String {
    match crate::client_addr::unwrapped(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6_prefix(v6, 64),
    }
}

/// The wider prefix around a source network (an IPv4 /24, an IPv6 /48): the unit that
/// may hold only a share of the password-check queue.
pub(crate) fn source_prefix(ip: IpAddr) -> String {
    match crate::client_addr::unwrapped(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => v6_prefix(v6, 48),
    }
}

/// Counts one unauthenticated start from `ip` (a passwordless ceremony begun with a
/// username alone, which writes its state to the store): past the per-network threshold
/// (`login_failures_per_ip`) within the window, the network's starts are refused until
/// the window ends (`Err(retry_after)`). No source address (a local socket): no limit.
pub(crate) async fn count_start(
    core: &Core,
    ip: Option<IpAddr>,
) -> Result<Result<(), u64>, OAuthError> {
    let Some(ip) = ip else { return Ok(Ok(())) };
    let policy = core.config.login.throttle;
    let key = format!("passkey-start:{}", source_network(ip));
    let now = core.clock.now();
    let left = |until: UnixTime| u64::try_from(until.secs() - now.secs()).unwrap_or(1).max(1);
    if let Some(until) = core.store.login_blocked_until(&key, now).await? {
        return Ok(Err(left(until)));
    }
    let count = core
        .store
        .record_login_failure(&key, now, policy.window)
        .await?;
    if count > policy.per_ip {
        let until = now.saturating_add(policy.window);
        core.store.block_login(&key, until).await?;
        return Ok(Err(left(until)));
    }
    Ok(Ok(()))
}

/// How long an attempt reserved at or past a threshold holds its key against every
/// other attempt while its password is checked: until it is settled (a failure replaces
/// the hold with the block it earns, a success or a release lifts it), or, should the
/// process die first, this long past the longest block. Being longer than any block, a
/// hold is told apart from a block by what is left of it ([`retry_after`]).
const HOLD_BEYOND_BLOCKS: Duration = Duration::from_secs(60);

/// The end of a hold taken at `now`.
fn hold_until(policy: &ThrottlePolicy, now: UnixTime) -> UnixTime {
    blocked_until(now, policy.max_block).saturating_add(HOLD_BEYOND_BLOCKS)
}

/// One reserved key of an attempt.
#[derive(Debug)]
struct Held {
    key: String,
    /// The count in the window, this attempt included.
    count: u32,
    threshold: u32,
    /// This attempt's count was given back already (a release whose hold lift failed).
    given_back: bool,
}

impl Held {
    /// At or past its threshold this attempt holds the key (the only one in flight).
    fn holds(&self) -> bool {
        self.count >= self.threshold
    }
}

/// One attempt's reservations, to settle once its password is checked. The check runs in
/// a task of its own (`login::authenticate`), so a client going away does not drop it;
/// dropped unsettled all the same (a panic, the runtime shutting down), it is released
/// in the background.
#[derive(Debug)]
pub(crate) struct Reservation {
    store: std::sync::Arc<dyn crate::store::Store>,
    /// The source network's key (when the source is known), then the (account, network)
    /// key.
    held: Vec<Held>,
    /// The account's key over all networks (counted on failure only).
    account: String,
    /// The password was checked (a failure is being settled): its counts stay.
    evaluated: bool,
    settled: bool,
}

/// Reserves an attempt against `account` (a name tag) from `ip`: `Err(retry_after)` when
/// the source network or this account from it is blocked or held, with nothing counted.
pub(crate) async fn reserve(
    core: &Core,
    account: &str,
    ip: Option<IpAddr>,
) -> Result<Result<Reservation, u64>, OAuthError> {
    let policy = core.config.login.throttle;
    let net = ip.map(source_network);
    let mut r = Reservation {
        store: std::sync::Arc::clone(&core.store),
        held: Vec::with_capacity(2),
        account: format!("acct:{account}"),
        evaluated: false,
        settled: false,
    };
    let keys = [
        net.as_ref().map(|n| (format!("ip:{n}"), policy.per_ip)),
        Some((
            format!("acctnet:{account}|{}", net.as_deref().unwrap_or("-")),
            policy.per_account,
        )),
    ];
    for (key, threshold) in keys.into_iter().flatten() {
        let now = core.clock.now();
        let taken = core
            .store
            .reserve_login_attempt(
                &key,
                now,
                policy.window,
                threshold,
                hold_until(&policy, now),
            )
            .await;
        match taken {
            Ok(Some(count)) => r.held.push(Held {
                key,
                count,
                threshold,
                given_back: false,
            }),
            Ok(None) => {
                let wait = retry_after(core, &key).await;
                r.release(core.clock.now()).await?;
                return Ok(Err(wait));
            }
            Err(e) => {
                r.release(core.clock.now()).await?;
                return Err(e.into());
            }
        }
    }
    Ok(Ok(r))
}

/// Seconds until `key` is free again: what is left of its block, at least 1; 1 while it
/// is only held (an attempt being checked, settled within a hash's time: more is left
/// of it than any block can last).
async fn retry_after(core: &Core, key: &str) -> u64 {
    let now = core.clock.now();
    match core.store.login_blocked_until(key, now).await {
        Ok(Some(t)) => wait_for(&core.config.login.throttle, now, t),
        _ => 1,
    }
}

/// [`retry_after`] for a key blocked or held until `until`.
fn wait_for(policy: &ThrottlePolicy, now: UnixTime, until: UnixTime) -> u64 {
    if until > blocked_until(now, policy.max_block) {
        return 1;
    }
    u64::try_from(until.secs() - now.secs()).unwrap_or(1).max(1)
}

/// The end of a block of `block` starting `now`. The clock has whole seconds: one more
/// makes the block last at least `block` however late in its second it started.
fn blocked_until(now: UnixTime, block: Duration) -> UnixTime {
    now.saturating_add(block + Duration::from_secs(1))
}

impl Reservation {
    /// The attempt was not evaluated (busy, or the store failed): gives its reservations
    /// back and lifts its holds. Should a write fail, what is left is given back when the
    /// reservation is dropped.
    pub(crate) async fn release(mut self, now: UnixTime) -> Result<(), OAuthError> {
        release_all(&*self.store, &mut self.held, now, false).await?;
        self.settled = true;
        Ok(())
    }

    /// The attempt succeeded: the account's failures from this network are forgotten
    /// (with its block); the network keeps its failures, less this attempt. Should a
    /// write fail, what is left is given back when the reservation is dropped.
    pub(crate) async fn succeeded(mut self, now: UnixTime) -> Result<(), OAuthError> {
        let pair = self.held.last().ok_or_else(no_keys)?;
        self.store.clear_login_failures(&pair.key).await?;
        self.held.pop();
        release_all(&*self.store, &mut self.held, now, false).await?;
        self.settled = true;
        Ok(())
    }

    /// The attempt failed: its reservations stay counted, and a hold becomes the block
    /// its count earns. Returns the account's failures over all networks in the window.
    /// Should a write fail, the holds not yet replaced are lifted when the reservation is
    /// dropped (the counts stay: the guess was checked).
    pub(crate) async fn failed(mut self, core: &Core) -> Result<u32, OAuthError> {
        self.evaluated = true;
        let policy = core.config.login.throttle;
        let now = core.clock.now();
        while let Some(h) = self.held.iter().find(|h| h.holds()) {
            let block = policy
                .block_for(h.count, h.threshold)
                .unwrap_or(Duration::from_secs(1));
            self.store
                .replace_login_block(&h.key, blocked_until(now, block))
                .await?;
            tracing::warn!(
                kind = h.key.split(':').next().unwrap_or_default(),
                count = h.count,
                block_secs = block.as_secs(),
                "login throttled"
            );
            let key = h.key.clone();
            self.held.retain(|h| h.key != key);
        }
        let failures = self
            .store
            .record_login_failure(&self.account, now, policy.window)
            .await?;
        self.settled = true;
        Ok(failures)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut held = std::mem::take(&mut self.held);
        let (store, evaluated) = (std::sync::Arc::clone(&self.store), self.evaluated);
        // A check task dropped mid-check, or a settling whose store write failed, gets
        // here; without a runtime there is nothing to run on and the holds simply expire.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                // No clock here: 0 lifts a hold as well as now would (the store compares
                // `blocked_until > now`).
                let now = UnixTime::from_secs(0);
                if let Err(e) = release_all(&*store, &mut held, now, evaluated).await {
                    tracing::warn!(error = %e, "could not release an abandoned login attempt");
                }
            });
        }
    }
}

fn no_keys() -> OAuthError {
    OAuthError::Server("a login reservation without keys".into())
}

/// Gives back one reservation of each key (unless the attempt was `evaluated`: then its
/// counts stay), lifting the holds among them; each key is taken off `held` once done, so
/// what is left after an error is exactly what remains to do.
async fn release_all(
    store: &dyn crate::store::Store,
    held: &mut Vec<Held>,
    now: UnixTime,
    evaluated: bool,
) -> Result<(), OAuthError> {
    while let Some(h) = held.first_mut() {
        if !evaluated && !h.given_back {
            store.release_login_attempt(&h.key).await?;
            h.given_back = true;
        }
        if h.holds() {
            store.replace_login_block(&h.key, now).await?;
        }
        held.remove(0);
    }
    Ok(())
}

/// Distinct accounts failing from one address within the window that make it look like
/// password spraying (one guess against many accounts, under the per-account threshold).
pub(crate) const SPRAY_ACCOUNTS: u32 = 5;

/// Counts the failed account (a name tag) per source network; when one network reaches
/// [`SPRAY_ACCOUNTS`] distinct accounts within the window, returns that count (once per
/// window).
pub(crate) async fn spray_suspected(
    core: &Core,
    account: &str,
    ip: Option<IpAddr>,
) -> Result<Option<u32>, OAuthError> {
    let Some(ip) = ip else { return Ok(None) };
    let net = source_network(ip);
    let window = core.config.login.throttle.window;
    let now = core.clock.now();
    let pair = format!("ipuser:{net}|{account}");
    if core.store.record_login_failure(&pair, now, window).await? != 1 {
        return Ok(None);
    }
    let accounts = core
        .store
        .record_login_failure(&format!("ipaccounts:{net}"), now, window)
        .await?;
    Ok((accounts == SPRAY_ACCOUNTS).then_some(accounts))
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
        assert_eq!(p.account_alarm(), 6);
    }

    /// IPv6 sources are counted by /64 (a subscriber changes the low 64 bits at will),
    /// IPv4 by address; an IPv4-mapped IPv6 address is its IPv4 address.
    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        let n = |s: &str| source_network(s.parse().unwrap());
        assert_eq!(n("192.0.2.77"), "192.0.2.77");
        assert_ne!(n("192.0.2.77"), n("192.0.2.78"));
        assert_eq!(n("::ffff:192.0.2.77"), "192.0.2.77");
        assert_eq!(n("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(n("2001:db8:1:2:ffff:ffff:ffff:ffff"), n("2001:db8:1:2::1"));
        assert_ne!(n("2001:db8:1:2::1"), n("2001:db8:1:3::1"));
        assert_eq!(n("::1"), "::/64");
        assert_eq!(n("::"), "::/64");
    }

    /// IPv4 addresses carried in IPv6 (mapped, NAT64, IPv4-compatible) count as the IPv4
    /// address, so one IPv4 source cannot pose as many IPv6 networks; prefixes are IPv4
    /// /24s and IPv6 /48s.
    #[test]
    fn ipv4_carried_in_ipv6_is_its_ipv4_address() {
        let n = |s: &str| source_network(s.parse().unwrap());
        let p = |s: &str| source_prefix(s.parse().unwrap());
        for carried in ["::ffff:192.0.2.77", "64:ff9b::192.0.2.77", "::192.0.2.77"] {
            assert_eq!(n(carried), "192.0.2.77", "{carried}");
            assert_eq!(p(carried), "192.0.2.0/24", "{carried}");
        }
        assert_eq!(
            n("64:ff9b:1::192.0.2.77"),
            "64:ff9b:1::/64",
            "not the well-known prefix"
        );
        assert_eq!(p("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(p("2001:db8:1:2:3:4:5:6"), "2001:db8:1::/48");
        assert_eq!(p("2001:db8:1:ffff::1"), p("2001:db8:1:2::1"));
    }

    /// A hold (an attempt being checked) is answered with 1 s; a block with what is left
    /// of it, at least 1.
    #[test]
    fn a_hold_says_one_second_a_block_what_is_left() {
        let p = ThrottlePolicy {
            per_account: 3,
            per_ip: 10,
            window: Duration::from_secs(900),
            max_block: Duration::from_secs(900),
        };
        let now = UnixTime::from_secs(1_800_000_000);
        assert_eq!(wait_for(&p, now, hold_until(&p, now)), 1);
        let later = now.saturating_add(Duration::from_secs(30));
        assert_eq!(wait_for(&p, later, hold_until(&p, now)), 1, "still a hold");
        assert_eq!(
            wait_for(&p, now, blocked_until(now, Duration::from_secs(4))),
            5
        );
        assert_eq!(wait_for(&p, now, blocked_until(now, p.max_block)), 901);
        assert_eq!(wait_for(&p, now, now), 1);
    }

    /// Throttling runs on a bare `Core` (no router): an account that fails from one
    /// network until its threshold is blocked there, and nothing else is.
    #[tokio::test]
    async fn failures_up_to_the_threshold_block_the_account_from_that_network() {
        let (core, _dir, _clock) = crate::state::testing::core().await;
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let threshold = core.config.login.throttle.per_account;
        for _ in 0..threshold {
            let r = reserve(&core, "alice", Some(ip)).await.unwrap().unwrap();
            r.failed(&core).await.unwrap();
        }
        let refused = reserve(&core, "alice", Some(ip)).await.unwrap();
        assert!(
            matches!(refused, Err(wait) if wait >= 1),
            "blocked after {threshold}"
        );
        let other = reserve(&core, "bob", Some(ip)).await.unwrap();
        other.unwrap().release(core.clock.now()).await.unwrap();
    }
}
