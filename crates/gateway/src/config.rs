//! The gateway's TOML file: issuer and audience, the mode, the route table, which claims
//! reach the upstream, and the revocation feed's credentials. Unknown keys are refused, so a
//! misspelt option is a start-up error rather than a silent default.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// How requests reach the gateway.
    pub mode: Mode,
    /// The issuer URL (https, or http on loopback): discovery, JWKS and the revocation feed
    /// come from it.
    pub issuer: String,
    /// The audience (resource) the protected API accepts: the `aud` its tokens must name.
    pub audience: String,
    /// The API's public URL as clients see it (scheme, host, port), for DPoP `htu` and the
    /// RFC 9728 metadata. Without it the request's `Host` is used (a WARN at start-up).
    #[serde(default)]
    pub public_base_url: Option<String>,
    /// The realm named in `WWW-Authenticate` challenges.
    #[serde(default)]
    pub realm: Option<String>,
    /// The verified-token cache capacity (0 verifies every request's signature).
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: usize,
    /// Revocation feed credentials; without them revoked tokens stay valid until they expire.
    #[serde(default)]
    pub revocation: Option<RevocationConfig>,
    /// What the upstream learns about the caller.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Reverse-proxy settings (required with `mode = "proxy"`).
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    /// The route table: the first route whose method and path match decides. A request no
    /// route matches is refused (403) unless `default` says otherwise.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// What a request no route matches needs.
    #[serde(default)]
    pub default: DefaultRoute,
}

/// How requests reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Answers a proxy's authorization sub-request: 2xx with identity headers, or the
    /// guard's 401/403 with its challenge.
    ForwardAuth,
    /// Forwards authorized requests to `proxy.upstream` itself.
    Proxy,
}

/// The revocation feed subscription (a confidential client of the issuer).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// The client id.
    pub client_id: String,
    /// The environment variable holding the client secret (never the secret itself: the
    /// file may be world-readable and is shown by `--check`).
    pub client_secret_env: String,
}

/// What the upstream learns about the caller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The prefix of every identity header (`X-Auth-` gives `X-Auth-Subject`,
    /// `X-Auth-Scope`, `X-Auth-Client-Id`, `X-Auth-Claim-<name>`). Any incoming header with
    /// this prefix is removed before the gateway adds its own.
    #[serde(default = "default_header_prefix")]
    pub header_prefix: String,
    /// Further claims to forward as `<prefix>Claim-<name>` (string, number or boolean
    /// claims; others are skipped).
    #[serde(default)]
    pub claims: Vec<String>,
    /// Forward the caller's `Authorization` (and `DPoP`) header to the upstream. Off by
    /// default: the upstream gets the identity, not a working token.
    #[serde(default)]
    pub forward_token: bool,
    /// Proxy mode: also send a short-lived identity JWT signed by the gateway in
    /// `<prefix>Identity`, verifiable with the gateway's JWKS at
    /// `/.well-known/tessera-gateway/jwks.json` (see docs/gateway.md, Reverse proxy).
    #[serde(default)]
    pub jwt: bool,
    /// The identity JWT's lifetime in seconds.
    #[serde(default = "default_jwt_ttl")]
    pub jwt_ttl_secs: u64,
    /// A PKCS#8 PEM private key (ES256, EdDSA or RS256) to sign identity JWTs with; without
    /// it the gateway generates an ES256 key at start-up (then the key, and its `kid`,
    /// change at every restart: upstreams must refetch the JWKS on an unknown `kid`).
    #[serde(default)]
    pub jwt_key_file: Option<std::path::PathBuf>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            header_prefix: default_header_prefix(),
            claims: Vec::new(),
            forward_token: false,
            jwt: false,
            jwt_ttl_secs: default_jwt_ttl(),
            jwt_key_file: None,
        }
    }
}

/// Reverse-proxy settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The upstream's base URL (`http://127.0.0.1:8000`).
    pub upstream: String,
    /// Connecting to the upstream, in seconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Waiting for the upstream's response head, in seconds.
    #[serde(default = "default_response_timeout")]
    pub response_timeout_secs: u64,
    /// Keep an incoming `X-Forwarded-For` and append the client's address to it, and keep
    /// incoming `X-Forwarded-Proto`/`-Host`/`Forwarded`. Only when every client reaches the
    /// gateway through a proxy you run; by default they are replaced, since a client could
    /// write anything in them.
    #[serde(default)]
    pub trust_forwarded: bool,
    /// Largest request body passed to the upstream, in bytes (a larger `Content-Length` gets
    /// 413 before the upstream is contacted; a chunked body is cut off there). No limit by
    /// default: bodies are streamed, never held whole.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
}

impl ProxyConfig {
    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The response-head timeout.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_secs(self.response_timeout_secs)
    }
}

/// One route: methods and a path prefix, and what they need.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Methods this route covers (upper case); empty = every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// A path prefix matched on whole segments: `/notes` covers `/notes` and `/notes/7`,
    /// not `/notes-admin`.
    pub path: String,
    /// No token needed (the request passes without identity headers).
    #[serde(default)]
    pub public: bool,
    /// Scopes the token must all have.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `"allow"` (bearer or DPoP, the default) or `"require"` (a DPoP-bound token with its
    /// proof).
    #[serde(default)]
    pub dpop: DpopRule,
}

/// Whether a route requires DPoP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopRule {
    /// Bearer tokens and DPoP-bound tokens with their proofs.
    #[default]
    Allow,
    /// Only DPoP-bound tokens with their proofs.
    Require,
}

/// What a request no route matches needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultRoute {
    /// Refused with 403 (the default: a forgotten route is closed, not open).
    #[default]
    Deny,
    /// Any valid token, no scope.
    Authenticated,
}

/// A configuration the gateway cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or inconsistent with another.
    #[error("{0}")]
    Invalid(String),
}

impl GatewayConfig {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
        let config: GatewayConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            source: Box::new(e),
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.mode == Mode::Proxy && self.proxy.is_none() {
            return Err(ConfigError::Invalid(
                "mode = \"proxy\" needs a [proxy] section with `upstream`".into(),
            ));
        }
        if !self.identity.header_prefix.is_empty()
            && http::HeaderName::from_bytes(self.identity.header_prefix.as_bytes()).is_err()
        {
            return Err(ConfigError::Invalid(format!(
                "identity.header_prefix {:?} is not a header name",
                self.identity.header_prefix
            )));
        }
        if self.identity.header_prefix.len() < 2 {
            return Err(ConfigError::Invalid(
                "identity.header_prefix must be at least two characters (it also selects which incoming headers are removed)".into(),
            ));
        }
        for route in &self.routes {
            crate::routes::check_route(route).map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }
}

fn default_cache_capacity() -> usize {
    10_000
}

fn default_header_prefix() -> String {
    "X-Auth-".into()
}

fn default_connect_timeout() -> u64 {
    5
}

fn default_response_timeout() -> u64 {
    30
}

fn default_jwt_ttl() -> u64 {
    60
}
