//! The serving and metrics sections: where the server listens and how it is reached
//! (address, issuer, TLS, trusted proxies), its connection limits, timeouts and shutdown,
//! and the `/metrics` listener.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{FileConfig, Overrides, Problems, invalid};
use crate::Error;

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

/// The certificate and key files of the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// How the server is reached and how it serves connections: for `server` and `serving`,
/// and `http::peer` (who the client is).
#[derive(Debug, Clone)]
pub struct ServingConfig {
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Issuer; `None` derives `http(s)://ADDR` from the bound address.
    pub issuer: Option<String>,
    /// HTTPS certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP allowed on a non-loopback address.
    pub dangerous_allow_http: bool,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
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
    /// Cap on the open connections of one source (not the trusted proxies).
    pub max_connections_per_ip: usize,
}

impl ServingConfig {
    /// The serving keys of `f`, with the dedicated flags of `o` on top.
    pub(super) fn resolve(f: &FileConfig, o: &Overrides, p: &mut Problems) -> Self {
        let listen_s = o
            .listen
            .clone()
            .or_else(|| f.listen.clone())
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
        let issuer = o
            .issuer
            .as_ref()
            .or(f.issuer.as_ref())
            .and_then(|i| p.take(validate_issuer(i)));
        let tls = tls_files(f, o, p);
        let trusted_proxies = f
            .trusted_proxies
            .iter()
            .flatten()
            .filter_map(|n| p.take(parse_net(n)))
            .collect();
        ServingConfig {
            listen,
            issuer,
            tls,
            dangerous_allow_http: o.dangerous_allow_http || f.dangerous_allow_http.unwrap_or(false),
            trusted_proxies,
            shutdown_timeout: p.secs(
                "shutdown_timeout_secs",
                f.shutdown_timeout_secs,
                30,
                1,
                3600,
            ),
            shutdown_delay: p.secs("shutdown_delay_secs", f.shutdown_delay_secs, 5, 0, 600),
            header_read_timeout: p.secs(
                "header_read_timeout_secs",
                f.header_read_timeout_secs,
                10,
                1,
                300,
            ),
            request_timeout: p.secs("request_timeout_secs", f.request_timeout_secs, 30, 1, 3600),
            max_connections: p.within(
                "max_connections",
                f.max_connections,
                DEFAULT_MAX_CONNECTIONS,
                1,
                MAX_MAX_CONNECTIONS,
            ),
            max_connections_per_ip: p.within(
                "max_connections_per_ip",
                f.max_connections_per_ip,
                default_per_ip(f.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)),
                1,
                MAX_MAX_CONNECTIONS,
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

/// The `/metrics` endpoint: for `server` (its listener) and `http` (its route and token).
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Separate listen address of `/metrics`; `None`: served on the main listener.
    pub metrics_listen: Option<SocketAddr>,
    /// File holding the bearer token `/metrics` requires; `None`: no token.
    pub metrics_token_file: Option<PathBuf>,
}

impl MetricsConfig {
    /// The metrics keys of `f`; `listen` is the main listen address, which
    /// `metrics_listen` must differ from.
    pub(super) fn resolve(f: &FileConfig, listen: SocketAddr, p: &mut Problems) -> Self {
        let metrics_listen = f.metrics_listen.as_ref().and_then(|m| {
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
        MetricsConfig {
            metrics_listen,
            metrics_token_file: f.metrics_token_file.clone(),
        }
    }
}

/// The certificate and key: both or neither.
fn tls_files(f: &FileConfig, o: &Overrides, p: &mut Problems) -> Option<TlsFiles> {
    let cert = o.tls_cert.as_ref().or(f.tls_cert.as_ref());
    let key = o.tls_key.as_ref().or(f.tls_key.as_ref());
    match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;

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
        assert!(!c("127.0.0.1:0", false).serving.check_transport().unwrap());
        assert!(!c("[::1]:0", false).serving.check_transport().unwrap());
        let e = c("0.0.0.0:8080", false)
            .serving
            .check_transport()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--dangerous-allow-http") && e.contains("tls_cert"),
            "{e}"
        );
        assert!(c("0.0.0.0:8080", true).serving.check_transport().unwrap());
    }
}
