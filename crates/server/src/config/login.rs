//! The login section: password hashing (threads, their priority, the waiting queue) and
//! the failed-login throttling policy ([`ThrottlePolicy`]; `throttle` applies it).

use std::time::Duration;

use super::{DAY, FileConfig, Problems, invalid};

/// Verifications that may wait for a hashing thread by default (`password_hash_queue`).
pub const DEFAULT_HASH_QUEUE: usize = 32;

/// How the hashing threads are scheduled against the threads that answer requests
/// (`password_hash_priority`; Linux, elsewhere the system default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HashPriority {
    /// `SCHED_IDLE`: a hash runs on CPU time no other thread wants, and a request thread
    /// that wakes takes the core from it at once, so a login storm adds nothing to the
    /// latency of token checks and issuance. While the CPU is saturated by other work,
    /// logins wait.
    #[default]
    Idle,
    /// Nice 10: hashes keep about a tenth of a contended core, and a request that arrives
    /// while one runs may wait up to a scheduler time slice (a few milliseconds).
    Nice,
}

impl std::str::FromStr for HashPriority {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "idle" => Ok(HashPriority::Idle),
            "nice" => Ok(HashPriority::Nice),
            _ => Err(()),
        }
    }
}

/// Whether browser sign-in offers or requires a second factor (`mfa`). A factor once
/// enrolled is asked for in every mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MfaMode {
    /// Enrolment is not offered.
    Off,
    /// A user may enrol from the sign-in page.
    #[default]
    Optional,
    /// A user without a factor enrols at their next sign-in.
    Required,
}

impl std::str::FromStr for MfaMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "off" => Ok(MfaMode::Off),
            "optional" => Ok(MfaMode::Optional),
            "required" => Ok(MfaMode::Required),
            _ => Err(()),
        }
    }
}

/// Largest `password_hash_queue`.
const MAX_HASH_QUEUE: usize = 10_000;

/// Password checks: for the password pool (`password`), `login` and `throttle`.
#[derive(Debug, Clone)]
pub struct LoginConfig {
    /// Concurrent password hashes.
    pub password_hash_concurrency: usize,
    /// Scheduling of the password hashing threads.
    pub password_hash_priority: HashPriority,
    /// Password checks that may wait for a hashing thread before logins are refused.
    pub password_hash_queue: usize,
    /// Failed-login throttling.
    pub throttle: ThrottlePolicy,
    /// Second factors at browser sign-in.
    pub mfa: MfaMode,
    /// The WebAuthn relying party id (`passkey_rp_id`); `None`: the issuer's host.
    pub passkey_rp_id: Option<String>,
    /// Allowance for replicas' clocks when `/authorize` asks for a fresh sign-in
    /// (`authorize_clock_leeway_secs`).
    pub authorize_clock_leeway: Duration,
}

/// Throttling policy (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures per account from one source network within the window before blocking
    /// starts (that network, for that account).
    pub per_account: u32,
    /// Failures per source network within the window before blocking starts.
    pub per_ip: u32,
    /// The counting window.
    pub window: Duration,
    /// Longest block.
    pub max_block: Duration,
}

impl LoginConfig {
    /// The password and throttling keys of `f`.
    pub(super) fn resolve(f: &FileConfig, p: &mut Problems) -> Self {
        let available = std::thread::available_parallelism().map_or(2, |n| n.get());
        let password_hash_concurrency = match f.password_hash_concurrency {
            Some(0) => {
                p.push(invalid(
                    "password_hash_concurrency",
                    0,
                    "must be at least 1",
                ));
                available
            }
            Some(n) => n,
            None => available,
        };
        let password_hash_priority = match f.password_hash_priority.as_deref() {
            None => HashPriority::default(),
            Some(name) => p
                .take(name.parse().map_err(|()| {
                    invalid(
                        "password_hash_priority",
                        format!("{name:?}"),
                        "must be \"idle\" or \"nice\"",
                    )
                }))
                .unwrap_or_default(),
        };
        let password_hash_queue = p.within(
            "password_hash_queue",
            f.password_hash_queue,
            DEFAULT_HASH_QUEUE,
            0,
            MAX_HASH_QUEUE,
        );
        let mfa = match f.mfa.as_deref() {
            None => MfaMode::default(),
            Some(name) => p
                .take(name.parse().map_err(|()| {
                    invalid(
                        "mfa",
                        format!("{name:?}"),
                        "must be \"off\", \"optional\" or \"required\"",
                    )
                }))
                .unwrap_or_default(),
        };
        LoginConfig {
            mfa,
            passkey_rp_id: f.passkey_rp_id.clone(),
            authorize_clock_leeway: p.secs(
                "authorize_clock_leeway_secs",
                f.authorize_clock_leeway_secs,
                5,
                0,
                60,
            ),
            password_hash_concurrency,
            password_hash_priority,
            password_hash_queue,
            throttle: ThrottlePolicy::resolve(f, p),
        }
    }
}

impl ThrottlePolicy {
    /// The `login_*` keys of `f`.
    fn resolve(f: &FileConfig, p: &mut Problems) -> Self {
        let mut at_least_one = |key: &str, v: Option<u32>, d: u32| match v.unwrap_or(d) {
            0 => {
                p.push(invalid(key, 0, "must be at least 1"));
                d
            }
            n => n,
        };
        let per_account = at_least_one(
            "login_failures_per_account",
            f.login_failures_per_account,
            5,
        );
        let per_ip = at_least_one("login_failures_per_ip", f.login_failures_per_ip, 50);
        ThrottlePolicy {
            per_account,
            per_ip,
            window: p.secs(
                "login_failure_window_secs",
                f.login_failure_window_secs,
                900,
                1,
                DAY,
            ),
            max_block: p.secs("login_max_block_secs", f.login_max_block_secs, 900, 1, DAY),
        }
    }
}
