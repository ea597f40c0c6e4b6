//! Operator operations behind the `tessera` CLI, run directly against the local store:
//! the [`Admin`] handle (opening the store with the master key, audit) here; users,
//! second factors, clients, sessions, keys and tokens in the files named for them. They validate their
//! input and name the fix when it is wrong.

mod clients;
mod keys;
mod mfa;
mod sessions;
mod tokens;
mod users;

pub use clients::NewClient;
pub use keys::KeyInfo;
pub use mfa::{PasskeyListing, UserFactors};
pub use tokens::MintRequest;

use std::sync::Arc;

use tessera_token::{Scope, UnixTime};

use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::keys::Claim;
use crate::secrets::{KeySource, Sealer};
use crate::store::{self, AuditEvent, Revoked, Store};
use crate::{Error, prepare_data_dir};

/// Handle on the local store for operator commands, opened with the deployment's
/// master key (checked against the store before anything is written).
#[derive(Debug)]
pub struct Admin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: ServerConfig,
    sealer: Sealer,
    master_source: KeySource,
}

impl Admin {
    /// Opens the store of `config` and checks the master key against it. Creates
    /// nothing and records nothing: a missing data directory (or, for SQLite, a directory
    /// without a database) is [`Error::Config`] naming the path looked for, and a store
    /// without a key check is only checked against its signing keys ([`Claim::VerifyOnly`]);
    /// only `serve`, [`Admin::init`] and [`Admin::open_to_seal`] record the check.
    pub async fn open(config: &ServerConfig) -> Result<Self, Error> {
        require_data_dir(config)?;
        Self::open_existing(config, Claim::VerifyOnly).await
    }

    /// [`Admin::open`] for the commands that seal keys (`keys rotate`, `keys import`):
    /// a store without a key check gets this key's recorded before anything is sealed
    /// with it.
    pub async fn open_to_seal(config: &ServerConfig) -> Result<Self, Error> {
        require_data_dir(config)?;
        Self::open_existing(config, Claim::Record).await
    }

    /// `tessera init`: creates the SQLite data directory and database and the master key
    /// if they do not exist, then opens them as [`Admin::open_to_seal`] does. On
    /// PostgreSQL nothing is created before the database's key check passes (the
    /// directory, for `master.key`, only when the database has no key yet). Running it
    /// again changes nothing.
    pub async fn init(config: &ServerConfig) -> Result<Self, Error> {
        if config.store.database.is_none() {
            prepare_data_dir(&config.store.data_dir)?;
        }
        Self::open_existing(config, Claim::Record).await
    }

    async fn open_existing(config: &ServerConfig, claim: Claim) -> Result<Self, Error> {
        let store = store::open(
            config.store.database.as_ref().map(|d| d.expose()),
            &config.store.data_dir,
        )
        .await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let unlocked =
            crate::keys::unlock(&*store, &config.store.data_dir, clock.now(), claim).await;
        let unlocked = match unlocked {
            Ok(found) => found,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        Ok(Admin {
            store,
            clock,
            config: config.clone(),
            sealer: unlocked.key.sealer()?,
            master_source: unlocked.source,
        })
    }

    /// Where the master key came from (`TESSERA_MASTER_KEY`, or the file, and whether it
    /// was created just now).
    pub fn master_key_source(&self) -> &KeySource {
        &self.master_source
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// The underlying store.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub(crate) fn revoked(&self) -> Revoked {
        let now = self.clock.now();
        Revoked {
            now,
            access_exp: now.saturating_add(self.config.tokens.access_token_ttl),
        }
    }

    pub(crate) async fn audit(
        &self,
        kind: &str,
        client: Option<&str>,
        user: Option<&str>,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            at: self.clock.now(),
            kind: kind.to_owned(),
            client_id: client.map(str::to_owned),
            user_id: user.map(str::to_owned),
            detail: detail.to_string(),
        };
        if let Err(e) = self.store.record(&event).await {
            tracing::warn!(error = %e, "could not record audit event");
        }
    }

    /// The latest audit events, newest first.
    pub async fn audit_events(&self, limit: u32) -> Result<Vec<crate::store::AuditEvent>, Error> {
        Ok(self.store.recent_events(limit).await?)
    }

    /// The latest `limit` audit events of the user named `user` (all users when `None`;
    /// an unknown name is `NotFound`) at or after `since`, newest first.
    pub async fn audit_query(
        &self,
        user: Option<&str>,
        since: Option<UnixTime>,
        limit: u32,
    ) -> Result<Vec<crate::store::AuditEvent>, Error> {
        let user_id = match user {
            Some(name) => Some(self.user(name).await?.id),
            None => None,
        };
        let query = crate::store::AuditQuery {
            user_id,
            since,
            limit,
        };
        Ok(self.store.query_events(&query).await?)
    }
}

/// Refuses a data directory that does not exist (or, for SQLite, holds no database):
/// an operator command run from the wrong directory must not create an empty store.
fn require_data_dir(config: &ServerConfig) -> Result<(), Error> {
    let dir = &config.store.data_dir;
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    if config.store.database.is_some() {
        // PostgreSQL: the directory would hold only master.key, so the key is what is
        // missing; unlock names both places when neither has it.
        return Ok(());
    }
    let hint = "pass the server's directory with --data-dir (or data_dir in the config file, \
                or TESSERA_DATA_DIR), or create a new deployment with `tessera init`";
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "data directory {} does not exist; {hint}",
            shown.display()
        )));
    }
    let db = dir.join(store::sqlite::DB_FILE);
    if !db.exists() {
        return Err(Error::Config(format!(
            "{} holds no Tessera database ({} does not exist); {hint}",
            shown.display(),
            shown.join(store::sqlite::DB_FILE).display()
        )));
    }
    Ok(())
}

fn not_found(e: crate::store::StoreError, what: &str, name: &str) -> Error {
    match Error::from(e) {
        Error::NotFound(_) => {
            Error::NotFound(format!("no {what} {name}; see `tessera {what} list`"))
        }
        other => other,
    }
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} name {name:?} must be 1-64 characters of letters, digits, '.', '_', '-', '@'"
        )))
    }
}

/// Parses a scope given as space- or comma-separated words; empty is no scope.
pub fn parse_scope(s: &str) -> Result<Scope, Error> {
    let words: Vec<&str> = s.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return Ok(Scope::default());
    }
    words.join(" ").parse().map_err(|_| {
        Error::Invalid(format!(
            "scope {s:?} is malformed: use words of printable ASCII without quotes or backslashes"
        ))
    })
}

#[cfg(test)]
impl Admin {
    /// An operator handle on `store`, with a new master key in `config.store.data_dir`.
    pub(crate) fn for_tests(store: Arc<dyn Store>, config: ServerConfig) -> Self {
        let master = crate::secrets::MasterKey::load(&config.store.data_dir).unwrap();
        Admin {
            store,
            clock: Arc::new(SystemClock),
            sealer: master.sealer().unwrap(),
            master_source: crate::secrets::KeySource::File(
                config.store.data_dir.join("master.key"),
            ),
            config,
        }
    }
}
