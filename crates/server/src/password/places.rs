//! The places of the password-check queue (running and waiting checks), shared out so
//! that no source can take them all: each source network and each wider prefix may hold
//! only a share of the open places, and a reserve on top of them is kept for an account
//! signing in again from a network it recently signed in from. Everything here is in
//! memory and decided before the store is touched, so a refused login costs nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tessera_token::UnixTime;

/// Where a check comes from, as the queue tells sources apart.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The source network (an IPv4 address, an IPv6 /64), when known.
    pub network: Option<String>,
    /// The wider prefix (an IPv4 /24, an IPv6 /48), when known.
    pub prefix: Option<String>,
    /// The (account, network) pair that signed in successfully lately, if any
    /// ([`Places::remember`]): it may use the reserve.
    pub pair: Option<String>,
}

/// How long a successful sign-in keeps its (account, network) pair entitled to the
/// reserve.
const KNOWN_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most (account, network) pairs remembered; past it the oldest are forgotten.
const MAX_KNOWN: usize = 50_000;

/// The shared-out places.
#[derive(Debug)]
pub(crate) struct Places {
    /// Open places: `concurrency` + `password_hash_queue`.
    open: usize,
    /// Places beyond `open` only a known pair may take.
    reserve: usize,
    /// Most open places one source network may hold.
    per_network: usize,
    /// Most open places one prefix may hold.
    per_prefix: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    open: usize,
    reserve: usize,
    networks: HashMap<String, usize>,
    prefixes: HashMap<String, usize>,
    known: HashMap<String, UnixTime>,
}

/// Which pool a place came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    Open,
    Reserve,
}

/// A place among the running and waiting verifications, given back when dropped (when
/// the check ends).
#[derive(Debug)]
pub struct Admission {
    places: Arc<Places>,
    pool: Pool,
    network: Option<String>,
    prefix: Option<String>,
}

