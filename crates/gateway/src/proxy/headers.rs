//! Which headers cross the proxy: hop-by-hop headers removed both ways (RFC 9110 section
//! 7.6.1: `Connection` and every header it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`), and the `X-Forwarded-*` headers the upstream reads.

use std::net::IpAddr;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers removed whatever `Connection` says.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
];

/// Headers a `Connection` option cannot remove: they frame the message or are rebuilt by
/// the proxy. (`Connection: Content-Length` would otherwise strip the framing of a body.)
const NOT_NOMINABLE: [&str; 2] = ["content-length", "host"];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

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

/// Sets `X-Forwarded-For` (the client's address), `-Proto` and `-Host` (the `Host` the
/// client sent). Unless `trust` is set, incoming copies (and `Forwarded`, `X-Real-IP`) are
/// replaced: a client can write anything in them. With `trust`, the address is appended to
/// an incoming `X-Forwarded-For` and incoming `-Proto`/`-Host` are kept.
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
    if !trust {
        for name in [
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &FORWARDED,
            &X_REAL_IP,
        ] {
            headers.remove(name);
        }
    }
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
