//! Rebuilding the client's request head from a proxy's authorization sub-request. Which
//! headers carry the original method and URI is fixed by the configured proxy kind, never
//! guessed from the request: nginx `X-Original-Method` / `X-Original-URI` (set by the
//! documented snippet), Traefik `X-Forwarded-Method` / `X-Forwarded-Uri`, Envoy the check
//! request's own method and path after `envoy_path_prefix`. Anything missing, repeated,
//! oversized, not visible ASCII or not an origin-form URI is refused (400), never guessed.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Uri};

use crate::config::ProxyKind;

/// Longest original URI accepted (bytes), like common servers' request-line limits.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// Where the original request is read from.
#[derive(Debug, Clone)]
pub struct Source {
    kind: ProxyKind,
    envoy_prefix: String,
}

/// Why the original request could not be read (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the original request: {0}")]
pub struct Garbled(pub &'static str);

/// The headers that describe the original request for a proxy kind (not copied into the
/// rebuilt head: the guard must see the client's headers, not the proxy's).
const NGINX: [&str; 3] = ["x-original-method", "x-original-uri", "x-forwarded-host"];
const TRAEFIK: [&str; 4] = [
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-forwarded-host",
    "x-forwarded-proto",
];

impl Source {
    /// For `kind`; `envoy_prefix` is the configured `envoy_path_prefix` (Envoy only).
    pub fn new(kind: ProxyKind, envoy_prefix: Option<&str>) -> Source {
        Source {
            kind,
            envoy_prefix: envoy_prefix.unwrap_or_default().to_owned(),
        }
    }

    /// The proxy kind.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The client's request head as the proxy describes it in `check`: method, origin-form
    /// URI, `Host` (for the DPoP `htu` when no `public_base_url` is set), and every other
    /// header of the sub-request (the client's `Authorization`, `DPoP`, `Cookie`, ...).
    pub fn original(&self, check: &Parts) -> Result<Parts, Garbled> {
        let (method, uri, host, skip): (Method, Uri, Option<HeaderValue>, &[&str]) = match self.kind
        {
            ProxyKind::Nginx => (
                method(one(&check.headers, "x-original-method")?)?,
                origin_form(one(&check.headers, "x-original-uri")?)?,
                at_most_one(&check.headers, "x-forwarded-host")?,
                &NGINX,
            ),
            ProxyKind::Traefik => (
                method(one(&check.headers, "x-forwarded-method")?)?,
                origin_form(one(&check.headers, "x-forwarded-uri")?)?,
                at_most_one(&check.headers, "x-forwarded-host")?,
                &TRAEFIK,
            ),
            ProxyKind::Envoy => (
                check.method.clone(),
                self.envoy_uri(&check.uri)?,
                at_most_one(&check.headers, "host")?,
                &[],
            ),
        };
        let mut headers = HeaderMap::with_capacity(check.headers.len());
        for (name, value) in &check.headers {
            if !copied(name, skip) {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        if let Some(host) = host {
            headers.insert(header::HOST, host);
        }
        let mut parts = Request::new(()).into_parts().0;
        parts.method = method;
        parts.uri = uri;
        parts.headers = headers;
        Ok(parts)
    }

    /// Envoy's check path is `envoy_path_prefix` followed by the original path and query.
    fn envoy_uri(&self, uri: &Uri) -> Result<Uri, Garbled> {
        let full = uri
            .path_and_query()
            .map_or(uri.path(), PathAndQuery::as_str);
        let rest = full
            .strip_prefix(self.envoy_prefix.as_str())
            .filter(|r| r.starts_with('/'))
            .ok_or(Garbled("the check path is not under envoy_path_prefix"))?;
        origin_form(rest)
    }
}

/// Headers not copied into the rebuilt head: the convention's own, hop-by-hop ones and
/// the sub-request's `Host` and framing (the original `Host` is set separately).
fn copied(name: &HeaderName, skip: &[&str]) -> bool {
    !(skip.contains(&name.as_str())
        || name == header::HOST
        || name == header::CONNECTION
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::UPGRADE)
}

/// The one value of `name`, as visible ASCII within [`MAX_URI_LEN`].
fn one<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Garbled> {
    let value = single(headers, name)?.ok_or(Garbled(
        "a header naming the original method or URI is missing",
    ))?;
    text(value)
}

/// `name`'s value if it came once (checked like [`one`]), `None` if not at all.
fn at_most_one(headers: &HeaderMap, name: &'static str) -> Result<Option<HeaderValue>, Garbled> {
    match single(headers, name)? {
        Some(v) => text(v).map(|_| Some(v.clone())),
        None => Ok(None),
    }
}

/// The only value of `name`, if any; an error if it came twice.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a HeaderValue>, Garbled> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Garbled("a header naming the original request came twice"));
    }
    Ok(first)
}

fn text(value: &HeaderValue) -> Result<&str, Garbled> {
    if value.len() > MAX_URI_LEN {
        return Err(Garbled("the original request's header is too long"));
    }
    let s = value
        .to_str()
        .map_err(|_| Garbled("the original request's header is not visible ASCII"))?;
    if s.is_empty() || s.trim() != s {
        return Err(Garbled("the original request's header is empty or padded"));
    }
    Ok(s)
}

fn method(s: &str) -> Result<Method, Garbled> {
    if !s.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Garbled(
            "the original method is not an upper-case method name",
        ));
    }
    Method::from_bytes(s.as_bytes()).map_err(|_| Garbled("the original method is not a method"))
}

