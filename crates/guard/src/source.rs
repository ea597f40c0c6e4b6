//! Where a request's token may come from: the `Authorization` header (always), an
//! HttpOnly cookie with CSRF protection (opt-in), a form body (opt-in, RFC 6750 section
//! 2.2), and never the URL query (section 2.3 is refused).

use std::borrow::Cow;

use http::request::Parts;
use http::{HeaderMap, HeaderName, Method, header};
use subtle::ConstantTimeEq;
use tessera_token::{BearerToken, Error as TokenError, parse_authorization};

use crate::GuardError;
use crate::challenge::Scheme;

/// Which token sources the guard reads, besides the `Authorization` header.
#[derive(Debug, Clone, Default)]
pub struct TokenSources {
    cookie: Option<CookieSource>,
    form_body: bool,
}

impl TokenSources {
    /// The `Authorization: Bearer` header only (the default).
    pub fn header_only() -> Self {
        Self::default()
    }

    /// Also reads the token from an HttpOnly cookie (for a SPA served from the same site).
    /// The header wins when both are present.
    pub fn cookie(mut self, cookie: CookieSource) -> Self {
        self.cookie = Some(cookie);
        self
    }

    /// Also accepts `access_token` in an `application/x-www-form-urlencoded` body
    /// (RFC 6750 section 2.2). Off by default: such a token is refused with
    /// `invalid_request`. Only the layer reads bodies; extractors alone never do.
    pub fn accept_form_body(mut self, accept: bool) -> Self {
        self.form_body = accept;
        self
    }

    /// True when form-body tokens are accepted.
    pub(crate) fn accepts_form_body(&self) -> bool {
        self.form_body
    }
}

/// A cookie carrying the access token, with its CSRF defence for unsafe methods.
#[derive(Debug, Clone)]
pub struct CookieSource {
    name: String,
    csrf: Csrf,
}

/// How a cookie-borne token is protected against cross-site request forgery on unsafe
/// methods (anything but GET, HEAD, OPTIONS, TRACE).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Csrf {
    /// Double submit: the request must carry `header` equal to the value of `cookie`.
    DoubleSubmit {
        /// The cookie holding the CSRF value (readable by the SPA's script).
        cookie: String,
        /// The header the SPA copies it into.
        header: HeaderName,
    },
    /// Fetch metadata: `Sec-Fetch-Site: same-origin`, or else an `Origin` among these.
    SameOrigin {
        /// Accepted origins, e.g. `https://app.example`.
        allowed_origins: Vec<String>,
    },
}

impl CookieSource {
    /// The token in cookie `name`, CSRF-checked by double submit of cookie `csrf_cookie`
    /// into header `csrf_header`.
    pub fn double_submit(
        name: impl Into<String>,
        csrf_cookie: impl Into<String>,
        csrf_header: HeaderName,
    ) -> Self {
        CookieSource {
            name: name.into(),
            csrf: Csrf::DoubleSubmit {
                cookie: csrf_cookie.into(),
                header: csrf_header,
            },
        }
    }

    /// The token in cookie `name`, CSRF-checked by `Sec-Fetch-Site` / `Origin`.
    pub fn same_origin<I, S>(name: impl Into<String>, allowed_origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CookieSource {
            name: name.into(),
            csrf: Csrf::SameOrigin {
                allowed_origins: allowed_origins.into_iter().map(Into::into).collect(),
            },
        }
    }
}

/// What the request-head sources yielded.
pub(crate) enum Found {
    /// A token from the header (`Bearer` or `DPoP`) or the cookie (`Bearer`).
    Token(BearerToken, Scheme),
    /// No token in the head; a form body might carry one and must be inspected.
    MaybeInForm,
    /// No token at all.
    Nothing,
}

fn invalid(why: &'static str) -> GuardError {
    GuardError::InvalidRequest(Cow::Borrowed(why))
}

/// Reads the token from the request head.
pub(crate) fn from_parts(parts: &Parts, sources: &TokenSources) -> Result<Found, GuardError> {
    if let Some(q) = parts.uri.query()
        && query_has_access_token(q)
    {
        return Err(invalid("access tokens in the URL are not accepted"));
    }
    let mut auth = parts.headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(invalid("more than one Authorization header"));
        }
        if let Some(token) = dpop_credentials(value.as_bytes()) {
            return Ok(Found::Token(token?, Scheme::Dpop));
        }
        match parse_authorization(value.as_bytes()) {
            Ok(Some(token)) => return Ok(Found::Token(token, Scheme::Bearer)),
            Ok(None) => {} // another scheme: no bearer credentials
            Err(TokenError::MalformedAuthorization(why)) => return Err(invalid(why)),
            Err(_) => return Err(invalid("malformed Authorization header")),
        }
    }
    if let Some(cookie) = &sources.cookie
        && let Some(value) = single_cookie(&parts.headers, &cookie.name)?
    {
        let token = BearerToken::new(value)
            .map_err(|_| invalid("token cookie is not a valid bearer token"))?;
        if !is_safe(&parts.method) {
            check_csrf(&parts.headers, &cookie.csrf)?;
        }
        return Ok(Found::Token(token, Scheme::Bearer));
    }
    if is_form(&parts.headers) && !matches!(parts.method, Method::GET | Method::HEAD) {
        return Ok(Found::MaybeInForm);
    }
    Ok(Found::Nothing)
}

/// `DPoP <token>` credentials (RFC 9449 section 7.1: `token68`, the b64token syntax):
/// `None` for another scheme.
fn dpop_credentials(value: &[u8]) -> Option<Result<BearerToken, GuardError>> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(4)?;
    if !scheme.eq_ignore_ascii_case(b"dpop") || rest.first() != Some(&b' ') {
        return None;
    }
    let token = rest.trim_ascii_start();
    if token.is_empty() {
        return Some(Err(invalid("no token after DPoP")));
    }
    let token = std::str::from_utf8(token)
        .ok()
        .and_then(|t| BearerToken::new(t).ok());
    Some(token.ok_or_else(|| invalid("the DPoP token is not a token68")))
}

