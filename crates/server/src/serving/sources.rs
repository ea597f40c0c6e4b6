//! How many connections one source may hold at once: an IPv4 address, or an IPv6 /64 (a
//! single host usually owns a whole /64). Peers in `trusted_proxies` are not limited: all
//! clients arrive through them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;

/// A source's key: the IPv4 address, or the /64 prefix of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6(u64),
}

fn source(ip: IpAddr) -> Source {
    match ip {
        IpAddr::V4(v4) => Source::V4(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Source::V4(u32::from(v4)),
            None => Source::V6((u128::from(v6) >> 64) as u64),
        },
    }
}

/// Open connections by source.
pub(crate) struct Sources {
    cap: usize,
    exempt: Vec<IpNet>,
    open: Arc<Mutex<HashMap<Source, usize>>>,
}

/// One connection's count against its source, given back on drop.
pub(crate) struct Held {
    key: Option<Source>,
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

    /// Counts a connection from `ip`; `None` when its source already holds `cap`.
    pub(crate) fn take(&self, ip: IpAddr) -> Option<Held> {
        let unmapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if self.exempt.iter().any(|n| n.contains(&unmapped)) {
            return Some(Held {
                key: None,
                open: Arc::clone(&self.open),
            });
        }
        let key = source(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Held {
            key: Some(key),
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&key);
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
        assert!(s.take(ip("192.0.2.1")).is_none());
        // The same IPv4 address written as IPv4-mapped IPv6 is the same source.
        assert!(s.take(ip("::ffff:192.0.2.1")).is_none());
        // Another address is another source.
        let _c = s.take(ip("192.0.2.2")).unwrap();
        drop(a);
        let _d = s.take(ip("192.0.2.1")).unwrap();
        // A whole IPv6 /64 is one source; the next /64 is another.
        let _e = s.take(ip("2001:db8:0:1::1")).unwrap();
        let _f = s.take(ip("2001:db8:0:1:ffff::2")).unwrap();
        assert!(s.take(ip("2001:db8:0:1::3")).is_none());
        let _g = s.take(ip("2001:db8:0:2::1")).unwrap();
        // Trusted proxies are not limited.
        let proxied: Vec<_> = (0..10).map(|_| s.take(ip("10.9.1.1")).unwrap()).collect();
        drop(proxied);
        assert!(s.open.lock().unwrap().values().all(|n| *n > 0));
    }
}
