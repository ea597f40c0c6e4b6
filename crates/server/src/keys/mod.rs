//! Signing keys in memory: parsed once from the store at start-up (private halves opened
//! with the [`Sealer`]), then shared behind an `Arc` for every request.

use std::sync::{Arc, RwLock};

use tessera_token::{Algorithm, Jwk, JwkSet, KeySet, SigningKey, UnixTime};

use crate::Error;
use crate::secrets::Sealer;
use crate::store::{KeyState, SigningKeyRecord, Store};

/// The keys in force: the one that signs, and the published set.
#[derive(Debug)]
pub struct KeyRing {
    active: SigningKey,
    jwks: JwkSet,
    verify: KeySet,
}

impl KeyRing {
    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        &self.active
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

/// The shared, swappable key ring (swapped on rotation; readers clone the `Arc`).
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

/// Generates a key of `alg`, seals it and stores it in `state`. Its `kid` is the RFC 7638
/// thumbprint of its public JWK.
pub async fn create_key(
    store: &dyn Store,
    sealer: &Sealer,
    alg: Algorithm,
    state: KeyState,
    now: UnixTime,
) -> Result<SigningKeyRecord, Error> {
    let key = SigningKey::generate(alg)?;
    store_key(store, sealer, key, state, now).await
}

/// Seals and stores an existing key (generated or imported).
pub async fn store_key(
    store: &dyn Store,
    sealer: &Sealer,
    key: SigningKey,
    state: KeyState,
    now: UnixTime,
) -> Result<SigningKeyRecord, Error> {
    if !key.algorithm().is_asymmetric() {
        return Err(Error::Key(
            "only asymmetric keys (EdDSA, ES256, RS256) can sign access tokens".into(),
        ));
    }
    let public = key
        .public_jwk()
        .ok_or_else(|| Error::Key("key has no public half".into()))?;
    let kid = public.thumbprint()?;
    let key = key.with_kid(kid.clone());
    let public = key
        .public_jwk()
        .ok_or_else(|| Error::Key("key has no public half".into()))?;
    let der = key.to_pkcs8_der()?;
    let record = SigningKeyRecord {
        kid: kid.clone(),
        alg: key.algorithm().name().to_owned(),
        state,
        public_jwk: public.to_json(),
        sealed_private: sealer.seal(&kid, &der)?,
        created_at: now,
        activate_after: now,
        retired_at: None,
    };
    store.insert_key(&record).await?;
    Ok(record)
}

/// Loads the key ring, generating an Ed25519 key on first start.
pub async fn load_or_create(
    store: &dyn Store,
    sealer: &Sealer,
    now: UnixTime,
) -> Result<KeyRing, Error> {
    let mut records = store.keys().await?;
    if !records.iter().any(|r| r.state == KeyState::Active) {
        create_key(store, sealer, Algorithm::EdDsa, KeyState::Active, now).await?;
        records = store.keys().await?;
    }
    build_ring(&records, sealer)
}

/// Builds the ring from stored records: the newest active key signs; every key is published.
pub fn build_ring(records: &[SigningKeyRecord], sealer: &Sealer) -> Result<KeyRing, Error> {
    let active_rec = records
        .iter()
        .filter(|r| r.state == KeyState::Active)
        .max_by_key(|r| (r.activate_after, r.created_at))
        .ok_or_else(|| Error::Key("no active signing key; run `tessera keys rotate`".into()))?;
    let der = sealer.open(&active_rec.kid, &active_rec.sealed_private)?;
    let active = SigningKey::from_pkcs8_der(&der)?.with_kid(active_rec.kid.clone());
    let mut jwks = JwkSet::default();
    let mut verifying = Vec::new();
    for r in records {
        let jwk = Jwk::from_json(r.public_jwk.as_bytes())?;
        verifying.push(tessera_token::VerifyingKey::from_jwk(&jwk)?);
        jwks.keys.push(jwk);
    }
    Ok(KeyRing {
        active,
        jwks,
        verify: KeySet::new(verifying)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyStore;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn first_start_creates_one_sealed_ed25519_key() {
        let store = SqliteStore::in_memory().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sealer = crate::secrets::MasterKey::load(dir.path())
            .unwrap()
            .sealer()
            .unwrap();
        let now = UnixTime::from_secs(1_800_000_000);
        let ring = load_or_create(&store, &sealer, now).await.unwrap();
        assert_eq!(ring.active().algorithm(), Algorithm::EdDsa);
        assert_eq!(ring.jwks().keys.len(), 1);
        assert!(!ring.jwks().to_json().contains("\"d\""));
        let again = load_or_create(&store, &sealer, now).await.unwrap();
        assert_eq!(again.active().kid(), ring.active().kid());
        let recs = store.keys().await.unwrap();
        let der = ring.active().to_pkcs8_der().unwrap();
        assert!(
            !recs[0]
                .sealed_private
                .windows(16)
                .any(|w| der.windows(16).any(|d| d == w))
        );
    }
}
