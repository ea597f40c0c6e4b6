//! Server configuration: typed, layered once (defaults < TOML file < `TESSERA_*`
//! environment variables < command-line flags), validated once at start-up. A bad value is
//! one line naming the key, the rule and where to set it.
//!
//! [`ServerConfig`] is a set of sections, one per kind of consumer ([`ServingConfig`] for
//! the listeners, [`TokenConfig`] for the grants, [`LoginConfig`] for the password checks,
//! ...), each resolved from the layered [`FileConfig`] by its own function in its own file,
//! so a consumer can be handed just its section.
//!
//! Adding an option: a field in [`FileConfig`] (it is then settable from the file, the
//! environment and `--set`), its documented line in `config/example.toml` (a test checks
//! every field is there), and its checked value in the section that uses it.

mod browser;
mod dpop;
mod file;
mod layers;
mod login;
mod problems;
mod serving;
mod signing;
mod store;
mod tokens;

use std::path::{Path, PathBuf};

pub use browser::BrowserConfig;
pub use dpop::DpopConfig;
pub use file::FileConfig;
pub use layers::{env_var, fields, layer, unknown_env_vars};
pub use login::{DEFAULT_HASH_QUEUE, HashPriority, LoginConfig, MfaMode, ThrottlePolicy};
pub(crate) use problems::{Problems, invalid};
pub use serving::{
    DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS, MetricsConfig, ServingConfig, TlsFiles,
    is_loopback_host, validate_issuer,
};
pub use signing::{SigningConfig, max_token_life};
pub use store::{DEFAULT_DATA_DIR, DatabaseUrl, StoreConfig};
pub use tokens::{MAX_REFRESH_GRACE, RevocationConfig, TokenConfig};

use crate::Error;

/// `tessera config example`: every key, commented, with its default.
pub const EXAMPLE: &str = include_str!("config/example.toml");

/// Seconds in a day, for the defaults and bounds of the sections.
const DAY: u64 = 86_400;

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

/// The validated configuration, one section per kind of consumer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory, database, client cache, audit retention.
    pub store: StoreConfig,
    /// Listen address, issuer, TLS, proxies, connection limits, timeouts, shutdown.
    pub serving: ServingConfig,
    /// The `/metrics` listener and token.
    pub metrics: MetricsConfig,
    /// CORS origins, HSTS, the browser sign-in session.
    pub browser: BrowserConfig,
    /// Lifetimes of tokens and codes, refresh reuse grace.
    pub tokens: TokenConfig,
    /// Signing algorithm, key rotation, JWKS caching, key reloads.
    pub signing: SigningConfig,
    /// Password hashing and failed-login throttling.
    pub login: LoginConfig,
    /// The `/revoke` rate limit.
    pub revocation: RevocationConfig,
    /// DPoP proofs at the token endpoint: `iat` window, leeway, nonces.
    pub dpop: DpopConfig,
}

impl ServerConfig {
    /// The file (if any), `TESSERA_*` variables of the process, `--set` assignments and
    /// `o`, layered and validated: every problem of every layer, one line each.
    pub fn load(path: Option<&Path>, sets: &[String], o: Overrides) -> Result<ServerConfig, Error> {
        let mut p = Problems::default();
        let file = layers::layer_into(path, &|var| std::env::var(var).ok(), sets, &mut p)?;
        let config = Self::resolve_into(&file, &o, &mut p);
        p.finish().map(|()| config)
    }

    /// Layers defaults, the file and the overrides, and validates the result. Every
    /// problem is reported, one line each ([`Error::Config`] with one line per problem).
    pub fn resolve(file: FileConfig, o: Overrides) -> Result<Self, Error> {
        let mut p = Problems::default();
        let config = Self::resolve_into(&file, &o, &mut p);
        p.finish().map(|()| config)
    }

