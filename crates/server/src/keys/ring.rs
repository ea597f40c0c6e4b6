//! The ring of keys in force ([`KeyRing`]: the signer of each algorithm, the JWKS, the
//! verification keys) and its shared, swappable holder ([`Keys`]), which also remembers
//! when this node first published each key.

use std::sync::{Arc, RwLock};

use tessera_token::{Algorithm, Clock, Jwk, JwkSet, KeySet, SigningKey, UnixTime};

use super::ID_TOKEN_ALG;
use super::signers::Published;
use crate::Error;
use crate::secrets::Sealer;
use crate::store::{KeyState, SigningKeyRecord};

/// The keys in force: the signing key of each algorithm (module `signers`), and the
/// published set.
#[derive(Debug)]
pub struct KeyRing {
    signers: Vec<SigningKey>,
    default_alg: Algorithm,
    jwks: JwkSet,
    verify: KeySet,
    /// Each key as published: kid, state and public JWK (a kid removed and imported
    /// again with other material is another key).
    fingerprint: Vec<(String, KeyState, String)>,
    built_at: UnixTime,
}

impl KeyRing {
    /// The kids that sign now, one per algorithm.
    pub(super) fn signing_kids(&self) -> Vec<&str> {
        self.signers.iter().filter_map(SigningKey::kid).collect()
    }

    /// True when this ring publishes `kid` with exactly this public JWK.
    pub(super) fn publishes_as(&self, kid: &str, jwk: &str) -> bool {
        self.fingerprint
            .iter()
            .any(|(k, _, j)| k == kid && j == jwk)
    }

    /// True when `records` hold the same keys in the same states as those it was built of.
    pub(super) fn was_built_from(&self, records: &[SigningKeyRecord]) -> bool {
        fingerprint(records) == self.fingerprint
    }

    /// The key that signs for a client asking for `alg` (`None`: the server's default).
    pub fn signer(&self, alg: Option<Algorithm>) -> Option<&SigningKey> {
        let alg = alg.unwrap_or(self.default_alg);
        self.signers.iter().find(|k| k.algorithm() == alg)
    }

    /// The key that signs the ID tokens of a client that registered `alg` (`None`:
    /// [`ID_TOKEN_ALG`]).
    pub fn id_token_signer(&self, alg: Option<Algorithm>) -> Option<&SigningKey> {
        let alg = alg.unwrap_or(ID_TOKEN_ALG);
        self.signers.iter().find(|k| k.algorithm() == alg)
    }

    /// The algorithms that can sign ID tokens now, [`ID_TOKEN_ALG`] first.
    pub fn id_token_algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<Algorithm> = self.signers.iter().map(SigningKey::algorithm).collect();
        algs.sort_by_key(|a| *a != ID_TOKEN_ALG);
        algs.into_iter().map(Algorithm::name).collect()
    }

    /// The key that signs by default.
    pub fn active(&self) -> Option<&SigningKey> {
        self.signer(None)
    }

    /// Published keys (published, active and retired) as a JWK Set.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// Verification keys for tokens this server issued (introspection, `token verify`).
    pub fn verifier(&self) -> &KeySet {
        &self.verify
    }

    /// The algorithms of the published keys, without duplicates.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<&'static str> = Vec::new();
        for k in self.verify.keys() {
            let name = k.algorithm().name();
            if !algs.contains(&name) {
                algs.push(name);
            }
        }
        // The default algorithm first, whatever order the keys were made in.
        let default = self.default_alg.name();
        algs.sort_by_key(|a| *a != default);
        algs
    }
}

/// The shared, swappable key ring (swapped when the lifecycle moves; readers clone the
/// `Arc`), and when this node first published each of its keys.
#[derive(Debug)]
pub struct Keys(RwLock<Installed>);

#[derive(Debug)]
struct Installed {
    ring: Arc<KeyRing>,
    published: Published,
}

