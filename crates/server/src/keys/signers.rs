//! Which key signs on this node: the newest active key of each algorithm once THIS node
//! has published it for a JWKS cache lifetime; until then the key it signed with before.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_token::UnixTime;

use crate::config::ServerConfig;
use crate::store::{KeyState, SigningKeyRecord};

/// The timings of the key lifecycle, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// The JWKS cache lifetime: how long a key is published before it signs.
    pub lead: Duration,
    /// How often each node reloads its keys from the store.
    pub refresh: Duration,
    /// The longest a token signed now stays acceptable (lifetime plus verifier leeway).
    pub max_token_life: Duration,
}

impl Timings {
    /// The timings `config` sets: `jwks_cache_ttl_secs`, `key_refresh_interval_secs` and
    /// the access-token lifetime.
    pub fn of(config: &ServerConfig) -> Self {
        Timings {
            lead: config.signing.jwks_cache_ttl,
            refresh: config.signing.key_refresh_interval,
            max_token_life: crate::config::max_token_life(config.tokens.access_token_ttl),
        }
    }

    /// How long after its creation a new key activates (`lead` + `refresh` + 1 s): every
    /// node loads it within `refresh` of its creation, so by then every node has published
    /// it for more than a JWKS cache lifetime, and a relying party's cached JWKS, from any
    /// node, holds it. (With `lead` alone, a JWKS fetched from a node that had not loaded
    /// the key yet could lack it when another node started signing.)
    pub fn activation_lead(&self) -> Duration {
        self.lead + self.refresh + Duration::from_secs(1)
    }

    /// How long after the store retires a key a node may still sign with it: `lead` +
    /// `refresh` + 1 s. A node learns of the new key within `refresh` of its creation,
    /// at least `lead` before the old key retires; it publishes the new key for more than
    /// `lead` (whole seconds: one more) before signing with it, so it signs with the old
    /// key at most `refresh` + 1 s past the retirement. The extra `lead` is slack for a
    /// node whose reload ran late (load, a short database outage). A node later still
    /// switches when the grace ends, so no token outlives its key's publication
    /// ([`Timings::keep_retired`]).
    pub fn signing_grace(&self) -> Duration {
        self.lead + self.refresh + Duration::from_secs(1)
    }

    /// How long a retired key stays in the store (and so in every node's JWKS): the
    /// grace in which a node may still sign with it, plus the life of its last token.
    pub fn keep_retired(&self) -> Duration {
        self.signing_grace() + self.max_token_life
    }
}

/// When this node first published each key it publishes: the clock read just after the
/// first ring holding the key was installed (so every JWKS this node served from then on
/// holds the key).
pub type Published = BTreeMap<String, UnixTime>;

/// True when this node has published `kid` for more than `lead`: counted in whole
/// seconds, so "more than" (a key first published at 10.9 s, read as 10, may sign from
/// 10 + lead + 1, never at 10.9 + lead - 0.9).
fn published_long_enough(published: &Published, kid: &str, lead: Duration, now: UnixTime) -> bool {
    published
        .get(kid)
        .is_some_and(|at| at.saturating_add(lead) < now)
}

/// The key that signed on this node before may go on signing: it is still published
/// (in `records`), never a key that only waits to activate, and if the store retired it,
/// only within [`Timings::signing_grace`] of that.
fn may_keep_signing(r: &SigningKeyRecord, timings: &Timings, now: UnixTime) -> bool {
    match r.state {
        KeyState::Active => true,
        KeyState::Retired => r
            .retired_at
            .is_some_and(|at| now < at.saturating_add(timings.signing_grace())),
        KeyState::Published => false,
    }
}

/// At a node's start, the key each algorithm signed with before its newest active key
/// (the most recently retired one), if the store retired it less than
/// [`Timings::signing_grace`] ago: a node restarting just after an activation keeps it,
/// as a running node would, until it has itself published the new key for a lead,
/// rather than signing at once with a key that JWKS caches filled before the activation
/// may lack.
pub(super) fn previous_at_start<'a>(
    records: &'a [SigningKeyRecord],
    timings: &Timings,
    now: UnixTime,
) -> Vec<&'a str> {
    let mut latest: BTreeMap<&str, &SigningKeyRecord> = BTreeMap::new();
    let recently_retired = records
        .iter()
        .filter(|r| r.state == KeyState::Retired && may_keep_signing(r, timings, now));
    for r in recently_retired {
        if latest
            .get(r.alg.as_str())
            .is_none_or(|l| l.retired_at < r.retired_at)
        {
            latest.insert(&r.alg, r);
        }
    }
    latest.values().map(|r| r.kid.as_str()).collect()
}

