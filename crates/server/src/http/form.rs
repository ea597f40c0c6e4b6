//! Reading `application/x-www-form-urlencoded` bodies (RFC 6749 section 3.2) into
//! [`Params`], refusing other content types, repeated parameters and NUL bytes.

use axum::http::{HeaderMap, header};

use crate::grants::{Params, printable_name};
use crate::oauth::OAuthError;

/// Parses a form body; the content type must be `application/x-www-form-urlencoded`.
pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(OAuthError::invalid_request("body is not UTF-8"));
    }
    let mut nul = None;
    let params = Params::from_pairs(form_urlencoded::parse(body).map(|(k, v)| {
        if nul.is_none() && (has_nul(&k) || has_nul(&v)) {
            nul = Some(printable_name(&k));
        }
        (k.into_owned(), v.into_owned())
    }))?;
    match nul {
        Some(name) => Err(OAuthError::invalid_request(format!(
            "parameter {name} contains a NUL byte"
        ))),
        None => Ok(params),
    }
}

/// The one edge rule for request text bound for the store: a NUL byte (`%00`) is refused
/// where the request is read, never passed on. PostgreSQL cannot store it in `text` and
/// would fail the query (a 503 that looks like an outage); SQLite would store it.
pub(crate) fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Decodes one `application/x-www-form-urlencoded` component (RFC 6749 section 2.3.1:
/// client id and secret in HTTP Basic are form-encoded first).
pub(crate) fn decode_component(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    }

    #[test]
    fn form_rules() {
        let p = parse(&form(), b"grant_type=password&username=a%20b").unwrap();
        assert_eq!(p.get("username"), Some("a b"));
        assert!(parse(&form(), b"a=1&a=1").is_err());
        assert!(parse(&HeaderMap::new(), b"a=1").is_err());
        assert!(parse(&form(), b"a=%FF").is_ok()); // lossy decoding, never a panic
        assert!(parse(&form(), &[0xff, b'=']).is_err());
    }

    #[test]
    fn nul_bytes_are_refused_in_names_and_values() {
        for body in [
            &b"grant_type=password&username=al%00ice"[..],
            b"client_id=%00",
            b"a%00b=1",
            b"x=\0",
        ] {
            let e = parse(&form(), body).expect_err("refused");
            assert_eq!(e.code(), "invalid_request");
            assert!(e.description().unwrap().contains("NUL"));
            assert!(!e.description().unwrap().contains('\0'));
        }
    }

    #[test]
    fn components() {
        assert_eq!(decode_component("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(decode_component("%4"), None);
        assert_eq!(decode_component("%zz"), None);
    }
}
