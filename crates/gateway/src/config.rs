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
    /// Clock skew allowed on `exp`, `nbf` and `iat` between the issuer and the gateway
    /// (seconds, at most 300).
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// The issuer's `acr` values, lowest first, for routes' `acr` (RFC 9470 step-up);
    /// absent: Tessera's (`urn:tessera:acr:pwd`, `urn:tessera:acr:mfa`,
    /// `urn:tessera:acr:phr`). A route's `acr` must be one of them.
    #[serde(default)]
    pub acr_values: Option<Vec<String>>,
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
    /// Forward-auth settings (required with `mode = "forward_auth"`): which proxy asks.
    #[serde(default)]
    pub forward_auth: Option<ForwardAuthConfig>,
    /// Connection limits of the gateway's own listener.
    #[serde(default)]
    pub serving: ServingConfig,
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
    /// Longest time the feed may stay out of reach (no poll read, nothing on the
    /// subscription) before the gateway stops deciding on tokens: past it, requests needing
    /// a token get 503 and `/readyz` 503 until the feed answers again, since revocations
    /// committed meanwhile are unknown. 0 turns this off (revoked tokens then pass while the
    /// feed is down). At least 10 when set (the feed is polled every 5 s).
    #[serde(default = "default_max_staleness")]
    pub max_staleness_secs: u64,
}

impl RevocationConfig {
    /// [`Self::max_staleness_secs`], `None` when off.
    pub fn max_staleness(&self) -> Option<Duration> {
        (self.max_staleness_secs > 0).then(|| Duration::from_secs(self.max_staleness_secs))
    }
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
    /// The `Upgrade` protocols passed to the upstream (a `GET` with `Connection: upgrade`
    /// and exactly one of these, ASCII case ignored). Any other upgrade is dropped and the
    /// request forwarded as a plain one; `h2c` is refused here, since a tunnel to an
    /// HTTP/2 upstream would carry requests the gateway never sees.
    #[serde(default = "default_upgrades")]
    pub upgrades: Vec<String>,
    /// Upgraded connections (WebSockets) open at once; the next upgrade gets 503.
    #[serde(default = "default_max_tunnels")]
    pub max_tunnels: usize,
    /// An upgraded connection with no byte either way for this long is closed (seconds).
    #[serde(default = "default_tunnel_idle_timeout")]
    pub tunnel_idle_timeout_secs: u64,
    /// The longest an upgraded connection stays open (seconds); one opened with a token is
    /// closed at the token's `exp` if that is sooner.
    #[serde(default = "default_tunnel_max_lifetime")]
    pub tunnel_max_lifetime_secs: u64,
    /// The longest a tunnel opened without a token (a public route) stays open (seconds;
    /// `tunnel_max_lifetime_secs` if that is shorter): nothing else ever ends it.
    #[serde(default = "default_tunnel_public_lifetime")]
    pub tunnel_public_lifetime_secs: u64,
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

    /// Refuses values proxy mode cannot run with.
    fn check(&self) -> Result<(), ConfigError> {
        if self.connect_timeout_secs == 0 || self.response_timeout_secs == 0 {
            // hyper-util reads a zero connect timeout as "fail at once" and a zero response
            // timeout would answer 504 to everything: never what was meant.
            return Err(ConfigError::Invalid(
                "proxy: connect_timeout_secs and response_timeout_secs must be above 0".into(),
            ));
        }
        if self.max_tunnels == 0
            || self.tunnel_idle_timeout_secs == 0
            || self.tunnel_max_lifetime_secs == 0
            || self.tunnel_public_lifetime_secs == 0
        {
            return Err(ConfigError::Invalid(
                "proxy: max_tunnels, tunnel_idle_timeout_secs, tunnel_max_lifetime_secs and tunnel_public_lifetime_secs must be above 0 (an empty `upgrades` list turns upgrades off)".into(),
            ));
        }
        for p in &self.upgrades {
            let token = !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
            if !token || p.to_ascii_lowercase().starts_with("h2c") {
                return Err(ConfigError::Invalid(format!(
                    "proxy.upgrades: {p:?} is not allowed (give protocol tokens such as \"websocket\"; h2c is never passed: its tunnel would carry requests the gateway never sees)"
                )));
            }
        }
        Ok(())
    }
}

