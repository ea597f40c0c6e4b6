//! The store section: where the data lives (data directory, PostgreSQL URL), how long a
//! client record may be served from the cache, and how long audit events are kept.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::problems::days_in;
use super::{DAY, FileConfig, Overrides, Problems, invalid};
use crate::Error;

/// Default lifetime of a cached client record, seconds (`client_cache_ttl_secs`).
pub(crate) const DEFAULT_CLIENT_CACHE_TTL_SECS: u64 = 5;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";

/// Where the data lives and how long it is kept: for `store::open`, `admin`, the client
/// cache and the janitor.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Data directory (`master.key`, and the SQLite database unless `database` is set).
    pub data_dir: PathBuf,
    /// The PostgreSQL database; `None` for SQLite in the data directory.
    pub database: Option<DatabaseUrl>,
    /// Lifetime of cached client records (zero: no cache).
    pub client_cache_ttl: Duration,
    /// Age at which the janitor deletes audit events.
    pub audit_retention: Duration,
}

impl StoreConfig {
    /// The store keys of `f`, with `--data-dir` and `--database` of `o` on top.
    pub(super) fn resolve(f: &FileConfig, o: &Overrides, p: &mut Problems) -> Self {
        let database = o
            .database
            .clone()
            .or_else(|| f.database.clone())
            .filter(|u| !u.is_empty())
            .and_then(|u| p.take(DatabaseUrl::parse(u)));
        let audit_retention = p
            .take(days_in(
                "audit_retention_days",
                f.audit_retention_days,
                90,
                1,
                36_500,
            ))
            .unwrap_or(Duration::from_secs(90 * DAY));
        StoreConfig {
            data_dir: o
                .data_dir
                .clone()
                .or_else(|| f.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database,
            client_cache_ttl: p.secs(
                "client_cache_ttl_secs",
                f.client_cache_ttl_secs,
                DEFAULT_CLIENT_CACHE_TTL_SECS,
                0,
                300,
            ),
            audit_retention,
        }
    }
}

/// A PostgreSQL URL. It may hold a password, so `Debug` and `Display` show only the
/// host and database.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Accepts `postgres://` and `postgresql://` URLs.
    pub fn parse(url: String) -> Result<Self, Error> {
        if crate::store::is_postgres_url(&url) {
            Ok(DatabaseUrl(url))
        } else {
            Err(invalid(
                "database",
                "(not shown)",
                "the URL must start with postgres:// or postgresql://, e.g. \
                 postgres://tessera@db.internal/tessera; leave it unset for SQLite in the data \
                 directory",
            ))
        }
    }

    /// The full URL, password included: for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without user, password and query: `postgres://HOST/DATABASE`.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("postgres", &self.0));
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{rest}")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{FileConfig, Overrides, ServerConfig};

    #[test]
    fn database_urls_are_checked_and_never_shown_with_a_password() {
        let o = |url: &str| Overrides {
            database: Some(url.into()),
            ..Overrides::default()
        };
        let c = ServerConfig::resolve(
            FileConfig::default(),
            o("postgres://tessera:s3cret@db.internal:5432/auth?sslmode=disable"),
        )
        .unwrap();
        let url = c.store.database.as_ref().unwrap();
        assert_eq!(url.redacted(), "postgres://db.internal:5432/auth");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(url.expose().contains("s3cret"));
        assert!(ServerConfig::resolve(FileConfig::default(), o("postgresql://h/db")).is_ok());
        let bad = ServerConfig::resolve(FileConfig::default(), o("mysql://h/db")).unwrap_err();
        assert!(bad.to_string().contains("postgres://"));
        // An empty value (e.g. TESSERA_DATABASE_URL=) means SQLite.
        let c = ServerConfig::resolve(FileConfig::default(), o("")).unwrap();
        assert!(c.store.database.is_none());
    }
}
