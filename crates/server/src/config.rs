//! Server configuration: typed, layered once (defaults < TOML file < `TESSERA_*`
//! environment variables < command-line flags), validated once at start-up. A bad value is
//! one line naming the key, the rule and where to set it.
//!
//! Adding an option: a field in [`FileConfig`] (it is then settable from the file, the
//! environment and `--set`), its documented line in `config/example.toml` (a test checks
//! every field is there), and its checked value in [`ServerConfig`].

mod file;
mod layers;
mod login;
mod problems;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use tessera_token::Algorithm;

pub use file::FileConfig;
pub use layers::{env_var, fields, layer, unknown_env_vars};
pub use login::ThrottlePolicy;
use problems::days_in;
pub(crate) use problems::{Problems, invalid};

use crate::Error;
use crate::password::HashPriority;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// The default `max_connections_per_ip`: a few sources (or, with four times as many, a few
/// prefixes) must not hold every slot.
const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 32;

/// The default `max_connections_per_ip` for `max_connections`: 32, at most an eighth of it,
/// at least 1.
fn default_per_ip(max_connections: usize) -> usize {
    DEFAULT_MAX_CONNECTIONS_PER_IP
        .min(max_connections / 8)
        .max(1)
}
/// Largest `max_connections` accepted.
const MAX_MAX_CONNECTIONS: usize = 1_000_000;
/// Longest allowed refresh-token reuse grace window.
pub const MAX_REFRESH_GRACE: Duration = Duration::from_secs(60);
/// Largest `password_hash_queue`.
const MAX_HASH_QUEUE: usize = 10_000;
/// `tessera config example`: every key, commented, with its default.
pub const EXAMPLE: &str = include_str!("config/example.toml");

impl ServerConfig {
    /// The file (if any), `TESSERA_*` variables of the process, `--set` assignments and
    /// `o`, layered and validated: every problem of every layer, one line each.
    pub fn load(path: Option<&Path>, sets: &[String], o: Overrides) -> Result<ServerConfig, Error> {
        let mut p = Problems::default();
        let file = layers::layer_into(path, &|var| std::env::var(var).ok(), sets, &mut p)?;
        let config = Self::resolve_into(file, o, &mut p);
        p.finish().map(|()| config)
    }
}

/// Dedicated command-line flags; they win over everything else.
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
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--dangerous-allow-http`.
    pub dangerous_allow_http: bool,
}

/// The certificate and key files of the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
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
    /// Issuer; `None` derives `http(s)://ADDR` from the bound address.
    pub issuer: Option<String>,
    /// HTTPS certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP allowed on a non-loopback address.
    pub dangerous_allow_http: bool,
    /// `Strict-Transport-Security` max-age (zero: no header).
    pub hsts_max_age: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed by CORS on the browser-facing endpoints.
    pub cors_allowed_origins: Vec<String>,
    /// Longest drain of in-flight requests at shutdown.
    pub shutdown_timeout: Duration,
    /// Lame-duck phase after SIGTERM (zero: none).
    pub shutdown_delay: Duration,
    /// Longest wait for a request head (and between keep-alive requests).
    pub header_read_timeout: Duration,
    /// Longest time to receive a request body.
    pub request_timeout: Duration,
    /// Cap on open connections (beyond it, a small reserve for health probes).
    pub max_connections: usize,
    /// Separate listen address of `/metrics`; `None`: served on the main listener.
    pub metrics_listen: Option<SocketAddr>,
    /// File holding the bearer token `/metrics` requires; `None`: no token.
    pub metrics_token_file: Option<PathBuf>,
    /// Cap on the open connections of one source (not the trusted proxies).
    pub max_connections_per_ip: usize,
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
    /// Scheduling of the password hashing threads.
    pub password_hash_priority: HashPriority,
    /// Failed-login throttling.
    pub throttle: ThrottlePolicy,
    /// `/revoke` requests that write, per minute per client, per node.
    pub revoke_requests_per_minute: NonZeroU32,
    /// Password checks that may wait for a hashing thread before logins are refused.
    pub password_hash_queue: usize,
    /// Algorithm of new signing keys.
    pub signing_alg: Algorithm,
    /// Automatic key rotation period; `None`: manual only.
    pub key_rotation_period: Option<Duration>,
    /// JWKS cache lifetime (and publication lead time of new keys).
    pub jwks_cache_ttl: Duration,
    /// Key reload interval.
    pub key_refresh_interval: Duration,
    /// Age at which the janitor deletes audit events.
    pub audit_retention: Duration,
    /// Lifetime of cached client records (zero: no cache).
    pub client_cache_ttl: Duration,
    /// Authorization-code lifetime.
    pub authorization_code_ttl: Duration,
    /// Browser sign-in session lifetime.
    pub session_ttl: Duration,
}

