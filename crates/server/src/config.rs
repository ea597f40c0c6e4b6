//! Server configuration: typed, layered once (defaults < TOML file < command line and
//! environment), validated once at start-up. A bad value is an error naming the field
//! and the fix.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tessera_token::Algorithm;

use crate::Error;
use crate::throttle::ThrottlePolicy;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Longest allowed refresh-token reuse grace window.
pub const MAX_REFRESH_GRACE: Duration = Duration::from_secs(60);

/// The optional TOML file (`--config FILE`). Every field is optional; unknown fields are
/// refused so a typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory (database, `master.key`).
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://...`); unset for SQLite in the data directory.
    pub database: Option<String>,
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Issuer URL (`iss`), e.g. `https://auth.example.com`.
    pub issuer: Option<String>,
    /// Access-token lifetime in seconds (default 600).
    pub access_token_ttl_secs: Option<u64>,
    /// Refresh-token idle lifetime in seconds (default 14 days).
    pub refresh_token_idle_ttl_secs: Option<u64>,
    /// Refresh-token family absolute lifetime in seconds (default 90 days).
    pub refresh_token_absolute_ttl_secs: Option<u64>,
    /// Grace window for concurrent reuse of one refresh token, 0..=60 s (default 0).
    pub refresh_reuse_grace_secs: Option<u64>,
    /// Password hashes computed at once (default: number of CPUs).
    pub password_hash_concurrency: Option<usize>,
    /// Failed logins per account within the window before throttling (default 5).
    pub login_failures_per_account: Option<u32>,
    /// Failed logins per client IP within the window before throttling (default 50).
    pub login_failures_per_ip: Option<u32>,
    /// Window for counting failed logins, seconds (default 900).
    pub login_failure_window_secs: Option<u64>,
    /// Longest throttling block, seconds (default 900).
    pub login_max_block_secs: Option<u64>,
    /// Signing algorithm of new keys: EdDSA (default), ES256 or RS256.
    pub signing_alg: Option<String>,
    /// How long resource servers may cache the JWKS, seconds (default 300); a new key is
    /// published this long before it signs.
    pub jwks_cache_ttl_secs: Option<u64>,
    /// How often the server reloads keys from the store and applies their lifecycle,
    /// seconds (default 10).
    pub key_refresh_interval_secs: Option<u64>,
    /// How long audit events are kept before the janitor deletes them, days (default 90).
    pub audit_retention_days: Option<u64>,
}

impl FileConfig {
    /// Reads and parses a TOML config file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        toml::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "config file {} is invalid: {}",
                path.display(),
                e.message()
            ))
        })
    }
}

/// Values from the command line or environment; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data-dir` / `TESSERA_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database` / `TESSERA_DATABASE_URL`.
    pub database: Option<String>,
    /// `--listen` / `TESSERA_LISTEN`.
    pub listen: Option<String>,
    /// `--issuer` / `TESSERA_ISSUER`.
    pub issuer: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory (`master.key`, and the SQLite database unless `database` is set).
    pub data_dir: PathBuf,
    /// The PostgreSQL database; `None` for SQLite in the data directory.
    pub database: Option<DatabaseUrl>,
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Issuer; `None` derives `http://ADDR` from the bound address.
    pub issuer: Option<String>,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh-token idle lifetime.
    pub refresh_idle_ttl: Duration,
    /// Refresh family absolute lifetime.
    pub refresh_absolute_ttl: Duration,
    /// Refresh reuse grace window.
    pub refresh_reuse_grace: Duration,
    /// Concurrent password hashes.
    pub password_hash_concurrency: usize,
    /// Failed-login throttling.
    pub throttle: ThrottlePolicy,
    /// Algorithm of new signing keys.
    pub signing_alg: Algorithm,
    /// JWKS cache lifetime (and publication lead time of new keys).
    pub jwks_cache_ttl: Duration,
    /// Key reload interval.
    pub key_refresh_interval: Duration,
    /// Age at which the janitor deletes audit events.
    pub audit_retention: Duration,
}

