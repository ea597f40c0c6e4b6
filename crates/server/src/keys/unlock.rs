//! Unlocking the store: finds the master key and checks it against the key-check value in
//! the database before the command changes anything (issue 14, item 10). Only the commands
//! that create a deployment or seal keys ([`Claim::Record`]: `serve`, `init`, `keys
//! rotate`, `keys import`) record the check in a store that has none; every other command
//! only verifies, so a wrong key given to a read-only command cannot claim an empty store.

use std::path::Path;

use tessera_token::UnixTime;

use crate::Error;
use crate::secrets::{KeySource, Located, MASTER_KEY_ENV, MasterKey, Sealer};
use crate::store::{KeyState, SigningKeyRecord, Store};

/// Whether the command may record the key check (and create `master.key`) when the store
/// has neither a check value nor keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// `serve`, `init` and the commands that seal keys: record the key as this store's.
    Record,
    /// Every other command: check against what is recorded, record nothing.
    VerifyOnly,
}

/// How the key was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// It matches the check value recorded at this time.
    Matched(UnixTime),
    /// The store had no check value; this key's was recorded just now.
    Recorded,
    /// The store had no check value and the command records none ([`Claim::VerifyOnly`]);
    /// the key opens every signing key that must open.
    Unrecorded,
}

/// A master key accepted for a store.
#[derive(Debug)]
pub struct Unlocked {
    /// The key.
    pub key: MasterKey,
    /// Where it came from.
    pub source: KeySource,
    /// How it was accepted.
    pub check: Check,
}

/// The master key of the deployment whose store is `store`: from `TESSERA_MASTER_KEY` or
/// `DATA_DIR/master.key`, checked against the store's key-check value. With
/// [`Claim::Record`] and a store that has no check value, the check is recorded once the
/// key opens the store's signing keys, and a missing `master.key` is created (with its
/// directory, mode 0700) only when the store has neither a check value nor keys: a
/// deployment's key is never replaced by a new one. Refusals are [`Error::MasterKey`]
/// naming where the key came from.
pub async fn unlock(
    store: &dyn Store,
    data_dir: &Path,
    now: UnixTime,
    claim: Claim,
) -> Result<Unlocked, Error> {
    check(store, MasterKey::locate(data_dir)?, now, claim).await
}

async fn check(
    store: &dyn Store,
    located: Located,
    now: UnixTime,
    claim: Claim,
) -> Result<Unlocked, Error> {
    let stored = store.master_key_check().await?;
    let (key, source) = match located {
        Located::Found(key, source) => (key, source),
        Located::Missing(path) => {
            if stored.is_some() || !store.keys().await?.is_empty() {
                return Err(Error::MasterKey(format!(
                    "this deployment's database already has a master key, but {MASTER_KEY_ENV} \
                     is not set and {} does not exist; set {MASTER_KEY_ENV} to the \
                     deployment's master key (or restore the file from backup); a new master \
                     key is not created for an existing database",
                    path.display(),
                )));
            }
            if claim == Claim::VerifyOnly {
                return Err(Error::MasterKey(format!(
                    "no master key: {MASTER_KEY_ENV} is not set and {} does not exist; set \
                     {MASTER_KEY_ENV} to the deployment's master key, or create the deployment \
                     first with `tessera init` (or `tessera serve`)",
                    path.display(),
                )));
            }
            if let Some(dir) = path.parent()
                && crate::prepare_data_dir(dir)?
            {
                tracing::warn!(data_dir = %dir.display(), "created a new, empty data directory");
            }
            let created = MasterKey::create_file(&path)?;
            tracing::warn!(path = %path.display(), "created a new master key: back it up with the database");
            created
        }
    };
    let wrong = |why: &str| {
        Error::MasterKey(format!(
            "the master key from {source} is not this deployment's master key ({why}); \
             nothing was changed; use the key the server was first started with"
        ))
    };
    if let Some((stored, at)) = stored {
        return if key.matches_check(&stored) {
            Ok(Unlocked {
                key,
                source,
                check: Check::Matched(at),
            })
        } else {
            Err(wrong(&format!(
                "it does not match the key check recorded in the database at {}",
                recorded_at(at)
            )))
        };
    }
    // No check value yet: a new store, or one from before the check existed. The key must
    // open the keys that sign (or, with none active, every key) before it is recorded.
    let records = store.keys().await?;
    if let Some(kid) = unopenable(&key.sealer()?, &records) {
        return Err(wrong(&format!("it cannot open signing key {kid}")));
    }
    if claim == Claim::VerifyOnly {
        return Ok(Unlocked {
            key,
            source,
            check: Check::Unrecorded,
        });
    }
    let stored = store
        .init_master_key_check(&key.check_value()[..], now)
        .await?;
    if key.matches_check(&stored) {
        Ok(Unlocked {
            key,
            source,
            check: Check::Recorded,
        })
    } else {
        Err(wrong(
            "another process recorded a different master key for this database first",
        ))
    }
}