/// An origin-form request target (`/path?query`): absolute-form, authority-form, `*`
/// and fragments are refused, so the path the gateway judges is the path the upstream gets.
fn origin_form(s: &str) -> Result<Uri, Garbled> {
    if !s.starts_with('/') || s.starts_with("//") {
        return Err(Garbled("the original URI is not origin-form (/path?query)"));
    }
    if s.contains('#') {
        return Err(Garbled("the original URI has a fragment"));
    }
    let pq: PathAndQuery = s
        .parse()
        .map_err(|_| Garbled("the original URI does not parse"))?;
    if pq.as_str() != s {
        return Err(Garbled("the original URI does not parse as sent"));
    }
    Uri::from_parts({
        let mut p = http::uri::Parts::default();
        p.path_and_query = Some(pq);
        p
    })
    .map_err(|_| Garbled("the original URI does not parse"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: &str, uri: &str, headers: &[(&str, &[u8])]) -> Parts {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, HeaderValue::from_bytes(v).unwrap());
        }
        b.body(()).unwrap().into_parts().0
    }

    fn nginx() -> Source {
        Source::new(ProxyKind::Nginx, None)
    }

    fn traefik() -> Source {
        Source::new(ProxyKind::Traefik, None)
    }

    #[test]
    fn nginx_headers_give_method_uri_host_and_the_clients_headers() {
        let p = nginx()
            .original(&check(
                "GET",
                "/auth",
                &[
                    ("x-original-method", b"POST"),
                    ("x-original-uri", b"/notes/7?x=1"),
                    ("x-forwarded-host", b"api.example"),
                    ("host", b"127.0.0.1:9000"),
                    ("authorization", b"Bearer abc"),
                    ("dpop", b"proof"),
                ],
            ))
            .unwrap();
        assert_eq!(p.method, Method::POST);
        assert_eq!(p.uri, "/notes/7?x=1");
        assert_eq!(p.headers["host"], "api.example");
        assert_eq!(p.headers["authorization"], "Bearer abc");
        assert_eq!(p.headers["dpop"], "proof");
        assert!(!p.headers.contains_key("x-original-uri"));
    }

    #[test]
    fn each_kind_ignores_the_other_kinds_headers() {
        // A client's X-Original-URI behind Traefik (which passes client headers on) is
        // not where the original URI is read from, and vice versa.
        let headers: &[(&str, &[u8])] = &[
            ("x-forwarded-method", b"GET"),
            ("x-forwarded-uri", b"/public"),
            ("x-original-method", b"GET"),
            ("x-original-uri", b"/admin"),
        ];
        let t = traefik().original(&check("GET", "/auth", headers)).unwrap();
        assert_eq!(t.uri, "/public");
        let n = nginx().original(&check("GET", "/auth", headers)).unwrap();
        assert_eq!(n.uri, "/admin");
        // Only the other kind's headers: refused, never a default.
        let only_original: &[(&str, &[u8])] = &[
            ("x-original-method", b"GET"),
            ("x-original-uri", b"/public"),
        ];
        assert!(
            traefik()
                .original(&check("GET", "/auth", only_original))
                .is_err()
        );
        let only_forwarded: &[(&str, &[u8])] = &[
            ("x-forwarded-method", b"GET"),
            ("x-forwarded-uri", b"/public"),
        ];
        assert!(
            nginx()
                .original(&check("GET", "/auth", only_forwarded))
                .is_err()
        );
    }

    #[test]
    fn missing_duplicate_oversized_or_garbled_originals_are_refused() {
        let long = format!("/{}", "a".repeat(MAX_URI_LEN));
        let cases: Vec<Vec<(&str, &[u8])>> = vec![
            vec![("x-original-uri", b"/notes")],
            vec![("x-original-method", b"GET")],
            vec![
                ("x-original-method", b"GET"),
                ("x-original-uri", b"/notes"),
                ("x-original-uri", b"/public"),
            ],
            vec![
                ("x-original-method", b"GET"),
                ("x-original-method", b"POST"),
                ("x-original-uri", b"/notes"),
            ],
            vec![
                ("x-original-method", b"GET"),
                ("x-original-uri", long.as_bytes()),
            ],
            vec![
                ("x-original-method", b"GET"),
                ("x-original-uri", b"http://evil/notes"),
            ],
            vec![
                ("x-original-method", b"GET"),
                ("x-original-uri", b"//evil/notes"),
            ],
            vec![("x-original-method", b"GET"), ("x-original-uri", b"*")],
            vec![("x-original-method", b"GET"), ("x-original-uri", b"notes")],
            vec![
                ("x-original-method", b"GET"),
                ("x-original-uri", b"/notes#frag"),
            ],
            vec![
                ("x-original-method", b"GET"),
                ("x-original-uri", b"/no\xc3\xa9s"),
            ],
            vec![("x-original-method", b"GET"), ("x-original-uri", b"/a b")],
            vec![("x-original-method", b"GET"), ("x-original-uri", b"")],
            vec![("x-original-method", b"get"), ("x-original-uri", b"/notes")],
            vec![("x-original-method", b"G(T"), ("x-original-uri", b"/notes")],
            vec![
                ("x-original-method", b"GET"),
                ("x-original-uri", b"/notes"),
                ("x-forwarded-host", b"a"),
                ("x-forwarded-host", b"b"),
            ],
        ];
        for headers in cases {
            let r = nginx().original(&check("GET", "/auth", &headers));
            assert!(r.is_err(), "{headers:?} gave {r:?}");
        }
    }

    #[test]
    fn envoy_reads_its_own_method_and_path_under_the_prefix() {
        let envoy = Source::new(ProxyKind::Envoy, Some("/check"));
        let p = envoy
            .original(&check(
                "DELETE",
                "/check/notes/7?x=1",
                &[("host", b"api.example"), ("x-original-uri", b"/public")],
            ))
            .unwrap();
        assert_eq!(p.method, Method::DELETE);
        assert_eq!(p.uri, "/notes/7?x=1");
        assert_eq!(p.headers["host"], "api.example");
        for outside in ["/checknotes", "/notes", "/check", "/check?x=/a"] {
            assert!(
                envoy.original(&check("GET", outside, &[])).is_err(),
                "{outside}"
            );
        }
    }
}
