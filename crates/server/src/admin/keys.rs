//! Operator key management: list, rotate (publish a new key that signs after the JWKS
//! cache lifetime), import a PEM, remove a published key that never signed.

use serde_json::json;
use tessera_token::{Algorithm, SigningKey, UnixTime};

use super::Admin;
use crate::Error;
use crate::keys::{self, NewKey};
use crate::store::KeyState;

/// A key as `tessera keys list` shows it (never private material).
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// JOSE algorithm.
    pub alg: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Created.
    pub created_at: UnixTime,
    /// Signs from (published keys); `None` when it waits for an explicit activation.
    pub activate_after: Option<UnixTime>,
    /// Retired at.
    pub retired_at: Option<UnixTime>,
}

/// `activate_after` of imported keys that must not sign until activated.
const NEVER: UnixTime = UnixTime::from_secs(i64::MAX / 2);

impl Admin {
    /// All keys after applying the lifecycle steps that are due.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, Error> {
        let records = keys::advance(
            &*self.store,
            self.sealer(),
            self.clock.now(),
            keys::Timings::of(&self.config),
        )
        .await?;
        Ok(records
            .into_iter()
            .map(|r| KeyInfo {
                kid: r.kid,
                alg: r.alg,
                state: r.state,
                created_at: r.created_at,
                activate_after: (r.activate_after < NEVER).then_some(r.activate_after),
                retired_at: r.retired_at,
            })
            .collect())
    }

    /// Generates a key of `alg` and publishes it; it starts signing once every server
    /// has published it for a JWKS cache lifetime ([`keys::Timings::activation_lead`]),
    /// and the key it replaces retires then. Without `alg`, one key of
    /// each algorithm in use: the configured one, RS256 (ID tokens) and any other with an
    /// active key. `published` hears of each key as soon as it is stored, so a failure
    /// after the first still leaves the caller able to say what was published.
    pub async fn rotate_key(
        &self,
        alg: Option<Algorithm>,
        mut published: impl FnMut(&KeyInfo) + Send,
    ) -> Result<Vec<KeyInfo>, Error> {
        let algs = match alg {
            Some(a) if !a.is_asymmetric() => {
                return Err(Error::Invalid("--alg must be EdDSA, ES256 or RS256".into()));
            }
            Some(a) => vec![a],
            None => self.algorithms_in_use().await?,
        };
        let mut all = Vec::new();
        for alg in algs {
            let key = keys::generate(alg).await?;
            let k = self.publish(key, None, true).await?;
            published(&k);
            all.push(k);
        }
        Ok(all)
    }

    /// The algorithms in use ([`keys::algs_in_use`]): rotated by `tessera keys rotate`
    /// and by the server, age-checked by `tessera doctor`.
    pub async fn algorithms_in_use(&self) -> Result<Vec<Algorithm>, Error> {
        Ok(keys::algs_in_use(
            self.config.signing.signing_alg,
            &self.store.keys().await?,
        ))
    }

    /// Imports a PKCS#8 PEM private key (Ed25519, P-256, RSA of 2048 bits or more). With
    /// `activate` it signs after [`keys::Timings::activation_lead`]; otherwise it is only
    /// published.
    pub async fn import_key(
        &self,
        pem: &str,
        kid: Option<&str>,
        activate: bool,
    ) -> Result<KeyInfo, Error> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| {
            Error::Invalid(format!(
                "cannot import the key: {e}; use a PKCS#8 PEM Ed25519, P-256 or RSA (2048 bits or more) private key"
            ))
        })?;
        self.publish(key, kid, activate).await
    }

    async fn publish(
        &self,
        key: SigningKey,
        kid: Option<&str>,
        activate: bool,
    ) -> Result<KeyInfo, Error> {
        let now = self.clock.now();
        let activate_after = if activate {
            now.saturating_add(keys::Timings::of(&self.config).activation_lead())
        } else {
            NEVER
        };
        let new = NewKey {
            kid,
            state: KeyState::Published,
            activate_after,
        };
        let r = keys::store_key(&*self.store, self.sealer(), key, new, now).await?;
        self.audit(
            "key.publish",
            None,
            None,
            json!({ "kid": r.kid, "alg": r.alg, "activate": activate }),
        )
        .await;
        Ok(KeyInfo {
            kid: r.kid,
            alg: r.alg,
            state: r.state,
            created_at: r.created_at,
            activate_after: activate.then_some(activate_after),
            retired_at: None,
        })
    }

    /// Removes the key `kid` if it never signed (published, not yet active): e.g. one
    /// imported or rotated in by mistake. An active or retired key is refused: tokens it
    /// signed are still being verified.
    pub async fn remove_key(&self, kid: &str) -> Result<KeyInfo, Error> {
        let refused = |state: KeyState| {
            Error::Invalid(format!(
                "key {kid} is {} and has signed tokens that resource servers still verify; only a \
                 published key that never signed can be removed (a rotation retires an active key, \
                 and the lifecycle deletes retired keys once their tokens expired)",
                state.as_str()
            ))
        };
        let key = self
            .keys()
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| Error::NotFound(format!("no key {kid}; see `tessera keys list`")))?;
        if key.state != KeyState::Published {
            return Err(refused(key.state));
        }
        if !self.store.remove_published_key(kid).await? {
            // It activated between the read and the delete.
            return Err(refused(KeyState::Active));
        }
        self.audit(
            "key.remove",
            None,
            None,
            json!({ "kid": kid, "alg": key.alg }),
        )
        .await;
        Ok(key)
    }

    /// The number of keys in the store (for tests and status output).
    pub async fn key_count(&self) -> Result<usize, Error> {
        Ok(self.store.keys().await?.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::config::{FileConfig, Overrides, ServerConfig};
    use crate::store::faulty::FaultyStore;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn a_rotation_that_fails_halfway_reports_the_key_it_published() {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
        config.store.data_dir = dir.path().to_owned();
        let faulty = Arc::new(FaultyStore::new(Arc::new(
            SqliteStore::in_memory().await.unwrap(),
        )));
        let admin = Admin::for_tests(faulty.clone(), config);
        // Two algorithms in use (EdDSA, RS256); the database goes away after the first.
        let mut heard = Vec::new();
        let r = admin
            .rotate_key(None, |k| {
                heard.push(k.kid.clone());
                faulty.fail_key_inserts.store(true, Ordering::SeqCst);
            })
            .await;
        assert!(r.is_err(), "the second key could not be stored");
        assert_eq!(heard.len(), 1, "the first key was reported as published");
        faulty.fail_key_inserts.store(false, Ordering::SeqCst);
        let stored: Vec<String> = admin
            .keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(stored, heard, "and it is the one in the store");
    }
}
