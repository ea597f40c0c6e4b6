//! Which headers cross the proxy: hop-by-hop headers removed both ways (RFC 9110 section
//! 7.6.1: `Connection` and every header it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`, `HTTP2-Settings`), the `X-Forwarded-*` headers the
//! upstream reads, and the headers that would let a client restate the method or path
//! behind the route table's back.

use std::net::IpAddr;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers removed whatever `Connection` says.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "http2-settings",
];

/// Headers frameworks and proxies read as the request's "real" method or path (Rails,
/// Express's method-override, Symfony's trusted headers, nginx's auth_request, Traefik,
/// IIS): always removed, since the route table judged the method and path it saw. Compared
/// with `_` read as `-`.
const RESTATED_TARGET: [&str; 11] = [
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-original-uri",
    "x-original-url",
    "x-original-method",
    "x-rewrite-url",
    "x-http-method-override",
    "x-method-override",
    "x-http-method",
];

/// Headers a `Connection` option cannot remove: they frame the message or are rebuilt by
/// the proxy. (`Connection: Content-Length` would otherwise strip the framing of a body.)
const NOT_NOMINABLE: [&str; 2] = ["content-length", "host"];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers: first those `Connection` names, then the fixed list and
/// every `Proxy-*` header. Run before the gateway adds its own headers, so naming one of
/// them in `Connection` removes only the client's copy.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let nominated: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !NOT_NOMINABLE.contains(&name.as_str()))
        .collect();
    for name in nominated {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Whether the request's framing is ambiguous (request smuggling, RFC 9112 section 6.3):
/// both `Transfer-Encoding` and `Content-Length`, or more than one `Content-Length`.
pub(crate) fn ambiguous_framing(headers: &HeaderMap) -> bool {
    let lengths = headers.get_all(CONTENT_LENGTH).iter().count();
    lengths > 1 || (lengths == 1 && headers.contains_key(TRANSFER_ENCODING))
}

/// Whether the request names a transfer coding other than plain `chunked` (`gzip,
/// chunked`): the gateway removes `Transfer-Encoding` as hop-by-hop, so the upstream would
/// read the still-encoded bytes as the body.
pub(crate) fn unsupported_coding(headers: &HeaderMap) -> bool {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    match (codings.next(), codings.next()) {
        (None, _) => false,
        (Some(v), None) => !v
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked")),
        (Some(_), Some(_)) => true,
    }
}

/// Whether `name` (lower case, as hyper gives it) starts with `prefix` once every `_` is
/// read as `-` (WSGI, CGI and PHP merge both spellings); no allocation per header.
fn dashed_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(n, p)| n == p || (n == b'_' && p == b'-'))
}

/// [`dashed_prefix`] for the whole name.
fn dashed_eq(name: &str, other: &str) -> bool {
    name.len() == other.len() && dashed_prefix(name, other)
}

/// Removes what a client could use to restate the method or path ([`RESTATED_TARGET`]),
/// and the forwarding headers (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`) in every
/// spelling unless `trust`; with `trust`, only their `_` spellings (a load balancer writes
/// `-`). Run before [`set_forwarded`].
pub(crate) fn strip_forwarding(headers: &mut HeaderMap, trust: bool) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            let forwarding = dashed_prefix(n, "x-forwarded-")
                || dashed_eq(n, "forwarded")
                || dashed_eq(n, "x-real-ip");
            RESTATED_TARGET.iter().any(|r| dashed_eq(n, r))
                || (forwarding && (!trust || n.contains('_')))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// The request's `Content-Length`, if it has one that parses.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The request's one `Host` header when it is exactly `host[:port]` (no user info, no
/// path, a port only if it is a number); `None` for none, several or any other shape.
pub(crate) fn single_host(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut all = headers.get_all(HOST).iter();
    let (value, None) = (all.next()?, all.next()) else {
        return None;
    };
    let text = value.to_str().ok()?;
    let authority: http::uri::Authority = text.parse().ok()?;
    // Either the host alone or the host and a port that parses (`host:x` and `host:` do
    // not).
    let plain = !text.contains('@')
        && !authority.host().is_empty()
        && (authority.host() == text || authority.port().is_some());
    plain.then(|| value.clone())
}