impl ServerConfig {
    /// Layers defaults, the file and the overrides, and validates the result. Every
    /// problem is reported, one line each ([`Error::Config`] with one line per problem).
    pub fn resolve(file: FileConfig, o: Overrides) -> Result<Self, Error> {
        let mut p = Problems::default();
        let config = Self::resolve_into(file, o, &mut p);
        p.finish().map(|()| config)
    }

    /// [`ServerConfig::resolve`]'s work: a bad value is recorded in `p` and its default
    /// used in its place, so the later checks still run.
    fn resolve_into(file: FileConfig, o: Overrides, p: &mut Problems) -> Self {
        const DAY: u64 = 86_400;
        let listen_s = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let default_listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        let listen: SocketAddr = p
            .take(listen_s.parse().map_err(|_| {
                invalid(
                    "listen",
                    format!("{listen_s:?}"),
                    "not an address; use IP:PORT, e.g. 127.0.0.1:8080 or [::]:8443",
                )
            }))
            .unwrap_or(default_listen);
        let metrics_listen = file.metrics_listen.and_then(|m| {
            p.take(m.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics_listen",
                    format!("{m:?}"),
                    "not an address; use IP:PORT, e.g. 127.0.0.1:9090",
                )
            }))
        });
        if metrics_listen == Some(listen) && listen.port() != 0 {
            p.push(invalid(
                "metrics_listen",
                format!("\"{listen}\""),
                "is the main listen address; give /metrics an address of its own (or unset it)",
            ));
        }
        let issuer = o
            .issuer
            .or(file.issuer)
            .and_then(|i| p.take(validate_issuer(&i)));
        let signing_alg = match file.signing_alg.as_deref() {
            None => Algorithm::EdDsa,
            Some(name) => match name.parse::<Algorithm>() {
                Ok(a) if a.is_asymmetric() => a,
                _ => {
                    p.push(invalid(
                        "signing_alg",
                        format!("{name:?}"),
                        "not supported; use EdDSA, ES256 or RS256",
                    ));
                    Algorithm::EdDsa
                }
            },
        };
        let database = o
            .database
            .or(file.database)
            .filter(|u| !u.is_empty())
            .and_then(|u| p.take(DatabaseUrl::parse(u)));
        let tls = match (o.tls_cert.or(file.tls_cert), o.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                p.push(invalid(
                    "tls_key",
                    "(unset)",
                    "tls_cert is set, so tls_key must name the private key file too",
                ));
                None
            }
            (None, Some(_)) => {
                p.push(invalid(
                    "tls_cert",
                    "(unset)",
                    "tls_key is set, so tls_cert must name the certificate file too",
                ));
                None
            }
        };
        let trusted_proxies = file
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .filter_map(|n| p.take(parse_net(n)))
            .collect();
        let cors_allowed_origins = file
            .cors_allowed_origins
            .unwrap_or_default()
            .iter()
            .filter_map(|origin| p.take(validate_origin(origin)))
            .collect();
        let access_token_ttl = p.secs(
            "access_token_ttl_secs",
            file.access_token_ttl_secs,
            600,
            60,
            DAY,
        );
        let refresh_idle_ttl = p.secs(
            "refresh_token_idle_ttl_secs",
            file.refresh_token_idle_ttl_secs,
            14 * DAY,
            60,
            3650 * DAY,
        );
        let refresh_absolute_ttl = p.secs(
            "refresh_token_absolute_ttl_secs",
            file.refresh_token_absolute_ttl_secs,
            90 * DAY,
            60,
            3650 * DAY,
        );
        if refresh_absolute_ttl < refresh_idle_ttl {
            p.push(invalid(
                "refresh_token_absolute_ttl_secs",
                refresh_absolute_ttl.as_secs(),
                &format!(
                    "must be at least refresh_token_idle_ttl_secs ({})",
                    refresh_idle_ttl.as_secs()
                ),
            ));
        }
        let jwks_cache_ttl = p.secs("jwks_cache_ttl_secs", file.jwks_cache_ttl_secs, 300, 0, DAY);
        let rotation = file.key_rotation_period_secs.unwrap_or(90 * DAY);
        let min_rotation = (jwks_cache_ttl + crate::keys::max_token_life(access_token_ttl))
            .as_secs()
            .max(3600);
        let key_rotation_period = match rotation {
            0 => None,
            s if (min_rotation..=3650 * DAY).contains(&s) => Some(Duration::from_secs(s)),
            s => {
                p.push(invalid(
                    "key_rotation_period_secs",
                    s,
                    &format!(
                        "must be 0 (manual rotation only) or between {min_rotation} (an hour, and at least the JWKS cache lifetime plus the token lifetime) and {}",
                        3650 * DAY
                    ),
                ));
                None
            }
        };
        let available = std::thread::available_parallelism().map_or(2, |n| n.get());
        let password_hash_concurrency = match file.password_hash_concurrency {
            Some(0) => {
                p.push(invalid(
                    "password_hash_concurrency",
                    0,
                    "must be at least 1",
                ));
                available
            }
            Some(n) => n,
            None => available,
        };
        let password_hash_priority = match file.password_hash_priority.as_deref() {
            None => HashPriority::default(),
            Some(name) => p
                .take(name.parse().map_err(|()| {
                    invalid(
                        "password_hash_priority",
                        format!("{name:?}"),
                        "must be \"idle\" or \"nice\"",
                    )
                }))
                .unwrap_or_default(),
        };
        let password_hash_queue = p.within(
            "password_hash_queue",
            file.password_hash_queue,
            crate::password::DEFAULT_HASH_QUEUE,
            0,
            MAX_HASH_QUEUE,
        );
        let mut at_least_one = |key: &str, v: Option<u32>, d: u32| match v.unwrap_or(d) {
            0 => {
                p.push(invalid(key, 0, "must be at least 1"));
                d
            }
            n => n,
        };
        let per_account = at_least_one(
            "login_failures_per_account",
            file.login_failures_per_account,
            5,
        );
        let per_ip = at_least_one("login_failures_per_ip", file.login_failures_per_ip, 50);
        ServerConfig {
            database,
            data_dir: o
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen,
            issuer,
            tls,
            dangerous_allow_http: o.dangerous_allow_http
                || file.dangerous_allow_http.unwrap_or(false),
            hsts_max_age: p.secs(
                "hsts_max_age_secs",
                file.hsts_max_age_secs,
                365 * DAY,
                0,
                2 * 365 * DAY,
            ),
            trusted_proxies,
            cors_allowed_origins,
            shutdown_timeout: p.secs(
                "shutdown_timeout_secs",
                file.shutdown_timeout_secs,
                30,
                1,
                3600,
            ),
            shutdown_delay: p.secs("shutdown_delay_secs", file.shutdown_delay_secs, 5, 0, 600),
            header_read_timeout: p.secs(
                "header_read_timeout_secs",
                file.header_read_timeout_secs,
                10,
                1,
                300,
            ),
            request_timeout: p.secs(
                "request_timeout_secs",
                file.request_timeout_secs,
                30,
                1,
                3600,
            ),
            max_connections: p.within(
                "max_connections",
                file.max_connections,
                DEFAULT_MAX_CONNECTIONS,
                1,
                MAX_MAX_CONNECTIONS,
            ),
            metrics_listen,
            metrics_token_file: file.metrics_token_file,
            max_connections_per_ip: p.within(
                "max_connections_per_ip",
                file.max_connections_per_ip,
                default_per_ip(file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)),
                1,
                MAX_MAX_CONNECTIONS,
            ),
            access_token_ttl,
            refresh_idle_ttl,
            refresh_absolute_ttl,
            refresh_reuse_grace: p.secs(
                "refresh_reuse_grace_secs",
                file.refresh_reuse_grace_secs,
                0,
                0,
                MAX_REFRESH_GRACE.as_secs(),
            ),
            password_hash_concurrency,
            password_hash_priority,
            throttle: ThrottlePolicy {
                per_account,
                per_ip,
                window: p.secs(
                    "login_failure_window_secs",
                    file.login_failure_window_secs,
                    900,
                    1,
                    DAY,
                ),
                max_block: p.secs(
                    "login_max_block_secs",
                    file.login_max_block_secs,
                    900,
                    1,
                    DAY,
                ),
            },
            revoke_requests_per_minute: NonZeroU32::new(p.within(
                "revoke_requests_per_minute",
                file.revoke_requests_per_minute,
                600,
                1,
                1_000_000,
            ))
            .unwrap_or(NonZeroU32::MIN),
            password_hash_queue,
            signing_alg,
            key_rotation_period,
            jwks_cache_ttl,
            key_refresh_interval: p.secs(
                "key_refresh_interval_secs",
                file.key_refresh_interval_secs,
                10,
                1,
                3600,
            ),
            audit_retention: p
                .take(days_in(
                    "audit_retention_days",
                    file.audit_retention_days,
                    90,
                    1,
                    36_500,
                ))
                .unwrap_or(Duration::from_secs(90 * DAY)),
            client_cache_ttl: p.secs(
                "client_cache_ttl_secs",
                file.client_cache_ttl_secs,
                crate::client_cache::DEFAULT_CLIENT_CACHE_TTL_SECS,
                0,
                300,
            ),
            authorization_code_ttl: p.secs(
                "authorization_code_ttl_secs",
                file.authorization_code_ttl_secs,
                60,
                1,
                600,
            ),
            session_ttl: p.secs(
                "session_ttl_secs",
                file.session_ttl_secs,
                8 * 3600,
                60,
                30 * DAY,
            ),
        }
    }

    /// The issuer for a server bound to `addr`.
    pub fn issuer_for(&self, addr: SocketAddr) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"))
    }

    /// Refuses plain HTTP on a non-loopback address unless `dangerous_allow_http`; returns
    /// whether the server runs in that dangerous mode (the caller logs a warning).
    pub fn check_transport(&self) -> Result<bool, Error> {
        if self.tls.is_some() || self.listen.ip().is_loopback() {
            return Ok(false);
        }
        if self.dangerous_allow_http {
            return Ok(true);
        }
        Err(Error::Config(format!(
            "config: listen = \"{}\" is not a loopback address and TLS is off, so passwords and tokens would cross the network in clear; set tls_cert and tls_key (or --tls-cert/--tls-key), or, only behind a TLS-terminating proxy, pass --dangerous-allow-http",
            self.listen
        )))
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// An IP or CIDR of `trusted_proxies`.
fn parse_net(s: &str) -> Result<IpNet, Error> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            invalid(
                "trusted_proxies",
                format!("{s:?}"),
                "each entry must be an IP or CIDR, e.g. \"10.0.0.0/8\" or \"192.0.2.7\"",
            )
        })
}

