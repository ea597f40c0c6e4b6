//! Small HTTP helpers shared by the remote verifiers and the feed client: URL policy,
//! a locked-down client, bounded body reads, `Cache-Control`, client authentication.

use std::time::Duration;

use base64::Engine;
use http::HeaderValue;
use url::Url;

use crate::{BuildError, FetchError};

/// Largest response body read from the authorization server.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// https, or plain http to a loopback host (development).
pub(crate) fn url_allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// True when a `Host` header value (host and optional port) names a loopback host.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    Url::parse(&format!("http://{host}/"))
        .is_ok_and(|u| u.path() == "/" && u.username().is_empty() && url_allowed(&u))
}

/// Parses and checks a configured URL.
pub(crate) fn config_url(s: &str, field: &'static str) -> Result<Url, BuildError> {
    let url = Url::parse(s).map_err(|_| BuildError::InvalidUrl { field })?;
    if !url_allowed(&url) {
        return Err(BuildError::InsecureUrl { field });
    }
    Ok(url)
}

/// A client with timeouts and no redirects (a redirect could lead to plain http).
pub(crate) fn default_client() -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| BuildError::HttpClient(e.to_string()))
}

pub(crate) fn transport(e: &reqwest::Error) -> FetchError {
    // Without the URL: it may carry query parameters; the caller logs which endpoint.
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    FetchError::Transport(kind.into())
}

/// Reads at most [`MAX_BODY`] bytes of a successful response.
pub(crate) async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|l| l > MAX_BODY as u64) {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `max-age` from `Cache-Control`; `no-store`/`no-cache` count as zero.
pub(crate) fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let mut age = None;
    for v in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(v) = v.to_str() else { continue };
        for d in v.split(',').map(str::trim) {
            if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if let Some((k, n)) = d.split_once('=')
                && k.trim().eq_ignore_ascii_case("max-age")
                && let Ok(n) = n.trim().trim_matches('"').parse::<u64>()
            {
                age = Some(Duration::from_secs(n));
            }
        }
    }
    age
}

/// HTTP Basic client authentication per RFC 6749 section 2.3.1 (id and secret are
/// form-urlencoded first). The value is marked sensitive.
pub(crate) fn basic_auth(client_id: &str, secret: &str) -> HeaderValue {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(client_id), enc(secret));
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut v = HeaderValue::from_str(&format!("Basic {b64}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    v.set_sensitive(true);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://auth.example",
            "http://127.0.0.1:8080",
            "http://localhost/x",
            "http://[::1]:1",
        ] {
            assert!(url_allowed(&Url::parse(ok).unwrap()), "{ok}");
        }
        for bad in ["http://auth.example", "http://10.0.0.1", "ftp://127.0.0.1"] {
            assert!(!url_allowed(&Url::parse(bad).unwrap()), "{bad}");
        }
    }

    #[test]
    fn cache_control_max_age() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert("cache-control", "public, max-age=300".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::from_secs(300)));
        h.insert("cache-control", "no-store".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::ZERO));
    }
}