/// Forward-auth settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// The proxy that sends the sub-requests. It decides which headers carry the original
    /// method and URI; the others are ignored, so a client cannot pick the convention.
    pub proxy: ProxyKind,
    /// Envoy only: the `path_prefix` of Envoy's `http_service`. The check request's path is
    /// this prefix followed by the original path; the gateway's own `/healthz` and metadata
    /// stay outside it. Required with `proxy = "envoy"`.
    #[serde(default)]
    pub envoy_path_prefix: Option<String>,
}

/// The proxy in front of a forward-auth gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyKind {
    /// nginx `auth_request`: `X-Original-Method`, `X-Original-URI`, `X-Forwarded-Host`.
    Nginx,
    /// Traefik `ForwardAuth`: `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host`.
    Traefik,
    /// Envoy `ext_authz` (HTTP service): the check request's own method and path (after
    /// `envoy_path_prefix`) and `Host`.
    Envoy,
}

/// Limits of the gateway's listener, so slow or greedy clients cannot exhaust it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// Longest wait for a request head, also between keep-alive requests (seconds).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// Connections served at once; further ones are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Header lines in one request head; more is answered 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Bytes of one request head; more closes the connection.
    #[serde(default = "default_max_head_bytes")]
    pub max_head_bytes: usize,
    /// On SIGTERM or Ctrl-C, how long running requests may take to finish (seconds).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            header_read_timeout_secs: default_header_read_timeout(),
            max_connections: default_max_connections(),
            max_headers: default_max_headers(),
            max_head_bytes: default_max_head_bytes(),
            shutdown_timeout_secs: default_shutdown_timeout(),
        }
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
    /// The lowest `acr` the token's sign-in must have reached, on the guard's ladder
    /// (Tessera's: `urn:tessera:acr:pwd` < `urn:tessera:acr:mfa` < `urn:tessera:acr:phr`);
    /// below it, or without `acr`, 401 `insufficient_user_authentication` (RFC 9470).
    #[serde(default)]
    pub acr: Option<String>,
    /// The oldest the token's sign-in (`auth_time`) may be, seconds; older, or without
    /// `auth_time`, 401 `insufficient_user_authentication` (RFC 9470).
    #[serde(default)]
    pub max_age_secs: Option<u64>,
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
        if let Some(p) = &self.proxy {
            p.check()?;
        }
        if self.identity.jwt_ttl_secs == 0 {
            return Err(ConfigError::Invalid(
                "identity.jwt_ttl_secs must be above 0 (a JWT would be expired when sent)".into(),
            ));
        }
        if self.mode == Mode::ForwardAuth {
            let Some(fa) = &self.forward_auth else {
                return Err(ConfigError::Invalid(
                    "mode = \"forward_auth\" needs a [forward_auth] section naming the proxy: proxy = \"nginx\", \"traefik\" or \"envoy\"".into(),
                ));
            };
            match (fa.proxy, fa.envoy_path_prefix.as_deref()) {
                (ProxyKind::Envoy, None) => {
                    return Err(ConfigError::Invalid(
                        "forward_auth.proxy = \"envoy\" needs envoy_path_prefix (Envoy's http_service path_prefix, such as \"/check\")".into(),
                    ));
                }
                (ProxyKind::Envoy, Some(p)) => {
                    // Only unreserved characters and `/`: the prefix becomes an axum route,
                    // where `{`, `}` or `*` would be a pattern (or a panic at start).
                    let plain = p.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'/' | b'-')
                    });
                    if !plain
                        || !p.starts_with('/')
                        || p.len() < 2
                        || p.ends_with('/')
                        || crate::routes::check_path(p).is_err()
                    {
                        return Err(ConfigError::Invalid(format!(
                            "forward_auth.envoy_path_prefix {p:?}: give a path such as \"/check\" (starting with /, not ending with one, only letters, digits and . _ ~ - /)"
                        )));
                    }
                }
                (_, Some(_)) => {
                    return Err(ConfigError::Invalid(
                        "forward_auth.envoy_path_prefix is only for proxy = \"envoy\"".into(),
                    ));
                }
                (_, None) => {}
            }
        }
        if let Some(url) = &self.public_base_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#'])) {
                return Err(ConfigError::Invalid(format!(
                    "public_base_url {url:?}: give the API's URL as clients see it: scheme (https or http), host and optional path prefix, such as \"https://api.example\""
                )));
            }
        }
        if self.leeway_secs > 300 {
            return Err(ConfigError::Invalid(
                "leeway_secs must be at most 300 (a larger skew is a clock to fix)".into(),
            ));
        }
        let s = &self.serving;
        if s.header_read_timeout_secs == 0 || s.max_connections == 0 || s.max_headers == 0 {
            return Err(ConfigError::Invalid(
                "serving: header_read_timeout_secs, max_connections and max_headers must be above 0".into(),
            ));
        }
        if s.max_connections > 100_000 {
            return Err(ConfigError::Invalid(
                "serving.max_connections must be at most 100000".into(),
            ));
        }
        if s.max_head_bytes < 8192 {
            return Err(ConfigError::Invalid(
                "serving.max_head_bytes must be at least 8192 (hyper's smallest buffer)".into(),
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
        if let Some(r) = &self.revocation
            && r.max_staleness_secs != 0
            && !(10..=86_400).contains(&r.max_staleness_secs)
        {
            return Err(ConfigError::Invalid(
                "revocation.max_staleness_secs must be 0 (off) or from 10 to 86400 (the feed is polled every 5 s)".into(),
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

fn default_max_staleness() -> u64 {
    300
}

fn default_header_prefix() -> String {
    "X-Auth-".into()
}

fn default_leeway() -> u64 {
    30
}

fn default_header_read_timeout() -> u64 {
    10
}

fn default_max_connections() -> usize {
    1024
}

fn default_max_headers() -> usize {
    100
}

fn default_max_head_bytes() -> usize {
    64 * 1024
}

fn default_shutdown_timeout() -> u64 {
    10
}

fn default_connect_timeout() -> u64 {
    5
}

fn default_response_timeout() -> u64 {
    30
}

fn default_upgrades() -> Vec<String> {
    vec!["websocket".into()]
}

fn default_max_tunnels() -> usize {
    256
}

fn default_tunnel_idle_timeout() -> u64 {
    300
}

fn default_tunnel_max_lifetime() -> u64 {
    3600
}

fn default_tunnel_public_lifetime() -> u64 {
    300
}

fn default_jwt_ttl() -> u64 {
    60
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
listen = "127.0.0.1:0"
mode = "forward_auth"
issuer = "https://as.example"
audience = "api"
[forward_auth]
proxy = "nginx"
"#;

    fn err(extra: &str, replace: (&str, &str)) -> String {
        let text = format!("{BASE}{extra}").replace(replace.0, replace.1);
        match GatewayConfig::parse(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_key_and_the_fix() {
        assert!(GatewayConfig::parse(BASE).is_ok());
        assert!(err("", ("[forward_auth]\nproxy = \"nginx\"", "")).contains("[forward_auth]"));
        assert!(err("", ("proxy = \"nginx\"", "proxy = \"envoy\"")).contains("envoy_path_prefix"));
        assert!(
            err(
                "envoy_path_prefix = \"/\"\n",
                ("proxy = \"nginx\"", "proxy = \"envoy\"")
            )
            .contains("envoy_path_prefix")
        );
        for bad in ["/c{", "/c}", "/c*x", "/c:x", "/c%41", "check", "/c/../d"] {
            assert!(
                err(
                    &format!("envoy_path_prefix = \"{bad}\"\n"),
                    ("proxy = \"nginx\"", "proxy = \"envoy\"")
                )
                .contains("envoy_path_prefix"),
                "{bad}"
            );
        }
        assert!(err("envoy_path_prefix = \"/check\"\n", ("", "")).contains("only for"));
        assert!(
            err(
                "",
                (
                    "audience = \"api\"",
                    "audience = \"api\"\npublic_base_url = \"api.example\""
                )
            )
            .contains("public_base_url")
        );
        assert!(
            err(
                "",
                (
                    "audience = \"api\"",
                    "audience = \"api\"\nleeway_secs = 301"
                )
            )
            .contains("leeway_secs")
        );
        assert!(err("[serving]\nmax_connections = 0\n", ("", "")).contains("max_connections"));
        for bad in ["5", "9", "86401"] {
            assert!(
                err(
                    &format!("[revocation]\nclient_id = \"rs\"\nclient_secret_env = \"S\"\nmax_staleness_secs = {bad}\n"),
                    ("", "")
                )
                .contains("max_staleness_secs"),
                "{bad}"
            );
        }
        assert!(err("[serving]\nmax_head_bytes = 100\n", ("", "")).contains("max_head_bytes"));
        assert!(err("", ("audience", "audiense")).contains("audiense"));
    }

    const PROXY: &str = r#"
listen = "127.0.0.1:0"
mode = "proxy"
issuer = "https://as.example"
audience = "api"
[proxy]
upstream = "http://127.0.0.1:8000"
"#;

    #[test]
    fn zero_proxy_timeouts_tunnel_limits_h2c_and_a_zero_jwt_lifetime_are_refused() {
        assert!(GatewayConfig::parse(PROXY).is_ok());
        for (extra, key) in [
            ("connect_timeout_secs = 0\n", "connect_timeout_secs"),
            ("response_timeout_secs = 0\n", "response_timeout_secs"),
        ] {
            match GatewayConfig::parse(&format!("{PROXY}{extra}")) {
                Ok(_) => panic!("accepted {extra}"),
                Err(e) => assert!(e.to_string().contains(key), "{e}"),
            }
        }
        for (extra, key) in [
            ("max_tunnels = 0\n", "max_tunnels"),
            ("tunnel_idle_timeout_secs = 0\n", "tunnel_idle_timeout_secs"),
            ("tunnel_max_lifetime_secs = 0\n", "tunnel_max_lifetime_secs"),
            (
                "tunnel_public_lifetime_secs = 0\n",
                "tunnel_public_lifetime_secs",
            ),
            ("upgrades = [\"h2c\"]\n", "h2c"),
            ("upgrades = [\"H2C\"]\n", "h2c"),
            ("upgrades = [\"websocket, h2c\"]\n", "upgrades"),
            ("upgrades = [\"\"]\n", "upgrades"),
        ] {
            match GatewayConfig::parse(&format!("{PROXY}{extra}")) {
                Ok(_) => panic!("accepted {extra}"),
                Err(e) => assert!(e.to_string().contains(key), "{e}"),
            }
        }
        assert!(GatewayConfig::parse(&format!("{PROXY}upgrades = []\n")).is_ok());
        let zero_ttl = PROXY.replace(
            "[proxy]",
            "[identity]\njwt = true\njwt_ttl_secs = 0\n[proxy]",
        );
        match GatewayConfig::parse(&zero_ttl) {
            Ok(_) => panic!("accepted jwt_ttl_secs = 0"),
            Err(e) => assert!(e.to_string().contains("jwt_ttl_secs"), "{e}"),
        }
        assert!(
            GatewayConfig::parse(&format!(
                "{PROXY}connect_timeout_secs = 1\nresponse_timeout_secs = 1\n"
            ))
            .is_ok()
        );
    }
}