impl Places {
    /// `total` open places (at least 1): a network may hold an eighth of them, a prefix a
    /// quarter (each at least 1), and a quarter more (at least 1) are kept for known
    /// pairs.
    pub(crate) fn new(total: usize) -> Arc<Self> {
        let open = total.max(1);
        Arc::new(Places {
            open,
            reserve: (open / 4).max(1),
            per_network: (open / 8).max(1),
            per_prefix: (open / 4).max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The counts stay consistent under a panic elsewhere: every update is one step.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a check from `source`, or `None` when its network or prefix already
    /// holds its share, or every place it may take is held.
    pub(crate) fn admit(self: &Arc<Self>, source: &Source, now: UnixTime) -> Option<Admission> {
        let mut inner = self.lock();
        let known = source.pair.as_ref().is_some_and(|p| {
            inner
                .known
                .get(p)
                .is_some_and(|t| t.saturating_add(KNOWN_FOR) > now)
        });
        let pool = if known && inner.reserve < self.reserve {
            inner.reserve += 1;
            Pool::Reserve
        } else {
            let held = |m: &HashMap<String, usize>, k: &Option<String>| {
                k.as_ref().and_then(|k| m.get(k)).copied().unwrap_or(0)
            };
            if inner.open >= self.open
                || held(&inner.networks, &source.network) >= self.per_network
                || held(&inner.prefixes, &source.prefix) >= self.per_prefix
            {
                return None;
            }
            inner.open += 1;
            Pool::Open
        };
        if pool == Pool::Open {
            let Inner {
                networks, prefixes, ..
            } = &mut *inner;
            for (m, k) in [(networks, &source.network), (prefixes, &source.prefix)] {
                if let Some(k) = k {
                    *m.entry(k.clone()).or_default() += 1;
                }
            }
        }
        Some(Admission {
            places: Arc::clone(self),
            pool,
            network: source.network.clone().filter(|_| pool == Pool::Open),
            prefix: source.prefix.clone().filter(|_| pool == Pool::Open),
        })
    }

    /// Remembers that `pair` (an account and a network) signed in successfully at `now`.
    pub(crate) fn remember(&self, pair: String, now: UnixTime) {
        let mut inner = self.lock();
        if inner.known.len() >= MAX_KNOWN && !inner.known.contains_key(&pair) {
            let horizon = now.saturating_sub(KNOWN_FOR);
            inner.known.retain(|_, t| *t > horizon);
            if inner.known.len() >= MAX_KNOWN {
                // Forget the older half.
                let mut times: Vec<i64> = inner.known.values().map(|t| t.secs()).collect();
                let mid = times.len() / 2;
                let (_, cut, _) = times.select_nth_unstable(mid);
                let cut = *cut;
                inner.known.retain(|_, t| t.secs() > cut);
            }
        }
        inner.known.insert(pair, now);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut inner = self.places.lock();
        match self.pool {
            Pool::Reserve => inner.reserve = inner.reserve.saturating_sub(1),
            Pool::Open => inner.open = inner.open.saturating_sub(1),
        }
        let Inner {
            networks, prefixes, ..
        } = &mut *inner;
        for (m, k) in [(networks, &self.network), (prefixes, &self.prefix)] {
            if let Some(k) = k
                && let Some(n) = m.get_mut(k)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(net: &str, prefix: &str) -> Source {
        Source {
            network: Some(net.into()),
            prefix: Some(prefix.into()),
            pair: None,
        }
    }

    const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

    /// One network gets an eighth of the places, one prefix a quarter; the rest stay
    /// open to others, and a place given back can be taken again.
    #[test]
    fn networks_and_prefixes_get_only_their_share() {
        let p = Places::new(16);
        let a: Vec<_> = (0..5)
            .filter_map(|_| p.admit(&from("10.0.0.1", "10.0.0.0/24"), NOW))
            .collect();
        assert_eq!(a.len(), 2, "a network holds at most 16/8");
        let b: Vec<_> = (2..20)
            .filter_map(|i| p.admit(&from(&format!("10.0.0.{i}"), "10.0.0.0/24"), NOW))
            .collect();
        assert_eq!(b.len(), 2, "the prefix holds at most 16/4 in all");
        let c: Vec<_> = (0..40)
            .filter_map(|i| {
                p.admit(
                    &from(&format!("10.{i}.0.1"), &format!("10.{i}.0.0/24")),
                    NOW,
                )
            })
            .collect();
        assert_eq!(c.len(), 12, "the other prefixes take the rest of the 16");
        assert!(
            p.admit(&Source::default(), NOW).is_none(),
            "all open places held"
        );
        drop(a);
        assert!(p.admit(&from("10.0.0.1", "10.0.0.0/24"), NOW).is_some());
    }

    /// With every open place held by a flood, a pair that signed in lately from its
    /// network still gets a place from the reserve; an unknown pair, or one signed in
    /// too long ago, does not.
    #[test]
    fn a_known_pair_gets_in_when_the_flood_holds_every_open_place() {
        let p = Places::new(8);
        let flood: Vec<_> = (0..100)
            .filter_map(|i| {
                p.admit(
                    &from(&format!("10.{i}.0.1"), &format!("10.{i}.0.0/24")),
                    NOW,
                )
            })
            .collect();
        assert_eq!(flood.len(), 8);
        let alice = Source {
            pair: Some("alice|192.0.2.7".into()),
            ..from("192.0.2.7", "192.0.2.0/24")
        };
        assert!(p.admit(&alice, NOW).is_none(), "not known yet");
        p.remember("alice|192.0.2.7".into(), NOW);
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(p.admit(&alice, NOW).expect("the reserve of 8/4"));
        }
        assert!(p.admit(&alice, NOW).is_none(), "the reserve is bounded too");
        drop(held);
        let later = NOW.saturating_add(KNOWN_FOR);
        assert!(
            p.admit(&alice, later).is_none(),
            "forgotten after KNOWN_FOR"
        );
    }

    /// The memory of known pairs is bounded.
    #[test]
    fn known_pairs_are_bounded() {
        let p = Places::new(4);
        for i in 0..(MAX_KNOWN + 10) {
            p.remember(
                format!("pair{i}"),
                NOW.saturating_add(Duration::from_secs(i as u64)),
            );
        }
        let n = p.lock().known.len();
        assert!(n <= MAX_KNOWN && n > MAX_KNOWN / 4, "{n}");
    }
}
