//! How many connections one source may hold at once (an IPv4 address, or an IPv6 /64: a
//! single host usually owns a whole /64), and one prefix (an IPv4 /24, an IPv6 /48: one
//! network's many addresses) four times as many. Peers in `trusted_proxies` are not
//! limited: all clients arrive through them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;

/// How many more connections a prefix may hold than one of its sources.
pub(crate) const PREFIX_FACTOR: usize = 4;

/// A counted key: a source (the IPv4 address, or the /64 of an IPv6 address) or a
/// prefix (the IPv4 /24, the IPv6 /48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6(u64),
    Net4(u32),
    Net6(u64),
}

/// The source and the prefix of `ip`.
fn keys(ip: IpAddr) -> (Source, Source) {
    let v4 = |v4: std::net::Ipv4Addr| {
        let a = u32::from(v4);
        (Source::V4(a), Source::Net4(a >> 8))
    };
    match crate::client_addr::unwrapped(ip) {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            (
                Source::V6((bits >> 64) as u64),
                Source::Net6((bits >> 80) as u64),
            )
        }
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Over {
    /// Its source holds `cap`.
    Source,
    /// Its prefix holds [`PREFIX_FACTOR`] times `cap`.
    Prefix,
}

/// Open connections by source.
pub(crate) struct Sources {
    cap: usize,
    exempt: Vec<IpNet>,
    open: Arc<Mutex<HashMap<Source, usize>>>,
}

/// One connection's count against its source and prefix, given back on drop.
pub(crate) struct Held {
    key: Option<(Source, Source)>,
    open: Arc<Mutex<HashMap<Source, usize>>>,
}

impl Sources {
    pub(crate) fn new(cap: usize, exempt: Vec<IpNet>) -> Self {
        Sources {
            cap,
            exempt,
            open: Arc::default(),
        }
    }

    /// Counts a connection from `ip`; refused when its source already holds `cap` or its
    /// prefix [`PREFIX_FACTOR`] times `cap`.
    pub(crate) fn take(&self, ip: IpAddr) -> Result<Held, Over> {
        let client = crate::client_addr::unwrapped(ip);
        if self.exempt.iter().any(|n| n.contains(&client)) {
            return Ok(Held {
                key: None,
                open: Arc::clone(&self.open),
            });
        }
        let (source, prefix) = keys(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = |k| open.get(&k).copied().unwrap_or(0);
        if count(source) >= self.cap {
            return Err(Over::Source);
        }
        if count(prefix) >= self.cap.saturating_mul(PREFIX_FACTOR) {
            return Err(Over::Prefix);
        }
        *open.entry(source).or_insert(0) += 1;
        *open.entry(prefix).or_insert(0) += 1;
        Ok(Held {
            key: Some((source, prefix)),
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some((source, prefix)) = self.key else {
            return;
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for key in [source, prefix] {
            if let Some(n) = open.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_holds_at_most_the_cap_and_gets_its_places_back() {
        let s = Sources::new(2, vec!["10.9.0.0/16".parse().unwrap()]);
        let a = s.take(ip("192.0.2.1")).unwrap();
        let _b = s.take(ip("192.0.2.1")).unwrap();
        assert_eq!(s.take(ip("192.0.2.1")).err(), Some(Over::Source));
        // The same IPv4 address written as IPv4-mapped IPv6 is the same source.
        assert_eq!(s.take(ip("::ffff:192.0.2.1")).err(), Some(Over::Source));
        // Another address is another source.
        let _c = s.take(ip("192.0.2.2")).unwrap();
        drop(a);
        let _d = s.take(ip("192.0.2.1")).unwrap();
        // A whole IPv6 /64 is one source; the next /64 is another.
        let _e = s.take(ip("2001:db8:0:1::1")).unwrap();
        let _f = s.take(ip("2001:db8:0:1:ffff::2")).unwrap();
        assert_eq!(s.take(ip("2001:db8:0:1::3")).err(), Some(Over::Source));
        let _g = s.take(ip("2001:db8:0:2::1")).unwrap();
        // Trusted proxies are not limited.
        let proxied: Vec<_> = (0..10).map(|_| s.take(ip("10.9.1.1")).unwrap()).collect();
        drop(proxied);
        assert!(s.open.lock().unwrap().values().all(|n| *n > 0));
    }

    #[test]
    fn one_prefix_holds_at_most_four_times_the_cap() {
        let s = Sources::new(2, vec!["10.9.0.0/16".parse().unwrap()]);
        // Four addresses of one IPv4 /24 fill the /24's share (4 x 2); a fifth address of
        // it is refused though it holds nothing, another /24 is not.
        let held: Vec<_> = (1..=4)
            .flat_map(|a| [ip(&format!("198.51.100.{a}")); 2])
            .map(|a| s.take(a).unwrap())
            .collect();
        assert_eq!(s.take(ip("198.51.100.5")).err(), Some(Over::Prefix));
        assert_eq!(s.take(ip("::ffff:198.51.100.9")).err(), Some(Over::Prefix));
        let _other = s.take(ip("198.51.101.1")).unwrap();
        // Many /64s of one IPv6 /48 likewise; the next /48 is another prefix.
        let held6: Vec<_> = (1..=4)
            .flat_map(|n| [ip(&format!("2001:db8:7:{n}::1")); 2])
            .map(|a| s.take(a).unwrap())
            .collect();
        assert_eq!(s.take(ip("2001:db8:7:ffff::1")).err(), Some(Over::Prefix));
        let _next = s.take(ip("2001:db8:8::1")).unwrap();
        // Trusted proxies are not limited by their prefix either.
        let _p: Vec<_> = (0..20).map(|_| s.take(ip("10.9.1.1")).unwrap()).collect();
        // Places come back: the /24 admits again once one closes.
        drop(held);
        drop(held6);
        let _again = s.take(ip("198.51.100.5")).unwrap();
        let _again6 = s.take(ip("2001:db8:7:ffff::1")).unwrap();
    }
}