/// The signing key of each algorithm with an active key, newest algorithm key first as
/// the store orders them: the newest active key once this node has published it for
/// more than `timings.lead`; until then the key in `previous` (the kids that signed on
/// this node so far, or at its start [`previous_at_start`]) of that algorithm if it may
/// keep signing; else the newest active key (the first key of an algorithm, a start long
/// after the last activation: nothing else could sign).
pub(super) fn choose<'a>(
    records: &'a [SigningKeyRecord],
    published: &Published,
    previous: &[&str],
    timings: &Timings,
    now: UnixTime,
) -> Vec<&'a SigningKeyRecord> {
    let mut actives: Vec<&SigningKeyRecord> = records
        .iter()
        .filter(|r| r.state == KeyState::Active)
        .collect();
    actives.sort_by_key(|r| std::cmp::Reverse((r.activate_after, r.created_at)));
    let mut chosen: Vec<&SigningKeyRecord> = Vec::new();
    for newest in actives {
        if chosen.iter().any(|c| c.alg == newest.alg) {
            continue;
        }
        let ready = published_long_enough(published, &newest.kid, timings.lead, now);
        let before = records.iter().find(|r| {
            r.alg == newest.alg
                && r.kid != newest.kid
                && previous.contains(&r.kid.as_str())
                && may_keep_signing(r, timings, now)
        });
        chosen.push(match before {
            Some(old) if !ready => old,
            _ => newest,
        });
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAD: Duration = Duration::from_secs(300);

    fn timings() -> Timings {
        Timings {
            lead: LEAD,
            refresh: Duration::from_secs(10),
            max_token_life: Duration::from_secs(660),
        }
    }

    fn key(kid: &str, alg: &str, state: KeyState, created: i64) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            alg: alg.into(),
            state,
            public_jwk: String::new(),
            sealed_private: Vec::new(),
            created_at: UnixTime::from_secs(created),
            activate_after: UnixTime::from_secs(created + 300),
            retired_at: (state == KeyState::Retired).then(|| UnixTime::from_secs(created + 600)),
        }
    }

    fn kids(chosen: &[&SigningKeyRecord]) -> Vec<String> {
        chosen.iter().map(|r| r.kid.clone()).collect()
    }

    fn at(secs: i64) -> UnixTime {
        UnixTime::from_secs(secs)
    }

    #[test]
    fn a_key_signs_only_after_more_than_the_lead_since_this_node_published_it() {
        // old created at 0 (activated 300, retired 600); new created 300, active from 600.
        let records = [
            key("old", "EdDSA", KeyState::Retired, 0),
            key("new", "EdDSA", KeyState::Active, 300),
        ];
        // This node published new only at 605 (it learnt late: new was already active).
        let published = Published::from([("old".into(), at(0)), ("new".into(), at(605))]);
        let t = timings();
        for now in [605, 700, 905] {
            let chosen = choose(&records, &published, &["old"], &t, at(now));
            assert_eq!(kids(&chosen), ["old"], "at {now}");
        }
        let chosen = choose(&records, &published, &["old"], &t, at(906));
        assert_eq!(kids(&chosen), ["new"]);
    }

    #[test]
    fn without_a_previous_signer_the_active_key_signs_at_once() {
        let records = [key("only", "EdDSA", KeyState::Active, 0)];
        let published = Published::from([("only".into(), at(5))]);
        let chosen = choose(&records, &published, &[], &timings(), at(5));
        assert_eq!(kids(&chosen), ["only"]);
    }

    #[test]
    fn a_retired_key_signs_no_longer_than_the_grace_the_store_keeps_it_for() {
        let records = [
            key("old", "EdDSA", KeyState::Retired, 0),
            key("new", "EdDSA", KeyState::Active, 300),
        ];
        // Retired at 600; the node learnt of new at 900, far too late to wait a lead.
        let published = Published::from([("old".into(), at(0)), ("new".into(), at(900))]);
        let t = timings();
        let end = 600 + t.signing_grace().as_secs() as i64;
        let chosen = choose(&records, &published, &["old"], &t, at(end - 1));
        assert_eq!(kids(&chosen), ["old"]);
        let chosen = choose(&records, &published, &["old"], &t, at(end));
        assert_eq!(
            kids(&chosen),
            ["new"],
            "the store deletes old on this schedule"
        );
        // A key that only waits to activate never signs, whatever signed before.
        let pending = [
            key("ed", "EdDSA", KeyState::Active, 0),
            key("next", "EdDSA", KeyState::Published, 300),
        ];
        let chosen = choose(&pending, &published, &["next"], &t, at(301));
        assert_eq!(kids(&chosen), ["ed"]);
    }

    #[test]
    fn each_algorithm_waits_for_its_own_key() {
        let records = [
            key("ed-old", "EdDSA", KeyState::Retired, 0),
            key("ed-new", "EdDSA", KeyState::Active, 300),
            key("rs-old", "RS256", KeyState::Retired, 0),
            key("rs-new", "RS256", KeyState::Active, 300),
        ];
        // This node published ed-new early, rs-new only at 620.
        let published = Published::from([
            ("ed-old".into(), at(0)),
            ("ed-new".into(), at(300)),
            ("rs-old".into(), at(0)),
            ("rs-new".into(), at(620)),
        ]);
        let t = timings();
        let chosen = choose(&records, &published, &["ed-old", "rs-old"], &t, at(620));
        let mut got = kids(&chosen);
        got.sort();
        assert_eq!(got, ["ed-new", "rs-old"]);
        let chosen = choose(&records, &published, &["ed-new", "rs-old"], &t, at(921));
        let mut got = kids(&chosen);
        got.sort();
        assert_eq!(got, ["ed-new", "rs-new"]);
    }
}