/// `at` for a refusal: when the check was recorded, in UTC and as Unix time.
fn recorded_at(at: UnixTime) -> String {
    let secs = u64::try_from(at.secs()).unwrap_or(0);
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    format!(
        "{} (Unix time {}) by the first `tessera serve`, `init`, `keys rotate` or `keys import` \
         run against it",
        httpdate::fmt_http_date(when),
        at.secs()
    )
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

    /// [`unlock`] on `dir` as if `TESSERA_MASTER_KEY` were unset, whatever the
    /// environment of the test run holds (the tests used to return early when it was set).
    async fn unlock_in(store: &dyn Store, dir: &Path, claim: Claim) -> Result<Unlocked, Error> {
        check(store, MasterKey::locate_from(None, dir)?, NOW, claim).await
    }

    fn stored(check: Option<(Vec<u8>, UnixTime)>) -> Vec<u8> {
        check.unwrap().0
    }

    #[tokio::test]
    async fn the_first_key_is_recorded_and_another_is_refused_before_any_write() {
        let store = SqliteStore::in_memory().await.unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let u = unlock_in(&store, fresh.path(), Claim::Record)
            .await
            .unwrap();
        assert!(matches!(u.source, KeySource::Created(_)));
        assert_eq!(u.check, Check::Recorded);
        let value = stored(store.master_key_check().await.unwrap());
        assert!(u.key.matches_check(&value));
        // The same key again: accepted, from the file now, as recorded at NOW.
        let u = unlock_in(&store, fresh.path(), Claim::Record)
            .await
            .unwrap();
        assert_eq!(
            u.source,
            KeySource::File(fresh.path().join(MASTER_KEY_FILE))
        );
        assert_eq!(u.check, Check::Matched(NOW));
        // Another key: refused, naming its file and when the check was recorded; the
        // stored check is unchanged.
        let other = dir_with_key(9);
        let e = unlock_in(&store, other.path(), Claim::VerifyOnly)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::MasterKey(_)), "{e}");
        let e = e.to_string();
        assert!(
            e.contains(&other.path().join(MASTER_KEY_FILE).display().to_string()),
            "{e}"
        );
        assert!(e.contains("not this deployment's master key"), "{e}");
        assert!(e.contains("Unix time 1800000000"), "{e}");
        assert!(e.contains("Fri, 15 Jan 2027 08:00:00 GMT"), "{e}");
        assert_eq!(stored(store.master_key_check().await.unwrap()), value);
    }

    /// Review of item 10: `TESSERA_MASTER_KEY=<wrong> tessera user list` on an empty
    /// database used to record the wrong key, so the real server then refused to start.
    #[tokio::test]
    async fn a_command_that_only_verifies_records_nothing_and_creates_nothing() {
        let store = SqliteStore::in_memory().await.unwrap();
        let wrong = dir_with_key(7);
        let u = unlock_in(&store, wrong.path(), Claim::VerifyOnly)
            .await
            .unwrap();
        assert_eq!(u.check, Check::Unrecorded);
        assert!(store.master_key_check().await.unwrap().is_none());
        // Without a key it is refused (naming the variable) and no file is created.
        let none = tempfile::tempdir().unwrap();
        let e = unlock_in(&store, none.path(), Claim::VerifyOnly)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("TESSERA_MASTER_KEY is not set"), "{e}");
        assert!(e.contains("tessera init"), "{e}");
        assert!(!none.path().join(MASTER_KEY_FILE).exists());
        // The server's key is recorded by the server.
        let right = dir_with_key(1);
        let u = unlock_in(&store, right.path(), Claim::Record)
            .await
            .unwrap();
        assert_eq!(u.check, Check::Recorded);
        assert!(
            unlock_in(&store, wrong.path(), Claim::VerifyOnly)
                .await
                .is_err()
        );
    }

    /// Review of item 5: a PostgreSQL host's data directory holds only master.key; when
    /// the key is missing nothing is created, not even the directory.
    #[tokio::test]
    async fn a_missing_directory_is_created_only_with_a_new_key() {
        let store = SqliteStore::in_memory().await.unwrap();
        let parent = tempfile::tempdir().unwrap();
        let first = parent.path().join("first");
        let u = unlock_in(&store, &first, Claim::Record).await.unwrap();
        assert!(matches!(u.source, KeySource::Created(_)));
        assert!(first.join(MASTER_KEY_FILE).exists());
        let second = parent.path().join("second");
        let e = unlock_in(&store, &second, Claim::Record)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("TESSERA_MASTER_KEY is not set"), "{e}");
        assert!(!second.exists());
    }

    #[tokio::test]
    async fn a_new_master_key_file_is_never_created_for_a_database_that_has_one() {
        let store = SqliteStore::in_memory().await.unwrap();
        let first = tempfile::tempdir().unwrap();
        unlock_in(&store, first.path(), Claim::Record)
            .await
            .unwrap();
        // An operator host without the key (PostgreSQL deployments: the directory there
        // holds only master.key).
        let host = tempfile::tempdir().unwrap();
        let e = unlock_in(&store, host.path(), Claim::Record)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("TESSERA_MASTER_KEY is not set"), "{e}");
        assert!(!host.path().join(MASTER_KEY_FILE).exists());
    }

    #[tokio::test]
    async fn a_store_from_before_the_check_is_checked_against_its_keys() {
        let store = SqliteStore::in_memory().await.unwrap();
        let good = dir_with_key(1);
        let sealer = MasterKey::load(good.path()).unwrap().sealer().unwrap();
        let timings = crate::keys::Timings {
            lead: Duration::from_secs(300),
            refresh: Duration::from_secs(10),
            max_token_life: Duration::from_secs(660),
        };
        crate::keys::load_or_create(&store, &sealer, Algorithm::EdDsa, timings, NOW)
            .await
            .unwrap();
        assert!(store.master_key_check().await.unwrap().is_none());
        // No key at all: refused, nothing created.
        let none = tempfile::tempdir().unwrap();
        assert!(unlock_in(&store, none.path(), Claim::Record).await.is_err());
        assert!(!none.path().join(MASTER_KEY_FILE).exists());
        // A wrong key cannot open the active key: refused, no check recorded, whoever asks.
        let wrong = dir_with_key(2);
        for claim in [Claim::VerifyOnly, Claim::Record] {
            let e = unlock_in(&store, wrong.path(), claim)
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("cannot open signing key"), "{e}");
        }
        assert!(store.master_key_check().await.unwrap().is_none());
        // The right key: accepted by a reader, recorded by a writer.
        let u = unlock_in(&store, good.path(), Claim::VerifyOnly)
            .await
            .unwrap();
        assert_eq!(u.check, Check::Unrecorded);
        assert!(store.master_key_check().await.unwrap().is_none());
        let u = unlock_in(&store, good.path(), Claim::Record).await.unwrap();
        assert!(
            u.key
                .matches_check(&stored(store.master_key_check().await.unwrap()))
        );
    }
}
