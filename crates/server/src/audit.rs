//! Audit events and the facts about a request they record (peer network, user agent).
//! A failure to record is logged, never surfaced to the client.

use crate::state::Core;
use crate::store::{AuditEvent, GrantContext};

/// Facts about the request beyond its parameters.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestContext {
    /// The peer's address, when known.
    pub(crate) ip: Option<std::net::IpAddr>,
    /// The `User-Agent` header, when sent (at most 200 characters).
    pub(crate) user_agent: Option<String>,
}

impl RequestContext {
    /// The grant context to store: the peer's /24 (IPv4) or /48 (IPv6), and the agent.
    pub(crate) fn grant_context(&self) -> GrantContext {
        GrantContext {
            net: self.ip.map(network),
            agent: self.user_agent.clone(),
        }
    }
}

/// The /24 (IPv4) or /48 (IPv6) network of an address, as `ADDR/LEN`.
pub(crate) fn network(ip: std::net::IpAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{}/24", Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        },
    }
}

/// Records an audit event; a failure is logged, never surfaced to the client.
pub(crate) async fn audit(
    core: &Core,
    kind: &str,
    client_id: Option<&str>,
    user_id: Option<&str>,
    detail: serde_json::Value,
) {
    let event = AuditEvent {
        at: core.clock.now(),
        kind: kind.to_owned(),
        client_id: client_id.map(str::to_owned),
        user_id: user_id.map(str::to_owned),
        detail: detail.to_string(),
    };
    if let Err(e) = core.store.record(&event).await {
        tracing::warn!(error = %e, kind, "could not record audit event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        let n = |s: &str| network(s.parse().unwrap());
        assert_eq!(n("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(n("::ffff:192.0.2.77"), "192.0.2.0/24");
        assert_eq!(n("2001:db8:1:2:3::9"), "2001:db8:1::/48");
        assert_ne!(n("192.0.2.1"), n("192.0.3.1"));
    }
}
