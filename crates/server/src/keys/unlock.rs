//! Unlocking the store: finds the master key and checks it against the key-check value in
//! the database before anything is written, so a wrong key is refused at once instead of
//! sealing keys nobody can open later (issue 14, item 10).

use std::path::Path;

use tessera_token::UnixTime;

use crate::Error;
use crate::secrets::{KeySource, Located, MasterKey, Sealer};
use crate::store::{KeyState, SigningKeyRecord, Store};

/// The master key of the deployment whose store is `store`: from `TESSERA_MASTER_KEY` or
/// `DATA_DIR/master.key`, checked against the store's key-check value (stored here the
/// first time, once the key opens the store's signing keys). A `master.key` file is
/// created only when the store has neither a check value nor keys: a deployment's key is
/// never replaced by a new one. Refusals are [`Error::MasterKey`] naming where the key
/// came from.
pub async fn unlock(
    store: &dyn Store,
    data_dir: &Path,
    now: UnixTime,
) -> Result<(MasterKey, KeySource), Error> {
    let stored = store.master_key_check().await?;
    let (key, source) = match MasterKey::locate(data_dir)? {
        Located::Found(key, source) => (key, source),
        Located::Missing(path) => {
            if stored.is_some() || !store.keys().await?.is_empty() {
                return Err(Error::MasterKey(format!(
                    "this deployment's database already has a master key, but {} is not set \
                     and {} does not exist; set {} to the deployment's master key (or restore \
                     the file from backup); a new master key is not created for an existing \
                     database",
                    crate::secrets::MASTER_KEY_ENV,
                    path.display(),
                    crate::secrets::MASTER_KEY_ENV,
                )));
            }
            MasterKey::create_file(&path)?
        }
    };
    let wrong = |why: &str| {
        Error::MasterKey(format!(
            "the master key from {source} is not this deployment's master key ({why}); \
             nothing was changed; use the key the server was first started with"
        ))
    };
    if let Some(stored) = stored {
        return if key.matches_check(&stored) {
            Ok((key, source))
        } else {
            Err(wrong(
                "it does not match the key check stored in the database",
            ))
        };
    }
    // No check value yet: a new store, or one from before the check existed. The key must
    // open the keys that sign (or, with none active, every key) before it is recorded.
    let records = store.keys().await?;
    if let Some(kid) = unopenable(&key.sealer()?, &records) {
        return Err(wrong(&format!("it cannot open signing key {kid}")));
    }
    let stored = store
        .init_master_key_check(&key.check_value()[..], now)
        .await?;
    if key.matches_check(&stored) {
        Ok((key, source))
    } else {
        Err(wrong(
            "another process recorded a different master key for this database first",
        ))
    }
}

/// The first key among those that must open (the active ones, or all when none is
/// active) that `key` cannot open.
fn unopenable<'a>(sealer: &Sealer, records: &'a [SigningKeyRecord]) -> Option<&'a str> {
    let any_active = records.iter().any(|r| r.state == KeyState::Active);
    records
        .iter()
        .filter(|r| !any_active || r.state == KeyState::Active)
        .find(|r| sealer.open(&r.kid, &r.sealed_private).is_err())
        .map(|r| r.kid.as_str())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use tessera_token::Algorithm;

    use super::*;
    use crate::secrets::MASTER_KEY_FILE;
    use crate::store::KeyStore;
    use crate::store::sqlite::SqliteStore;

    const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

    /// A data directory whose `master.key` holds the key of byte `b`.
    fn dir_with_key(b: u8) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([b; 32]);
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        dir
    }

    fn skip_if_env_key() -> bool {
        std::env::var_os(crate::secrets::MASTER_KEY_ENV).is_some()
    }

    #[tokio::test]
    async fn the_first_key_is_recorded_and_another_is_refused_before_any_write() {
        if skip_if_env_key() {
            return;
        }
        let store = SqliteStore::in_memory().await.unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let (key, source) = unlock(&store, fresh.path(), NOW).await.unwrap();
        assert!(matches!(source, KeySource::Created(_)));
        let stored = store.master_key_check().await.unwrap().unwrap();
        assert!(key.matches_check(&stored));
        // The same key again: accepted, from the file now.
        let (_, source) = unlock(&store, fresh.path(), NOW).await.unwrap();
        assert_eq!(source, KeySource::File(fresh.path().join(MASTER_KEY_FILE)));
        // Another key: refused, naming its file; the stored check is unchanged.
        let other = dir_with_key(9);
        let e = unlock(&store, other.path(), NOW).await.unwrap_err();
        assert!(matches!(e, Error::MasterKey(_)), "{e}");
        let e = e.to_string();
        assert!(
            e.contains(&other.path().join(MASTER_KEY_FILE).display().to_string()),
            "{e}"
        );
        assert!(e.contains("not this deployment's master key"), "{e}");
        assert_eq!(store.master_key_check().await.unwrap().unwrap(), stored);
    }

    #[tokio::test]
    async fn a_new_master_key_file_is_never_created_for_a_database_that_has_one() {
        if skip_if_env_key() {
            return;
        }
        let store = SqliteStore::in_memory().await.unwrap();
        let first = tempfile::tempdir().unwrap();
        unlock(&store, first.path(), NOW).await.unwrap();
        // An operator host without the key (PostgreSQL deployments: the directory there
        // holds only master.key).
        let host = tempfile::tempdir().unwrap();
        let e = unlock(&store, host.path(), NOW)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("TESSERA_MASTER_KEY is not set"), "{e}");
        assert!(!host.path().join(MASTER_KEY_FILE).exists());
    }

    #[tokio::test]
    async fn a_store_from_before_the_check_is_checked_against_its_keys() {
        if skip_if_env_key() {
            return;
        }
        let store = SqliteStore::in_memory().await.unwrap();
        let good = dir_with_key(1);
        let sealer = MasterKey::load(good.path()).unwrap().sealer().unwrap();
        let ttl = Duration::from_secs(600);
        crate::keys::load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, NOW)
            .await
            .unwrap();
        assert!(store.master_key_check().await.unwrap().is_none());
        // No key at all: refused, nothing created.
        let none = tempfile::tempdir().unwrap();
        assert!(unlock(&store, none.path(), NOW).await.is_err());
        assert!(!none.path().join(MASTER_KEY_FILE).exists());
        // A wrong key cannot open the active key: refused, no check recorded.
        let wrong = dir_with_key(2);
        let e = unlock(&store, wrong.path(), NOW)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot open signing key"), "{e}");
        assert!(store.master_key_check().await.unwrap().is_none());
        // The right key is recorded.
        let (key, _) = unlock(&store, good.path(), NOW).await.unwrap();
        assert!(key.matches_check(&store.master_key_check().await.unwrap().unwrap()));
    }
}
