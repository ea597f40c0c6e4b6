//! The places of the password-check queue (running and waiting checks), shared out so
//! that no source can take them all: each source network and each wider prefix may hold
//! only a share of the open places, and a reserve on top of them is kept for an account
//! signing in again from a network it recently signed in from. The reserve is shared out
//! too: one place per account, and a share per network and per prefix, so one account
//! (or one network) that signs in successfully cannot hold it all. Everything here is in
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
    /// The account (its name tag) the check is for, when known: if it signed in
    /// successfully from `network` lately (`Places::remember`), the check may use the
    /// reserve.
    pub account: Option<String>,
}

/// How long a successful sign-in keeps its (account, network) pair entitled to the
/// reserve.
const KNOWN_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most (account, network) pairs remembered; past it the older half is forgotten.
const MAX_KNOWN: usize = 50_000;
/// Most networks remembered for one account; past it the account's least recently used
/// is forgotten, so one account signing in from many networks only replaces its own.
const MAX_KNOWN_PER_ACCOUNT: usize = 8;

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
    /// Most reserve places one source network may hold.
    reserve_per_network: usize,
    /// Most reserve places one prefix may hold.
    reserve_per_prefix: usize,
    inner: Mutex<Inner>,
}

/// Places held in one pool, by source.
#[derive(Debug, Default)]
struct Held {
    total: usize,
    networks: HashMap<String, usize>,
    prefixes: HashMap<String, usize>,
    accounts: HashMap<String, usize>,
}

#[derive(Debug, Default)]
struct Inner {
    open: Held,
    reserve: Held,
    /// Per account, the networks it signed in from lately and when (at most
    /// [`MAX_KNOWN_PER_ACCOUNT`]).
    known: HashMap<String, Vec<(String, UnixTime)>>,
    /// Pairs in `known`.
    known_pairs: usize,
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
    source: Source,
}

fn count(m: &HashMap<String, usize>, k: &Option<String>) -> usize {
    k.as_ref().and_then(|k| m.get(k)).copied().unwrap_or(0)
}

impl Held {
    fn take(&mut self, s: &Source) {
        self.total += 1;
        for (m, k) in [
            (&mut self.networks, &s.network),
            (&mut self.prefixes, &s.prefix),
            (&mut self.accounts, &s.account),
        ] {
            if let Some(k) = k {
                *m.entry(k.clone()).or_default() += 1;
            }
        }
    }

