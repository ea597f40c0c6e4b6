//! Signing keys in memory: parsed once from the store at start-up (private halves opened
//! with the [`Sealer`]), then shared behind an `Arc` for every request.

mod lifecycle;
mod unlock;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_token::{Algorithm, Jwk, JwkSet, KeySet, SigningKey, UnixTime};

pub use lifecycle::{KeyChange, plan};
pub use unlock::unlock;

use crate::Error;
use crate::secrets::Sealer;
use crate::store::{KeyState, SigningKeyRecord, Store};

/// The keys in force: the active key of each algorithm, and the published set.
#[derive(Debug)]
pub struct KeyRing {
    signers: Vec<SigningKey>,
    default_alg: Algorithm,
    jwks: JwkSet,
    verify: KeySet,
    fingerprint: Vec<(String, KeyState)>,
}

impl KeyRing {
    /// The key that signs for a client asking for `alg` (`None`: the server's default).
    pub fn signer(&self, alg: Option<Algorithm>) -> Option<&SigningKey> {
        let alg = alg.unwrap_or(self.default_alg);
        self.signers.iter().find(|k| k.algorithm() == alg)
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
        algs
    }
}

/// The shared, swappable key ring (swapped when the lifecycle moves; readers clone the `Arc`).
#[derive(Debug)]
pub struct Keys(RwLock<Arc<KeyRing>>);

impl Keys {
    /// Wraps a ring.
    pub fn new(ring: KeyRing) -> Self {
        Keys(RwLock::new(Arc::new(ring)))
    }

    /// The current ring.
    pub fn current(&self) -> Arc<KeyRing> {
        // A poisoned lock still holds a valid Arc: a panicking writer never leaves it torn.
        match self.0.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Replaces the ring.
    pub fn replace(&self, ring: KeyRing) {
        match self.0.write() {
            Ok(mut g) => *g = Arc::new(ring),
            Err(p) => *p.into_inner() = Arc::new(ring),
        }
    }
}

/// Where a new key starts.
#[derive(Debug, Clone, Copy)]
pub struct NewKey<'a> {
    /// Its `kid`; default: the RFC 7638 thumbprint of its public JWK.
    pub kid: Option<&'a str>,
    /// Initial state.
    pub state: KeyState,
    /// When a published key may start signing.
    pub activate_after: UnixTime,
}

/// Seals and stores a key (generated or imported); returns the stored record.
pub async fn store_key(
    store: &dyn Store,
    sealer: &Sealer,
    key: SigningKey,
    new: NewKey<'_>,
    now: UnixTime,
) -> Result<SigningKeyRecord, Error> {
    let record = seal_key(sealer, key, new, now)?;
    if store.keys().await?.iter().any(|r| r.kid == record.kid) {
        return Err(Error::Conflict(format!(
            "a key with kid {} already exists",
            record.kid
        )));
    }
    store.insert_key(&record).await?;
    Ok(record)
}

/// The record of a new key: its kid chosen and checked, its private half sealed.
fn seal_key(
    sealer: &Sealer,
    key: SigningKey,
    new: NewKey<'_>,
    now: UnixTime,
) -> Result<SigningKeyRecord, Error> {
    if !key.algorithm().is_asymmetric() {
        return Err(Error::Invalid(
            "only asymmetric keys (EdDSA, ES256, RS256) can sign access tokens".into(),
        ));
    }
    let public = key
        .public_jwk()
        .ok_or_else(|| Error::Key("key has no public half".into()))?;
    let kid = match new.kid {
        Some(k) if !k.is_empty() && k.len() <= 128 && k.chars().all(|c| c.is_ascii_graphic()) => {
            k.to_owned()
        }
        Some(k) => {
            return Err(Error::Invalid(format!(
                "kid {k:?} must be 1-128 printable ASCII characters"
            )));
        }
        None => public.thumbprint()?,
    };
    let key = key.with_kid(kid.clone());
    let public = key
        .public_jwk()
        .ok_or_else(|| Error::Key("key has no public half".into()))?;
    let der = key.to_pkcs8_der()?;
    let record = SigningKeyRecord {
        kid: kid.clone(),
        alg: key.algorithm().name().to_owned(),
        state: new.state,
        public_jwk: public.to_json(),
        sealed_private: sealer.seal(&kid, &der)?,
        created_at: now,
        activate_after: new.activate_after,
        retired_at: None,
    };
    Ok(record)
}

/// The longest a token signed now stays acceptable: its lifetime plus verifier leeway.
pub fn max_token_life(access_ttl: Duration) -> Duration {
    access_ttl + tessera_token::DEFAULT_LEEWAY
}