    /// [`ServerConfig::resolve`]'s work, section by section (so problems are reported
    /// section by section, in this order): a bad value is recorded in `p` and its default
    /// used in its place, so the later checks still run.
    fn resolve_into(f: &FileConfig, o: &Overrides, p: &mut Problems) -> Self {
        let store = StoreConfig::resolve(f, o, p);
        let serving = ServingConfig::resolve(f, o, p);
        let metrics = MetricsConfig::resolve(f, serving.listen, p);
        let browser = BrowserConfig::resolve(f, p);
        let tokens = TokenConfig::resolve(f, p);
        let signing = SigningConfig::resolve(f, &tokens, p);
        ServerConfig {
            store,
            serving,
            metrics,
            browser,
            tokens,
            signing,
            login: LoginConfig::resolve(f, p),
            revocation: RevocationConfig::resolve(f, p),
            dpop: DpopConfig::resolve(f, p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.serving.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.tokens.access_token_ttl.as_secs(), 600);
        assert_eq!(
            c.serving.issuer_for(c.serving.listen),
            "http://127.0.0.1:8080"
        );
        let file: FileConfig = toml::from_str("refresh_reuse_grace_secs = 61").unwrap();
        assert!(ServerConfig::resolve(file, Overrides::default()).is_err());
        assert!(toml::from_str::<FileConfig>("unknown = 1").is_err());
        assert_eq!(c.store.audit_retention.as_secs(), 90 * 86_400);
        let file: FileConfig = toml::from_str("audit_retention_days = 0").unwrap();
        assert!(ServerConfig::resolve(file, Overrides::default()).is_err());
        assert!(c.store.database.is_none());
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
    fn mfa_is_optional_unless_set_and_a_wrong_value_names_the_choices() {
        let c = ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.login.mfa, MfaMode::Optional);
        let c = resolve_text("mfa = \"required\"\n", &[], &[]).unwrap();
        assert_eq!(c.login.mfa, MfaMode::Required);
        let c = resolve_text("", &[("TESSERA_MFA", "off")], &[]).unwrap();
        assert_eq!(c.login.mfa, MfaMode::Off);
        let e = resolve_text("mfa = \"sometimes\"\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("mfa = \"sometimes\" is invalid"), "{e}");
        assert!(e.contains("\"off\", \"optional\" or \"required\""), "{e}");
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
        assert_eq!(c.tokens.access_token_ttl.as_secs(), 900, "env beats file");
        assert_eq!(c.login.throttle.per_ip, 11, "--set beats env");
        assert_eq!(c.login.throttle.per_account, 3, "file beats default");
        assert_eq!(
            c.browser.cors_allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        // A dedicated flag (Overrides) beats the environment too.
        const LISTEN: &[(&str, &str)] = &[("TESSERA_LISTEN", "127.0.0.1:9000")];
        let f = layer(None, &env_of(LISTEN), &[]).unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:9001".into()),
            ..Overrides::default()
        };
        assert_eq!(
            ServerConfig::resolve(f, o).unwrap().serving.listen.port(),
            9001
        );
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
            // Shorter than the activation lead (a day + an hour + 1 s) + the token life.
            (
                "jwks_cache_ttl_secs = 86400\nkey_refresh_interval_secs = 3600\n\
                 key_rotation_period_secs = 88000",
                "key_rotation_period_secs",
            ),
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
        let _ = ServerConfig::resolve_into(&f, &Overrides::default(), &mut p);
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
        assert!(
            c.serving.tls.is_some()
                && c.store.database.is_some()
                && !c.serving.trusted_proxies.is_empty()
        );
    }

    #[test]
    fn trusted_proxies_match_addresses_and_networks() {
        let c = resolve_text(
            "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]",
            &[],
            &[],
        )
        .unwrap();
        assert!(c.serving.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(c.serving.is_trusted_proxy("192.0.2.7".parse().unwrap()));
        assert!(c.serving.is_trusted_proxy("::1".parse().unwrap()));
        assert!(!c.serving.is_trusted_proxy("192.0.2.8".parse().unwrap()));
    }

    /// Review item 2: one source may hold a quarter of the slots unless configured.
    #[test]
    fn max_connections_per_ip_defaults_to_32_and_at_most_an_eighth_of_max_connections() {
        let per_ip = |text: &str| {
            resolve_text(text, &[], &[])
                .unwrap()
                .serving
                .max_connections_per_ip
        };
        assert_eq!(per_ip(""), 32);
        assert_eq!(per_ip("max_connections = 4096"), 32);
        assert_eq!(per_ip("max_connections = 100"), 12);
        assert_eq!(per_ip("max_connections = 3"), 1);
        assert_eq!(per_ip("max_connections = 3\nmax_connections_per_ip = 7"), 7);
    }
}
