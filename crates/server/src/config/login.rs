//! The login section: password hashing (threads, their priority, the waiting queue) and
//! the failed-login throttling policy ([`ThrottlePolicy`]; `throttle` applies it).

use std::time::Duration;

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
