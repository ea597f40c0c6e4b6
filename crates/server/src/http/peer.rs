//! The client's IP address: the connection's peer, or, when that peer is one of the
//! configured `trusted_proxies`, the right-most `X-Forwarded-For` address that is not a
//! trusted proxy. Anyone can send `X-Forwarded-For`, so it is ignored from other peers.
//! Absent when the router runs without connect info (in-process tests).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::config::ServingConfig;
use crate::http::AppState;

/// The client address, if the server knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) Option<IpAddr>);

impl FromRequestParts<Arc<AppState>> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Peer(peer.map(|ip| {
            client_ip(ip, &parts.headers, &state.config.serving)
        })))
    }
}

/// The client behind `peer`: `peer` itself unless it is a trusted proxy; then the
/// forwarded chain is walked from the right past trusted proxies. A malformed entry
/// stops the walk at the last trusted hop (never believed further).
fn client_ip(peer: IpAddr, headers: &HeaderMap, serving: &ServingConfig) -> IpAddr {
    let peer = canonical(peer);
    if !serving.is_trusted_proxy(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !serving.is_trusted_proxy(client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// IPv4-mapped IPv6 addresses as IPv4, so `10.0.0.0/8` matches `::ffff:10.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides, ServerConfig};

    fn config(proxies: &[&str]) -> ServingConfig {
        let file = FileConfig {
            trusted_proxies: Some(proxies.iter().map(|s| (*s).to_owned()).collect()),
            ..FileConfig::default()
        };
        ServerConfig::resolve(file, Overrides::default())
            .unwrap()
            .serving
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let c = config(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &xff("198.51.100.1"), &c),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("203.0.113.9"), &xff("198.51.100.1"), &config(&[])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let c = config(&["10.0.0.0/8"]);
        // The client forged the left-most entry; the proxies appended the real one.
        let h = xff("1.2.3.4, 198.51.100.1, 10.0.0.2");
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &c), ip("198.51.100.1"));
        assert_eq!(client_ip(ip("::ffff:10.0.0.1"), &h, &c), ip("198.51.100.1"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &c),
            ip("10.0.0.1")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &xff("1.2.3.4, junk"), &c),
            ip("10.0.0.1")
        );
    }
}