    fn give_back(&mut self, s: &Source) {
        self.total = self.total.saturating_sub(1);
        for (m, k) in [
            (&mut self.networks, &s.network),
            (&mut self.prefixes, &s.prefix),
            (&mut self.accounts, &s.account),
        ] {
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

impl Places {
    /// `total` open places (at least 1): a network may hold an eighth of them, a prefix a
    /// quarter (each at least 1), and a quarter more (at least 1) are kept for known
    /// pairs, of which an account may hold one, a network an eighth and a prefix a
    /// quarter (each at least 1).
    pub(crate) fn new(total: usize) -> Arc<Self> {
        let open = total.max(1);
        let reserve = (open / 4).max(1);
        Arc::new(Places {
            open,
            reserve,
            per_network: (open / 8).max(1),
            per_prefix: (open / 4).max(1),
            reserve_per_network: (reserve / 8).max(1),
            reserve_per_prefix: (reserve / 4).max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The counts stay consistent under a panic elsewhere: every update is one step.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True when `source`'s account signed in successfully from its network within
    /// [`KNOWN_FOR`] of `now`.
    pub(crate) fn is_known(&self, source: &Source, now: UnixTime) -> bool {
        known(&self.lock(), source, now)
    }

    /// A place for a check from `source`, or `None` when its network or prefix already
    /// holds its share, or every place it may take is held. A known pair takes a place
    /// from the reserve while its account, network and prefix hold less than their share
    /// of it, else an open place like any other source.
    pub(crate) fn admit(self: &Arc<Self>, source: &Source, now: UnixTime) -> Option<Admission> {
        let mut inner = self.lock();
        let r = &inner.reserve;
        let pool = if known(&inner, source, now)
            && r.total < self.reserve
            && count(&r.accounts, &source.account) < 1
            && count(&r.networks, &source.network) < self.reserve_per_network
            && count(&r.prefixes, &source.prefix) < self.reserve_per_prefix
        {
            inner.reserve.take(source);
            Pool::Reserve
        } else {
            let o = &inner.open;
            if o.total >= self.open
                || count(&o.networks, &source.network) >= self.per_network
                || count(&o.prefixes, &source.prefix) >= self.per_prefix
            {
                return None;
            }
            inner.open.take(source);
            Pool::Open
        };
        Some(Admission {
            places: Arc::clone(self),
            pool,
            source: source.clone(),
        })
    }

    /// Remembers that `account` signed in successfully from `network` at `now`. An
    /// account keeps its [`MAX_KNOWN_PER_ACCOUNT`] most recent networks; past
    /// [`MAX_KNOWN`] pairs in all, the expired and then the older half are forgotten.
    pub(crate) fn remember(&self, account: &str, network: &str, now: UnixTime) {
        let mut inner = self.lock();
        let Inner {
            known, known_pairs, ..
        } = &mut *inner;
        if let Some(nets) = known.get_mut(account) {
            if let Some(e) = nets.iter_mut().find(|(n, _)| n == network) {
                e.1 = now;
                return;
            }
            if nets.len() >= MAX_KNOWN_PER_ACCOUNT
                && let Some(i) = (0..nets.len()).min_by_key(|&i| nets[i].1)
            {
                nets[i] = (network.to_owned(), now);
                return;
            }
        }
        if *known_pairs >= MAX_KNOWN {
            let horizon = now.saturating_sub(KNOWN_FOR);
            forget(known, known_pairs, |t| t > horizon);
            if *known_pairs >= MAX_KNOWN {
                // Forget the older half.
                let mut times: Vec<i64> = known.values().flatten().map(|(_, t)| t.secs()).collect();
                let mid = times.len() / 2;
                let (_, cut, _) = times.select_nth_unstable(mid);
                let cut = *cut;
                forget(known, known_pairs, |t| t.secs() > cut);
            }
        }
        known
            .entry(account.to_owned())
            .or_default()
            .push((network.to_owned(), now));
        *known_pairs += 1;
    }
}

/// Whether `source`'s (account, network) pair is remembered and not expired at `now`.
fn known(inner: &Inner, source: &Source, now: UnixTime) -> bool {
    let (Some(account), Some(network)) = (&source.account, &source.network) else {
        return false;
    };
    inner.known.get(account).is_some_and(|nets| {
        nets.iter()
            .any(|(n, t)| n == network && t.saturating_add(KNOWN_FOR) > now)
    })
}

/// Keeps only the pairs whose time passes `keep`, and recounts them.
fn forget(
    known: &mut HashMap<String, Vec<(String, UnixTime)>>,
    pairs: &mut usize,
    keep: impl Fn(UnixTime) -> bool,
) {
    known.retain(|_, nets| {
        nets.retain(|(_, t)| keep(*t));
        !nets.is_empty()
    });
    *pairs = known.values().map(Vec::len).sum();
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut inner = self.places.lock();
        match self.pool {
            Pool::Reserve => inner.reserve.give_back(&self.source),
            Pool::Open => inner.open.give_back(&self.source),
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
            account: None,
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

    fn flood(p: &Arc<Places>) -> Vec<Admission> {
        let flood: Vec<_> = (0..100)
            .filter_map(|i| {
                p.admit(
                    &from(&format!("10.{i}.0.1"), &format!("10.{i}.0.0/24")),
                    NOW,
                )
            })
            .collect();
        assert_eq!(flood.len(), p.open);
        flood
    }

    fn signed_in(account: &str, net: &str, prefix: &str) -> Source {
        Source {
            account: Some(account.into()),
            ..from(net, prefix)
        }
    }

    /// With every open place held by a flood, a pair that signed in lately from its
    /// network still gets a place from the reserve; an unknown pair, or one signed in
    /// too long ago, does not. An account holds one reserve place at a time.
    #[test]
    fn a_known_pair_gets_in_when_the_flood_holds_every_open_place() {
        let p = Places::new(8);
        let _flood = flood(&p);
        let alice = signed_in("alice", "192.0.2.7", "192.0.2.0/24");
        assert!(p.admit(&alice, NOW).is_none(), "not known yet");
        p.remember("alice", "192.0.2.7", NOW);
        let held = p.admit(&alice, NOW).expect("the reserve");
        assert!(
            p.admit(&alice, NOW).is_none(),
            "one reserve place per account"
        );
        drop(held);
        let later = NOW.saturating_add(KNOWN_FOR);
        assert!(
            p.admit(&alice, later).is_none(),
            "forgotten after KNOWN_FOR"
        );
    }

    /// Mallory, with an account of her own, signs in from one network and then from
    /// several, and her correct logins run concurrently during a flood: she holds one
    /// reserve place, and alice, returning from her network, still gets one.
    #[test]
    fn one_account_cannot_take_the_reserve() {
        let p = Places::new(16);
        let _flood = flood(&p);
        for i in 0..8 {
            p.remember("mallory", &format!("198.51.{i}.9"), NOW);
        }
        p.remember("alice", "192.0.2.7", NOW);
        let mallory: Vec<_> = (0..32)
            .filter_map(|i| {
                let i = i % 8;
                p.admit(
                    &signed_in(
                        "mallory",
                        &format!("198.51.{i}.9"),
                        &format!("198.51.{i}.0/24"),
                    ),
                    NOW,
                )
            })
            .collect();
        assert_eq!(mallory.len(), 1, "one reserve place per account");
        assert!(
            p.admit(&signed_in("alice", "192.0.2.7", "192.0.2.0/24"), NOW)
                .is_some(),
            "alice gets in"
        );
    }

    /// Many accounts known on one network, or on one prefix, hold only that network's or
    /// prefix's share of the reserve.
    #[test]
    fn networks_and_prefixes_get_only_their_share_of_the_reserve() {
        let p = Places::new(64);
        let _flood = flood(&p);
        assert_eq!(
            (p.reserve, p.reserve_per_network, p.reserve_per_prefix),
            (16, 2, 4)
        );
        for i in 0..20 {
            p.remember(&format!("m{i}"), "198.51.100.9", NOW);
            p.remember(&format!("n{i}"), &format!("203.0.113.{i}"), NOW);
        }
        let one_net: Vec<_> = (0..20)
            .filter_map(|i| {
                p.admit(
                    &signed_in(&format!("m{i}"), "198.51.100.9", "198.51.100.0/24"),
                    NOW,
                )
            })
            .collect();
        assert_eq!(one_net.len(), 2, "a network's share of the reserve");
        let one_prefix: Vec<_> = (0..20)
            .filter_map(|i| {
                p.admit(
                    &signed_in(
                        &format!("n{i}"),
                        &format!("203.0.113.{i}"),
                        "203.0.113.0/24",
                    ),
                    NOW,
                )
            })
            .collect();
        assert_eq!(one_prefix.len(), 4, "a prefix's share of the reserve");
        p.remember("alice", "192.0.2.7", NOW);
        assert!(
            p.admit(&signed_in("alice", "192.0.2.7", "192.0.2.0/24"), NOW)
                .is_some()
        );
    }

    /// One account signing in from more networks than any memory holds replaces only its
    /// own pairs: every other account's pair is still known.
    #[test]
    fn one_account_cannot_wipe_the_known_pairs() {
        let p = Places::new(4);
        p.remember("alice", "192.0.2.7", NOW);
        for i in 0..(MAX_KNOWN + 10) {
            p.remember(
                "mallory",
                &format!("2001:db8:{i:x}::/64"),
                NOW.saturating_add(Duration::from_secs(1 + i as u64)),
            );
        }
        let later = NOW.saturating_add(Duration::from_secs(MAX_KNOWN as u64 + 20));
        assert!(p.is_known(&signed_in("alice", "192.0.2.7", "192.0.2.0/24"), later));
        assert!(p.lock().known_pairs <= 1 + MAX_KNOWN_PER_ACCOUNT);
    }

    /// The memory of known pairs is bounded.
    #[test]
    fn known_pairs_are_bounded() {
        let p = Places::new(4);
        for i in 0..(MAX_KNOWN + 10) {
            p.remember(
                &format!("acct{i}"),
                "192.0.2.7",
                NOW.saturating_add(Duration::from_secs(i as u64)),
            );
        }
        let n = p.lock().known_pairs;
        assert!(n <= MAX_KNOWN && n > MAX_KNOWN / 4, "{n}");
        assert_eq!(n, p.lock().known.values().map(Vec::len).sum::<usize>());
    }
}