/// A CORS origin: `scheme://host[:port]`, https unless the host is loopback, no path.
fn validate_origin(s: &str) -> Result<String, Error> {
    let rule = "each entry must be an origin like \"https://app.example.com\" (scheme, host, optional port; no path; http only on loopback)";
    let Some((scheme, authority)) = s.split_once("://") else {
        return Err(invalid("cors_allowed_origins", format!("{s:?}"), rule));
    };
    let host_ok = !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', '*'])
        && !authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    let loopback = is_loopback_host(authority);
    let scheme_ok = scheme == "https" || (scheme == "http" && loopback);
    if host_ok && scheme_ok {
        Ok(s.to_owned())
    } else {
        Err(invalid("cors_allowed_origins", format!("{s:?}"), rule))
    }
}

/// Whether the host of `authority` (`host[:port]`) is loopback.
pub fn is_loopback_host(authority: &str) -> bool {
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default().to_owned()
    };
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
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

/// Checks an issuer URL (RFC 8414 section 2): `https`, or `http` on a loopback host; no
/// query or fragment. A trailing `/` is removed.
pub fn validate_issuer(s: &str) -> Result<String, Error> {
    let bad = |rule: &str| {
        invalid(
            "issuer",
            format!("{s:?}"),
            &format!(
                "{rule}; use e.g. https://auth.example.com (http only on localhost, 127.0.0.1 or [::1])"
            ),
        )
    };
    let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("not a URL"))?;
    if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain a query, fragment or spaces"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return Err(bad("has no host"));
    }
    match scheme {
        "https" => {}
        "http" if is_loopback_host(authority) => {}
        _ => return Err(bad("must use https unless the host is loopback")),
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

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn resolve_text(
        text: &str,
        vars: &'static [(&'static str, &'static str)],
        sets: &[&str],
    ) -> Result<ServerConfig, Error> {
        let (_dir, path) = file(text);
        let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
        let f = layer(Some(&path), &env_of(vars), &sets)?;
        ServerConfig::resolve(f, Overrides::default())
    }

    #[test]
    fn an_unknown_key_is_refused_in_one_line_naming_it() {
        let e = resolve_text("acces_token_ttl_secs = 900\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `acces_token_ttl_secs`"), "{e}");
        assert!(e.contains("did you mean `access_token_ttl_secs`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = resolve_text("", &[], &["no_such_key=1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `no_such_key` in --set"), "{e}");
        assert!(toml::from_str::<FileConfig>("unknown = 1").is_err());
    }

    #[test]
    fn environment_beats_the_file_and_flags_beat_the_environment() {
        const ENV: &[(&str, &str)] = &[
            ("TESSERA_ACCESS_TOKEN_TTL_SECS", "900"),
            ("TESSERA_LOGIN_FAILURES_PER_IP", "7"),
            (
                "TESSERA_CORS_ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
        ];
        let text = "access_token_ttl_secs = 300\nlogin_failures_per_ip = 9\nlogin_failures_per_account = 3\n";
        let c = resolve_text(text, ENV, &["login_failures_per_ip=11"]).unwrap();
        assert_eq!(c.access_token_ttl.as_secs(), 900, "env beats file");
        assert_eq!(c.throttle.per_ip, 11, "--set beats env");
        assert_eq!(c.throttle.per_account, 3, "file beats default");
        assert_eq!(
            c.cors_allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        // A dedicated flag (Overrides) beats the environment too.
        const LISTEN: &[(&str, &str)] = &[("TESSERA_LISTEN", "127.0.0.1:9000")];
        let f = layer(None, &env_of(LISTEN), &[]).unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:9001".into()),
            ..Overrides::default()
        };
        assert_eq!(ServerConfig::resolve(f, o).unwrap().listen.port(), 9001);
    }

    #[test]
    fn bad_values_name_the_key_the_rule_and_where_to_set_it() {
        let e = resolve_text("access_token_ttl_secs = 0\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "config: access_token_ttl_secs = 0 is invalid: must be between 60 and 86400; set it in \
             the config file, TESSERA_ACCESS_TOKEN_TTL_SECS or --set access_token_ttl_secs=VALUE \
             (`tessera config example` documents every key)"
        );
        const ENV: &[(&str, &str)] = &[("TESSERA_LOGIN_MAX_BLOCK_SECS", "soon")];
        let e = resolve_text("", ENV, &[]).unwrap_err().to_string();
        assert!(e.starts_with("config: login_max_block_secs = \"soon\" (from TESSERA_LOGIN_MAX_BLOCK_SECS) is invalid"), "{e}");
        for (text, key) in [
            ("refresh_reuse_grace_secs = 61", "refresh_reuse_grace_secs"),
            ("trusted_proxies = [\"10.0.0.0/33\"]", "trusted_proxies"),
            (
                "cors_allowed_origins = [\"http://app.example\"]",
                "cors_allowed_origins",
            ),
            (
                "cors_allowed_origins = [\"https://app.example/path\"]",
                "cors_allowed_origins",
            ),
            ("key_rotation_period_secs = 60", "key_rotation_period_secs"),
            ("signing_alg = \"HS256\"", "signing_alg"),
            ("password_hash_priority = \"low\"", "password_hash_priority"),
            ("tls_cert = \"/c.pem\"", "tls_key"),
            ("issuer = \"http://auth.example.com\"", "issuer"),
            ("listen = \"everywhere\"", "listen"),
            ("shutdown_timeout_secs = 0", "shutdown_timeout_secs"),
            ("shutdown_delay_secs = 601", "shutdown_delay_secs"),
            ("header_read_timeout_secs = 0", "header_read_timeout_secs"),
            ("request_timeout_secs = 0", "request_timeout_secs"),
            ("max_connections = 0", "max_connections"),
            ("metrics_listen = \"metrics\"", "metrics_listen"),
            (
                "listen = \"127.0.0.1:9000\"\nmetrics_listen = \"127.0.0.1:9000\"",
                "metrics_listen",
            ),
            ("max_connections_per_ip = 0", "max_connections_per_ip"),
            ("access_token_ttl_secs = \"ten\"", "access_token_ttl_secs"),
        ] {
            let e = resolve_text(text, &[], &[]).unwrap_err().to_string();
            assert!(e.starts_with(&format!("config: {key} = ")), "{text}: {e}");
            assert!(e.contains(&env_var(key)), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    /// Issue 14, item 14: `config check` stopped at the first problem.
    #[test]
    fn every_problem_is_reported_one_line_each() {
        const ENV: &[(&str, &str)] = &[("TESSERA_LOGIN_MAX_BLOCK_SECS", "soon")];
        let (_dir, path) = file(
            "access_token_ttl_secs = 0\nacces_token_ttl_secs = 1\nsigning_alg = \"HS256\"\n\
             trusted_proxies = [\"10.0.0.0/33\", \"nope\"]\nsession_ttl_secs = 1\n",
        );
        let sets = [
            "refresh_reuse_grace_secs=61".to_owned(),
            "no_such_key=1".to_owned(),
        ];
        let mut p = Problems::default();
        let f = layers::layer_into(Some(&path), &env_of(ENV), &sets, &mut p).unwrap();
        let _ = ServerConfig::resolve_into(f, Overrides::default(), &mut p);
        let e = p.finish().unwrap_err().to_string();
        let lines: Vec<&str> = e.lines().collect();
        for key in [
            "unknown key `acces_token_ttl_secs`",
            "unknown key `no_such_key` in --set",
            "login_max_block_secs = \"soon\"",
            "access_token_ttl_secs = 0",
            "signing_alg = \"HS256\"",
            "trusted_proxies = \"10.0.0.0/33\"",
            "trusted_proxies = \"nope\"",
            "session_ttl_secs = 1",
            "refresh_reuse_grace_secs = 61",
        ] {
            assert_eq!(
                lines.iter().filter(|l| l.contains(key)).count(),
                1,
                "{key} in:\n{e}"
            );
        }
        assert_eq!(lines.len(), 9, "{e}");
        assert!(lines.iter().all(|l| l.starts_with("config: ")), "{e}");
    }

    #[test]
    fn the_example_parses_to_the_defaults() {
        let from_example = resolve_text(EXAMPLE, &[], &[]).unwrap();
        let defaults = ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn every_key_is_documented_in_the_example_and_its_commented_values_are_valid() {
        for key in fields() {
            let set = EXAMPLE.lines().any(|l| l.starts_with(&format!("{key} = ")));
            let shown = EXAMPLE
                .lines()
                .any(|l| l.starts_with(&format!("# {key} = ")));
            assert!(set || shown, "`{key}` is missing from config/example.toml");
        }
        // Uncommenting every commented assignment gives a valid file too (last one wins).
        let mut table = toml::Table::new();
        for line in EXAMPLE.lines() {
            let line = line.strip_prefix("# ").unwrap_or(line);
            if let Some((key, _)) = line.split_once(" = ")
                && fields().contains(&key)
            {
                let t: toml::Table = toml::from_str(line).unwrap();
                table.extend(t);
            }
        }
        let text: String = table
            .iter()
            .map(|(k, v)| format!("{k} = {}\n", layers::show(v)))
            .collect();
        let c = resolve_text(&text, &[], &[]).unwrap();
        assert!(c.tls.is_some() && c.database.is_some() && !c.trusted_proxies.is_empty());
    }

    #[test]
    fn plain_http_off_loopback_needs_the_dangerous_flag() {
        let c = |listen: &str, dangerous: bool| {
            ServerConfig::resolve(
                FileConfig::default(),
                Overrides {
                    listen: Some(listen.into()),
                    dangerous_allow_http: dangerous,
                    ..Overrides::default()
                },
            )
            .unwrap()
        };
        assert!(!c("127.0.0.1:0", false).check_transport().unwrap());
        assert!(!c("[::1]:0", false).check_transport().unwrap());
        let e = c("0.0.0.0:8080", false)
            .check_transport()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--dangerous-allow-http") && e.contains("tls_cert"),
            "{e}"
        );
        assert!(c("0.0.0.0:8080", true).check_transport().unwrap());
    }

    #[test]
    fn trusted_proxies_match_addresses_and_networks() {
        let c = resolve_text(
            "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]",
            &[],
            &[],
        )
        .unwrap();
        assert!(c.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(c.is_trusted_proxy("192.0.2.7".parse().unwrap()));
        assert!(c.is_trusted_proxy("::1".parse().unwrap()));
        assert!(!c.is_trusted_proxy("192.0.2.8".parse().unwrap()));
    }

    /// Review item 2: one source may hold a quarter of the slots unless configured.
    #[test]
    fn max_connections_per_ip_defaults_to_32_and_at_most_an_eighth_of_max_connections() {
        let per_ip = |text: &str| resolve_text(text, &[], &[]).unwrap().max_connections_per_ip;
        assert_eq!(per_ip(""), 32);
        assert_eq!(per_ip("max_connections = 4096"), 32);
        assert_eq!(per_ip("max_connections = 100"), 12);
        assert_eq!(per_ip("max_connections = 3"), 1);
        assert_eq!(per_ip("max_connections = 3\nmax_connections_per_ip = 7"), 7);
    }
}
