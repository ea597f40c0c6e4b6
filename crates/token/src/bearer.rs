//! The `Authorization: Bearer` header grammar of RFC 6750 section 2.1.
//!
//! ```text
//! credentials = "Bearer" 1*SP b64token
//! b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```

use std::fmt;

use zeroize::Zeroizing;

use crate::{Error, b64};

/// A bearer token taken from a request. `Debug` never shows it; zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(Zeroizing<String>);

impl BearerToken {
    /// Wraps a token that arrived some other way (a cookie), checking the b64token syntax.
    pub fn new(token: &str) -> Result<Self, Error> {
        if is_b64token(token.as_bytes()) {
            Ok(BearerToken(Zeroizing::new(token.to_owned())))
        } else {
            Err(Error::MalformedAuthorization("token is not a b64token"))
        }
    }

    /// The token. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Parses one `Authorization` header value.
///
/// - `Ok(Some(token))`: `Bearer` credentials.
/// - `Ok(None)`: credentials of another scheme (e.g. `Basic`): no bearer token was sent,
///   which RFC 6750 section 3.1 answers with a challenge and no error code.
/// - `Err(_)`: a `Bearer` header that breaks the grammar (no token, bad characters, two
///   tokens, parameters), or an empty or non-ASCII value: `invalid_request`.
pub fn parse_authorization(value: &[u8]) -> Result<Option<BearerToken>, Error> {
    // Optional whitespace around a field value is not part of it (RFC 9110 section 5.5).
    let value = trim_ows(value);
    if value.is_empty() {
        return Err(Error::MalformedAuthorization("empty header"));
    }
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        if scheme.iter().all(|b| is_tchar(*b)) {
            return Ok(None);
        }
        return Err(Error::MalformedAuthorization("invalid scheme"));
    }
    let token = trim_leading_spaces(rest);
    if rest.len() == token.len() || token.is_empty() {
        return Err(Error::MalformedAuthorization("no token after Bearer"));
    }
    if !is_b64token(token) {
        // Space and comma are not b64token characters: say why the header is wrong.
        let why = if token.iter().any(|b| *b == b' ' || *b == b',') {
            "more than one token"
        } else {
            "token is not a b64token"
        };
        return Err(Error::MalformedAuthorization(why));
    }
    // One pass on the hot path: is_b64token admits ASCII only, so this never fails.
    let token = String::from_utf8(token.to_vec())
        .map_err(|_| Error::MalformedAuthorization("token is not a b64token"))?;
    Ok(Some(BearerToken(Zeroizing::new(token))))
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

fn trim_leading_spaces(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ').unwrap_or(v.len());
    &v[start..]
}

/// RFC 9110 `tchar`, the characters of an auth-scheme.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `b64token` character before the padding.
#[inline(always)]
fn is_token_char(b: u8) -> bool {
    b64::is_letter_or_digit(b)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// `b64token`: at least one token character, then only `=` padding.
pub(crate) fn is_b64token(v: &[u8]) -> bool {
    // `=` is not a token character: the body ends where the padding starts.
    let body_len = v.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    body_len > 0 && b64::all_bytes(&v[..body_len], is_token_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte, alone, in a 32-byte block and before padding, against RFC 6750's
    /// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    #[test]
    fn token_characters_are_exactly_rfc6750s() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token(&[b]), expected, "{b:#x}");
            let mut block = [b'a'; 70];
            block[40] = b;
            assert_eq!(is_b64token(&block), expected, "{b:#x} in a block");
            block[69] = b'=';
            assert_eq!(is_b64token(&block), expected, "{b:#x} before padding");
        }
        assert!(is_b64token(b"a=="));
        assert!(!is_b64token(b"=="));
        assert!(!is_b64token(b"a=b"));
        assert!(!is_b64token(b""));
    }

    fn ok(v: &str) -> Option<String> {
        parse_authorization(v.as_bytes())
            .unwrap()
            .map(|t| t.expose().to_owned())
    }

    #[test]
    fn accepts_rfc6750_credentials() {
        assert_eq!(
            ok("Bearer mF_9.B5f-4.1JqM").as_deref(),
            Some("mF_9.B5f-4.1JqM")
        );
        assert_eq!(ok("bearer abc").as_deref(), Some("abc"));
        assert_eq!(ok("BEARER abc==").as_deref(), Some("abc=="));
        assert_eq!(ok("Bearer    a~b+c/d").as_deref(), Some("a~b+c/d"));
        assert_eq!(ok("  Bearer abc\t").as_deref(), Some("abc"));
    }

    #[test]
    fn other_schemes_are_no_bearer_credentials() {
        assert_eq!(ok("Basic dXNlcjpwYXNz"), None);
        assert_eq!(ok("DPoP abc"), None);
        assert_eq!(ok("Negotiate"), None);
    }

    #[test]
    fn malformed_bearer_refused() {
        for bad in [
            "",
            "   ",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,Bearer b",
            "Bearer a, Bearer b",
            "Bearer a=b",
            "Bearer =",
            "Bearer a\"b",
            "Bearer\tabc",
            "Bearer abc\u{e9}",
            "Bearer realm=\"x\"",
            "Bear\u{e9}r abc",
        ] {
            assert!(parse_authorization(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse_authorization(b"Bearer \xff").is_err());
        let why = |v: &str| match parse_authorization(v.as_bytes()) {
            Err(Error::MalformedAuthorization(why)) => why,
            other => panic!("{v:?}: {other:?}"),
        };
        assert_eq!(why("Bearer a b"), "more than one token");
        assert_eq!(why("Bearer a,Bearer b"), "more than one token");
        assert_eq!(why("Bearer a\"b"), "token is not a b64token");
        assert_eq!(why("Bearer abc\u{e9}"), "token is not a b64token");
    }

    #[test]
    fn debug_redacts() {
        let t = BearerToken::new("secret-token").unwrap();
        assert!(!format!("{t:?}").contains("secret"));
    }
}