/// Looks for `access_token` in a form body. Present but not accepted: `invalid_request`.
pub(crate) fn from_form(
    body: &[u8],
    sources: &TokenSources,
) -> Result<Option<BearerToken>, GuardError> {
    let mut found = None;
    for pair in body.split(|b| *b == b'&') {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        if percent_decode(key) != b"access_token" {
            continue;
        }
        if !sources.form_body {
            return Err(invalid("tokens in a form body are not accepted"));
        }
        if found.is_some() {
            return Err(invalid("more than one access_token parameter"));
        }
        let value = percent_decode(value);
        let value = std::str::from_utf8(&value).map_err(|_| invalid("malformed access_token"))?;
        found = Some(BearerToken::new(value).map_err(|_| invalid("malformed access_token"))?);
    }
    Ok(found)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn is_safe(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// True when the raw query has an `access_token` parameter (name percent-decoded): the
/// guard refuses such requests (RFC 6750 section 2.3 is not supported), and a gateway uses
/// this to refuse them on public routes too, so a token in a URL is never forwarded.
/// Parameters are split on `&` and on `;` (Rack before 3 and older Python split on both).
pub fn query_has_access_token(q: &str) -> bool {
    q.split(['&', ';']).any(|pair| {
        let key = pair.split('=').next().unwrap_or("");
        percent_decode(key.as_bytes()) == b"access_token"
    })
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The value of cookie `name`; the same name twice is refused (cookie tossing).
fn single_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, GuardError> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if k == name {
                if found.is_some() {
                    return Err(invalid("cookie sent more than once"));
                }
                found = Some(v.trim_matches('"'));
            }
        }
    }
    Ok(found)
}

fn check_csrf(headers: &HeaderMap, csrf: &Csrf) -> Result<(), GuardError> {
    match csrf {
        Csrf::DoubleSubmit { cookie, header } => {
            let Some(sent) = headers.get(header) else {
                return Err(GuardError::InvalidRequest(Cow::Owned(format!(
                    "CSRF check failed: missing {header} header"
                ))));
            };
            let expected = single_cookie(headers, cookie)?
                .ok_or_else(|| invalid("CSRF check failed: missing CSRF cookie"))?;
            if expected.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(invalid("CSRF check failed: token mismatch"));
            }
            Ok(())
        }
        Csrf::SameOrigin { allowed_origins } => {
            if let Some(site) = headers.get("sec-fetch-site") {
                return if site.as_bytes() == b"same-origin" {
                    Ok(())
                } else {
                    Err(invalid("CSRF check failed: cross-site request"))
                };
            }
            let Some(origin) = headers.get(header::ORIGIN) else {
                return Err(invalid(
                    "CSRF check failed: missing Origin or Sec-Fetch-Site header",
                ));
            };
            if allowed_origins
                .iter()
                .any(|o| o.as_bytes() == origin.as_bytes())
            {
                Ok(())
            } else {
                Err(invalid("CSRF check failed: origin not allowed"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_detection_decodes_names() {
        assert!(query_has_access_token("access_token=x"));
        assert!(query_has_access_token("a=1&access%5Ftoken=x"));
        assert!(query_has_access_token("access_token"));
        // Rack < 3 and older Python split the query on `;` too.
        assert!(query_has_access_token("a=1;access_token=x"));
        assert!(query_has_access_token("a=1&b=2;access%5ftoken=x"));
        assert!(!query_has_access_token("my_access_token=x&b=access_token"));
    }

    #[test]
    fn percent_decoding_tolerates_garbage() {
        assert_eq!(percent_decode(b"a%2"), b"a%2");
        assert_eq!(percent_decode(b"%41+b%zz"), b"A b%zz");
    }

    fn parts(query: &str, headers: &[(&str, Vec<u8>)]) -> Option<Parts> {
        let mut b = http::Request::post(format!("/x?{query}"));
        for (k, v) in headers {
            b = b.header(*k, http::HeaderValue::from_bytes(v).ok()?);
        }
        Some(b.body(()).ok()?.into_parts().0)
    }

    proptest::proptest! {
        #[test]
        fn any_head_is_handled_and_query_tokens_always_refused(
            query in "[a-z_=&%5F0-9]{0,40}",
            auth in proptest::collection::vec(proptest::num::u8::ANY, 0..60),
            cookie in "[ -~]{0,60}",
        ) {
            let sources = TokenSources::default().cookie(CookieSource::same_origin("at", ["https://a"]));
            let headers = [("authorization", auth), ("cookie", cookie.into_bytes())];
            if let Some(p) = parts(&query, &headers) {
                let r = from_parts(&p, &sources);
                if query_has_access_token(&query) {
                    proptest::prop_assert!(matches!(r, Err(GuardError::InvalidRequest(_))));
                }
            }
        }
    }

    #[test]
    fn form_tokens_refused_unless_enabled() {
        let off = TokenSources::default();
        assert!(matches!(
            from_form(b"a=1&access_token=abc", &off),
            Err(GuardError::InvalidRequest(_))
        ));
        assert!(matches!(from_form(b"a=1", &off), Ok(None)));
        let on = TokenSources::default().accept_form_body(true);
        let t = from_form(b"access_token=abc.def", &on).unwrap().unwrap();
        assert_eq!(t.expose(), "abc.def");
        assert!(from_form(b"access_token=a&access_token=b", &on).is_err());
    }
}