/// Applies due lifecycle changes, makes sure an active key of `alg` exists (generating one
/// on first start), and loads the ring. Of several processes starting at once on an empty
/// store, one creates the key; the others load it.
pub async fn load_or_create(
    store: &dyn Store,
    sealer: &Sealer,
    alg: Algorithm,
    access_ttl: Duration,
    now: UnixTime,
) -> Result<KeyRing, Error> {
    let mut records = advance(store, sealer, now, access_ttl).await?;
    if !records
        .iter()
        .any(|r| r.state == KeyState::Active && r.alg == alg.name())
    {
        let key = SigningKey::generate(alg)?;
        let new = NewKey {
            kid: None,
            state: KeyState::Active,
            activate_after: now,
        };
        let record = seal_key(sealer, key, new, now)?;
        if !store.insert_first_key(&record).await? {
            tracing::info!("another process created the first signing key");
        }
        records = store.keys().await?;
    }
    build_ring(&records, sealer, alg)
}

/// Applies the lifecycle changes due at `now`; returns the keys afterwards. A published
/// key that `sealer` cannot open (sealed under another master key) is never activated:
/// it would retire the key that signs and leave none; it stays published, with a warning,
/// until `tessera keys remove` removes it.
pub async fn advance(
    store: &dyn Store,
    sealer: &Sealer,
    now: UnixTime,
    access_ttl: Duration,
) -> Result<Vec<SigningKeyRecord>, Error> {
    let records = store.keys().await?;
    let (signable, sealed_elsewhere): (Vec<SigningKeyRecord>, Vec<SigningKeyRecord>) =
        records.iter().cloned().partition(|r| {
            r.state != KeyState::Published
                || r.activate_after > now
                || sealer.open(&r.kid, &r.sealed_private).is_ok()
        });
    for r in &sealed_elsewhere {
        tracing::warn!(
            kid = %r.kid,
            "published signing key cannot be opened with this master key, so it will not sign; remove it with `tessera keys remove {}`",
            r.kid
        );
    }
    let changes = lifecycle::plan(&signable, now, max_token_life(access_ttl));
    if changes.is_empty() {
        return Ok(records);
    }
    for c in &changes {
        tracing::info!(change = ?c, "signing key lifecycle");
    }
    store.apply_key_changes(&changes, now).await?;
    Ok(store.keys().await?)
}

/// Publishes a new key of `alg` when the newest key of `alg` (active or published) was
/// created at least `period` ago; it starts signing `lead` (the JWKS cache lifetime)
/// later. Returns the new key's `kid`. Replicas racing here may publish two keys; the
/// lifecycle activates the newest and retires the other, so that is harmless.
pub async fn rotate_if_due(
    store: &dyn Store,
    sealer: &Sealer,
    alg: Algorithm,
    period: Duration,
    lead: Duration,
    now: UnixTime,
) -> Result<Option<String>, Error> {
    let records = store.keys().await?;
    let newest = records
        .iter()
        .filter(|r| {
            r.alg == alg.name() && matches!(r.state, KeyState::Active | KeyState::Published)
        })
        .map(|r| r.created_at)
        .max();
    let due = newest.is_none_or(|created| created.saturating_add(period) <= now);
    if !due {
        return Ok(None);
    }
    let new = NewKey {
        kid: None,
        state: KeyState::Published,
        activate_after: now.saturating_add(lead),
    };
    let record = store_key(store, sealer, SigningKey::generate(alg)?, new, now).await?;
    Ok(Some(record.kid))
}

/// Reloads the ring when the stored keys changed (another process rotated, or the
/// lifecycle moved); returns true when it swapped.
pub async fn refresh(
    store: &dyn Store,
    sealer: &Sealer,
    keys: &Keys,
    alg: Algorithm,
    access_ttl: Duration,
    now: UnixTime,
) -> Result<bool, Error> {
    let records = advance(store, sealer, now, access_ttl).await?;
    if fingerprint(&records) == keys.current().fingerprint {
        return Ok(false);
    }
    keys.replace(build_ring(&records, sealer, alg)?);
    Ok(true)
}

fn fingerprint(records: &[SigningKeyRecord]) -> Vec<(String, KeyState)> {
    records.iter().map(|r| (r.kid.clone(), r.state)).collect()
}