impl ServerConfig {
    /// Layers defaults, the file and the overrides, and validates the result.
    pub fn resolve(file: FileConfig, o: Overrides) -> Result<Self, Error> {
        let listen_s = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_s.parse().map_err(|_| {
            Error::Config(format!(
                "listen: {listen_s:?} is not an address; use IP:PORT, e.g. 127.0.0.1:8080"
            ))
        })?;
        let issuer = o
            .issuer
            .or(file.issuer)
            .map(|i| validate_issuer(&i))
            .transpose()?;
        let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d));
        let signing_alg = match file.signing_alg.as_deref() {
            None => Algorithm::EdDsa,
            Some(name) => match name.parse::<Algorithm>() {
                Ok(a) if a.is_asymmetric() => a,
                _ => {
                    return Err(Error::Config(format!(
                        "signing_alg {name:?} is not supported; use EdDSA, ES256 or RS256"
                    )));
                }
            },
        };
        let database = o
            .database
            .or(file.database)
            .filter(|u| !u.is_empty())
            .map(DatabaseUrl::parse)
            .transpose()?;
        let cfg = ServerConfig {
            database,
            data_dir: o
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen,
            issuer,
            access_token_ttl: secs(file.access_token_ttl_secs, 600),
            refresh_idle_ttl: secs(file.refresh_token_idle_ttl_secs, 14 * 86_400),
            refresh_absolute_ttl: secs(file.refresh_token_absolute_ttl_secs, 90 * 86_400),
            refresh_reuse_grace: secs(file.refresh_reuse_grace_secs, 0),
            password_hash_concurrency: file
                .password_hash_concurrency
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            throttle: ThrottlePolicy {
                per_account: file.login_failures_per_account.unwrap_or(5),
                per_ip: file.login_failures_per_ip.unwrap_or(50),
                window: secs(file.login_failure_window_secs, 900),
                max_block: secs(file.login_max_block_secs, 900),
            },
            signing_alg,
            jwks_cache_ttl: secs(file.jwks_cache_ttl_secs, 300),
            key_refresh_interval: secs(file.key_refresh_interval_secs, 10),
            audit_retention: secs(
                file.audit_retention_days.map(|d| d.saturating_mul(86_400)),
                90 * 86_400,
            ),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if !(60..=86_400).contains(&self.access_token_ttl.as_secs()) {
            return bad("access_token_ttl_secs must be between 60 and 86400");
        }
        if self.refresh_idle_ttl.as_secs() < 60 {
            return bad("refresh_token_idle_ttl_secs must be at least 60");
        }
        if self.refresh_absolute_ttl < self.refresh_idle_ttl {
            return bad(
                "refresh_token_absolute_ttl_secs must be at least refresh_token_idle_ttl_secs",
            );
        }
        if self.refresh_reuse_grace > MAX_REFRESH_GRACE {
            return bad("refresh_reuse_grace_secs must be between 0 and 60");
        }
        if self.throttle.per_account == 0 || self.throttle.per_ip == 0 {
            return bad("login_failures_per_account and login_failures_per_ip must be at least 1");
        }
        if !(1..=86_400).contains(&self.throttle.window.as_secs())
            || !(1..=86_400).contains(&self.throttle.max_block.as_secs())
        {
            return bad(
                "login_failure_window_secs and login_max_block_secs must be between 1 and 86400",
            );
        }
        if self.jwks_cache_ttl.as_secs() > 86_400 {
            return bad("jwks_cache_ttl_secs must be between 0 and 86400");
        }
        if !(1..=3600).contains(&self.key_refresh_interval.as_secs()) {
            return bad("key_refresh_interval_secs must be between 1 and 3600");
        }
        if !(1..=36_500).contains(&(self.audit_retention.as_secs() / 86_400)) {
            return bad("audit_retention_days must be between 1 and 36500");
        }
        if self.password_hash_concurrency == 0 {
            return bad("password_hash_concurrency must be at least 1");
        }
        Ok(())
    }

    /// The issuer for a server bound to `addr`.
    pub fn issuer_for(&self, addr: SocketAddr) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
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
            Err(Error::Config(
                "database: the URL must start with postgres:// or postgresql://, e.g. \
                 postgres://tessera@db.internal/tessera; leave it unset for SQLite in the data \
                 directory"
                    .into(),
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

/// Checks an issuer URL (RFC 8414 section 2): `https`, or `http` on a loopback host; no
/// query or fragment. A trailing `/` is removed.
pub fn validate_issuer(s: &str) -> Result<String, Error> {
    let fix = "; use e.g. https://auth.example.com (http only on localhost/127.0.0.1/[::1])";
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| Error::Config(format!("issuer {s:?} is not a URL{fix}")))?;
    if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Config(format!(
            "issuer {s:?} must not contain a query, fragment or spaces{fix}"
        )));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default().to_owned()
    };
    if host.is_empty() {
        return Err(Error::Config(format!("issuer {s:?} has no host{fix}")));
    }
    let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
    match scheme {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(Error::Config(format!(
                "issuer {s:?} must use https unless the host is loopback{fix}"
            )));
        }
    }
    Ok(s.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_rules() {
        assert_eq!(
            validate_issuer("https://a.example/").unwrap(),
            "https://a.example"
        );
        assert!(validate_issuer("http://127.0.0.1:8080").is_ok());
        assert!(validate_issuer("http://[::1]:80/x").is_ok());
        assert!(validate_issuer("http://a.example").is_err());
        assert!(validate_issuer("https://a.example?x=1").is_err());
        assert!(validate_issuer("a.example").is_err());
    }

    #[test]
    fn defaults_and_overrides() {
        let c = ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.access_token_ttl.as_secs(), 600);
        assert_eq!(c.issuer_for(c.listen), "http://127.0.0.1:8080");
        let file: FileConfig = toml::from_str("refresh_reuse_grace_secs = 61").unwrap();
        assert!(ServerConfig::resolve(file, Overrides::default()).is_err());
        assert!(toml::from_str::<FileConfig>("unknown = 1").is_err());
        assert_eq!(c.audit_retention.as_secs(), 90 * 86_400);
        let file: FileConfig = toml::from_str("audit_retention_days = 0").unwrap();
        assert!(ServerConfig::resolve(file, Overrides::default()).is_err());
        assert!(c.database.is_none());
    }

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
        let url = c.database.as_ref().unwrap();
        assert_eq!(url.redacted(), "postgres://db.internal:5432/auth");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(url.expose().contains("s3cret"));
        assert!(ServerConfig::resolve(FileConfig::default(), o("postgresql://h/db")).is_ok());
        let bad = ServerConfig::resolve(FileConfig::default(), o("mysql://h/db")).unwrap_err();
        assert!(bad.to_string().contains("postgres://"));
        // An empty value (e.g. TESSERA_DATABASE_URL=) means SQLite.
        let c = ServerConfig::resolve(FileConfig::default(), o("")).unwrap();
        assert!(c.database.is_none());
    }
}