/// Sets `X-Forwarded-For` (the client's address), `-Proto` and `-Host` (`public_base_url`'s
/// host, else the client's checked `Host`), after [`strip_forwarding`]: unless `trust` is set, incoming copies are
/// replaced, since a client can write anything in them. With `trust`, the address is
/// appended to an incoming `X-Forwarded-For` and incoming `-Proto`/`-Host` are kept.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    client: Option<IpAddr>,
    proto: &HeaderValue,
    host: Option<HeaderValue>,
    trust: bool,
) {
    let previous: Vec<String> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    strip_forwarding(headers, trust);
    headers.remove(&X_FORWARDED_FOR);
    let mut chain = if trust { previous } else { Vec::new() };
    if let Some(ip) = client {
        chain.push(ip.to_string());
    }
    if let Ok(v) = HeaderValue::from_str(&chain.join(", "))
        && !chain.is_empty()
    {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, proto.clone());
    }
    if let Some(host) = host
        && !headers.contains_key(&X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
    headers.remove(HOST);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_plain_host_is_taken() {
        for ok in [
            "api.example",
            "api.example:8443",
            "127.0.0.1:80",
            "[::1]:8080",
        ] {
            assert_eq!(
                single_host(&map(&[("host", ok)])),
                Some(HeaderValue::from_str(ok).unwrap()),
                "{ok}"
            );
        }
        for bad in [
            "",
            "a@evil.example",
            "evil.example/x",
            "evil.example:",
            "evil.example:x",
            "evil example",
            "a.example, b.example",
        ] {
            assert_eq!(single_host(&map(&[("host", bad)])), None, "{bad:?}");
        }
        assert_eq!(single_host(&map(&[])), None);
        let two = map(&[("host", "a.example"), ("host", "a.example")]);
        assert_eq!(single_host(&two), None);
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Custom, Content-Length, Host"),
            ("keep-alive", "timeout=5"),
            ("x-custom", "1"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ("content-length", "3"),
            ("host", "a"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "content-length", "host"]);
    }

    #[test]
    fn two_lengths_or_a_length_with_chunked_is_ambiguous() {
        assert!(ambiguous_framing(&map(&[
            ("content-length", "3"),
            ("content-length", "4")
        ])));
        assert!(ambiguous_framing(&map(&[
            ("content-length", "3"),
            ("transfer-encoding", "chunked")
        ])));
        assert!(!ambiguous_framing(&map(&[("content-length", "3")])));
        assert!(!ambiguous_framing(&map(&[(
            "transfer-encoding",
            "chunked"
        )])));
    }

    #[test]
    fn only_plain_chunked_is_a_transfer_coding_the_proxy_passes() {
        assert!(!unsupported_coding(&map(&[])));
        assert!(!unsupported_coding(&map(&[(
            "transfer-encoding",
            "Chunked"
        )])));
        for bad in ["gzip, chunked", "chunked, chunked", "gzip", "identity"] {
            assert!(
                unsupported_coding(&map(&[("transfer-encoding", bad)])),
                "{bad}"
            );
        }
        assert!(unsupported_coding(&map(&[
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked")
        ])));
    }

    #[test]
    fn forwarding_and_method_or_path_overrides_go_in_every_spelling() {
        let incoming = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x_forwarded_for", "6.6.6.6"),
            ("X_Forwarded-Proto", "https"),
            ("x-forwarded-ssl", "on"),
            ("x-forwarded-prefix", "/evil"),
            ("x_forwarded_port", "443"),
            ("x-original-uri", "/admin"),
            ("x_original_method", "DELETE"),
            ("x-http-method-override", "DELETE"),
            ("x_method_override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("x_real_ip", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("accept", "*/*"),
        ];
        let mut h = map(&incoming);
        strip_forwarding(&mut h, false);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
        // Trusted: the load balancer's dash spellings stay, the rest still goes.
        let mut h = map(&incoming);
        strip_forwarding(&mut h, true);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            ["accept", "forwarded", "x-forwarded-for", "x-forwarded-ssl"]
        );
    }

    #[test]
    fn forwarded_headers_are_replaced_unless_trusted() {
        let proto = HeaderValue::from_static("https");
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let incoming = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("host", "api.example"),
        ];
        let mut h = map(&incoming);
        let host = h.get(HOST).cloned();
        set_forwarded(&mut h, Some(ip), &proto, host.clone(), false);
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.example");
        assert!(!h.contains_key("forwarded") && !h.contains_key("x-real-ip"));
        assert!(!h.contains_key("host"));

        let mut h = map(&incoming);
        set_forwarded(&mut h, Some(ip), &proto, host, true);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.7");
        assert_eq!(h["x-forwarded-host"], "evil");
    }
}