/// Builds the ring: the newest active key of each algorithm signs; every key is published.
pub fn build_ring(
    records: &[SigningKeyRecord],
    sealer: &Sealer,
    default_alg: Algorithm,
) -> Result<KeyRing, Error> {
    let mut actives: Vec<&SigningKeyRecord> = records
        .iter()
        .filter(|r| r.state == KeyState::Active)
        .collect();
    actives.sort_by_key(|r| std::cmp::Reverse((r.activate_after, r.created_at)));
    let mut signers: Vec<SigningKey> = Vec::new();
    for r in actives {
        let der = sealer.open(&r.kid, &r.sealed_private)?;
        let key = SigningKey::from_pkcs8_der(&der)?.with_kid(r.kid.clone());
        if !signers.iter().any(|k| k.algorithm() == key.algorithm()) {
            signers.push(key);
        }
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyStore;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn keys_rotate_when_the_newest_reaches_the_rotation_period() {
        let store = SqliteStore::in_memory().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sealer = crate::secrets::MasterKey::load(dir.path())
            .unwrap()
            .sealer()
            .unwrap();
        let t0 = UnixTime::from_secs(1_800_000_000);
        let ttl = Duration::from_secs(600);
        let period = Duration::from_secs(86_400);
        let lead = Duration::from_secs(300);
        let first = load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, t0)
            .await
            .unwrap();
        let first = first.active().unwrap().kid().unwrap().to_owned();
        let early = t0.saturating_add(period - Duration::from_secs(1));
        let none = rotate_if_due(&store, &sealer, Algorithm::EdDsa, period, lead, early);
        assert_eq!(none.await.unwrap(), None);
        let due = t0.saturating_add(period);
        let new = rotate_if_due(&store, &sealer, Algorithm::EdDsa, period, lead, due)
            .await
            .unwrap()
            .unwrap();
        // The pending key counts as the newest: no second key while it waits.
        let again = rotate_if_due(&store, &sealer, Algorithm::EdDsa, period, lead, due);
        assert_eq!(again.await.unwrap(), None);
        // It signs after the lead time; the first key retires.
        let records = advance(&store, &sealer, due.saturating_add(lead), ttl)
            .await
            .unwrap();
        let state = |kid: &str| records.iter().find(|r| r.kid == kid).unwrap().state;
        assert_eq!(state(&new), KeyState::Active);
        assert_eq!(state(&first), KeyState::Retired);
    }

    /// Issue 14, item 10: a key published under another master key (a wrong
    /// `TESSERA_MASTER_KEY` before the key check existed) used to activate and retire the
    /// good key, leaving a server that could not sign or restart.
    #[tokio::test]
    async fn a_key_the_master_key_cannot_open_never_activates() {
        let store = SqliteStore::in_memory().await.unwrap();
        let master = |b: u8| {
            use base64::Engine;
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([b; 32]);
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("master.key"), text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let p = std::fs::Permissions::from_mode(0o600);
                std::fs::set_permissions(dir.path().join("master.key"), p).unwrap();
            }
            crate::secrets::MasterKey::load(dir.path())
                .unwrap()
                .sealer()
                .unwrap()
        };
        let (good, other) = (master(1), master(2));
        let t0 = UnixTime::from_secs(1_800_000_000);
        let ttl = Duration::from_secs(600);
        let ring = load_or_create(&store, &good, Algorithm::EdDsa, ttl, t0)
            .await
            .unwrap();
        let first = ring.active().unwrap().kid().unwrap().to_owned();
        let new = NewKey {
            kid: Some("elsewhere"),
            state: KeyState::Published,
            activate_after: t0.saturating_add(Duration::from_secs(60)),
        };
        let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
        store_key(&store, &other, key, new, t0).await.unwrap();
        let later = t0.saturating_add(Duration::from_secs(120));
        let records = advance(&store, &good, later, ttl).await.unwrap();
        let state = |kid: &str| records.iter().find(|r| r.kid == kid).unwrap().state;
        assert_eq!(state("elsewhere"), KeyState::Published);
        assert_eq!(state(&first), KeyState::Active);
        // The server keeps signing with the good key after a reload.
        let keys = Keys::new(ring);
        refresh(&store, &good, &keys, Algorithm::EdDsa, ttl, later)
            .await
            .unwrap();
        assert_eq!(keys.current().active().unwrap().kid(), Some(first.as_str()));
    }

    #[tokio::test]
    async fn first_start_creates_one_sealed_ed25519_key() {
        let store = SqliteStore::in_memory().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sealer = crate::secrets::MasterKey::load(dir.path())
            .unwrap()
            .sealer()
            .unwrap();
        let now = UnixTime::from_secs(1_800_000_000);
        let ttl = Duration::from_secs(600);
        let ring = load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, now)
            .await
            .unwrap();
        assert_eq!(ring.active().unwrap().algorithm(), Algorithm::EdDsa);
        assert_eq!(ring.jwks().keys.len(), 1);
        assert!(!ring.jwks().to_json().contains("\"d\""));
        let again = load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, now)
            .await
            .unwrap();
        assert_eq!(again.active().unwrap().kid(), ring.active().unwrap().kid());
        let recs = store.keys().await.unwrap();
        let der = ring.active().unwrap().to_pkcs8_der().unwrap();
        assert!(
            !recs[0]
                .sealed_private
                .windows(16)
                .any(|w| der.windows(16).any(|d| d == w))
        );
    }
}