impl Keys {
    /// Wraps the ring a process starts with. Its keys count as published when it was
    /// built: this node served no JWKS before, so a relying party's cached JWKS came
    /// from another node or an earlier run, fetched before this start; counting from the
    /// start, a key that only waits to activate signs here only after every such cache
    /// has expired. (The key that signs at start is the newest active one, or the one
    /// just retired within its grace: `signers::previous_at_start`.)
    pub fn new(ring: KeyRing) -> Self {
        let published = ring
            .fingerprint
            .iter()
            .map(|(kid, _, _)| (kid.clone(), ring.built_at))
            .collect();
        Keys(RwLock::new(Installed {
            ring: Arc::new(ring),
            published,
        }))
    }

    /// The current ring.
    pub fn current(&self) -> Arc<KeyRing> {
        // A poisoned lock still holds a valid value: the ring is swapped whole, and a map
        // left behind it only lacks new keys, which then count as not yet published.
        match self.0.read() {
            Ok(g) => Arc::clone(&g.ring),
            Err(p) => Arc::clone(&p.into_inner().ring),
        }
    }

    /// When this node first published each of `records`' keys, for those the current ring
    /// publishes with the same public key ([`carried_over`]).
    pub(super) fn published_for(&self, records: &[SigningKeyRecord]) -> Published {
        let g = match self.0.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let keys = records
            .iter()
            .map(|r| (r.kid.as_str(), r.public_jwk.as_str()));
        carried_over(&g.published, &g.ring, keys)
    }

    /// Replaces the ring; a key new to this node counts as published from the clock read
    /// once the new ring is in place (under the lock, so no reader can see the ring
    /// before that time), a key the ring no longer holds is forgotten.
    pub(super) fn install(&self, ring: KeyRing, clock: &dyn Clock) {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let before = std::mem::replace(&mut g.ring, Arc::new(ring));
        let now = clock.now();
        let Installed { ring, published } = &mut *g;
        let keys = ring
            .fingerprint
            .iter()
            .map(|(k, _, j)| (k.as_str(), j.as_str()));
        *published = carried_over(published, &before, keys);
        for (kid, _, _) in &ring.fingerprint {
            published.entry(kid.clone()).or_insert(now);
        }
    }
}

/// The first-publication times in `published` (kept with `ring`) of `keys` (kid, public
/// JWK) that `ring` publishes with that same JWK. A kid removed and imported again with
/// other material is a new key, not yet published; a kid not in `keys` is forgotten.
fn carried_over<'a>(
    published: &Published,
    ring: &KeyRing,
    keys: impl Iterator<Item = (&'a str, &'a str)>,
) -> Published {
    keys.filter(|(kid, jwk)| ring.publishes_as(kid, jwk))
        .filter_map(|(kid, _)| published.get_key_value(kid).map(|(k, at)| (k.clone(), *at)))
        .collect()
}

fn fingerprint(records: &[SigningKeyRecord]) -> Vec<(String, KeyState, String)> {
    records
        .iter()
        .map(|r| (r.kid.clone(), r.state, r.public_jwk.clone()))
        .collect()
}

/// Builds the ring: `chosen` sign (one per algorithm); every key is published.
pub(super) fn build_ring(
    records: &[SigningKeyRecord],
    chosen: &[&SigningKeyRecord],
    sealer: &Sealer,
    default_alg: Algorithm,
    now: UnixTime,
) -> Result<KeyRing, Error> {
    let mut signers: Vec<SigningKey> = Vec::new();
    for r in chosen {
        let der = sealer.open(&r.kid, &r.sealed_private)?;
        signers.push(SigningKey::from_pkcs8_der(&der)?.with_kid(r.kid.clone()));
    }
    if signers.is_empty() {
        return Err(Error::Key(
            "no active signing key; start `tessera serve` once or run `tessera keys rotate`".into(),
        ));
    }
    let mut jwks = JwkSet::default();
    let mut verifying = Vec::new();
    for r in records {
        let jwk = Jwk::from_json(r.public_jwk.as_bytes())?;
        verifying.push(tessera_token::VerifyingKey::from_jwk(&jwk)?);
        jwks.keys.push(jwk);
    }
    Ok(KeyRing {
        signers,
        default_alg,
        jwks,
        verify: KeySet::new(verifying)?,
        fingerprint: fingerprint(records),
        built_at: now,
    })
}
