//! The route table: methods and a path prefix on whole segments (a `.format` suffix
//! included), ASCII case ignored, first match wins. Paths are judged as the upstream will
//! see them, so a path whose meaning could differ between the gateway and an upstream
//! framework is refused rather than matched: dot segments, `//`, backslash, `;` (Tomcat and
//! Spring drop `;params` and read `..;` as `..`), a percent-encoded unreserved character
//! (frameworks decode `%61dmin` to `admin` before routing; a canonical URI never encodes
//! them, RFC 3986 section 6.2.2.2), an encoded `/`, `\`, `;`, `%` or NUL, and a letter that
//! Unicode case rules map to ASCII (`ı`, `İ`, `ſ`, the Kelvin sign; raw or encoded). Case is
//! ignored because Express and ASP.NET route `/ADMIN` to `/admin`. A `GET` route also
//! covers `HEAD` (frameworks answer HEAD with the GET handler). A method with a lower-case
//! letter is refused: routes compare methods exactly, but Werkzeug and Django upper-case
//! `delete` and run the DELETE handler.

use std::time::Duration;

use http::Method;
use tessera_guard::AuthRequirement;

use crate::config::{DefaultRoute, DpopRule, RouteConfig};

/// Longest `max_age_secs` a route may ask (a year).
const MAX_AGE_SECS: u64 = 366 * 86_400;

/// What a matched request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing: passes without a token and without identity headers.
    Public,
    /// A valid token with all of `scopes`, DPoP per `dpop`.
    Token {
        /// Scopes the token must all have (empty: any valid token).
        scopes: Vec<String>,
        /// Whether the token must be DPoP-bound.
        dpop: DpopRule,
        /// The sign-in the token must come from (`acr`, `max_age_secs`; RFC 9470).
        auth: Option<AuthRequirement>,
    },
    /// Refused (no route matched and the default is `deny`).
    Deny,
}

/// A request (path or method) the gateway refuses to judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ambiguous request: {0}")]
pub struct AmbiguousPath(pub &'static str);

#[derive(Debug, Clone)]
struct Route {
    methods: Vec<Method>,
    prefix: String,
    requirement: Requirement,
}

/// The compiled route table.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<Route>,
    default: Requirement,
}

impl Routes {
    /// Compiles the configured routes (already checked by [`check_route`]).
    pub fn new(routes: &[RouteConfig], default: DefaultRoute) -> Result<Routes, String> {
        let routes = routes
            .iter()
            .map(|r| {
                check_route(r)?;
                let mut methods: Vec<Method> = r
                    .methods
                    .iter()
                    .map(|m| Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
                // Frameworks run the GET handler for HEAD: the GET route must judge it.
                if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                    methods.push(Method::HEAD);
                }
                let requirement = if r.public {
                    Requirement::Public
                } else {
                    Requirement::Token {
                        scopes: r.scopes.clone(),
                        dpop: r.dpop,
                        auth: auth_requirement(r),
                    }
                };
                Ok(Route {
                    methods,
                    prefix: r.path.trim_end_matches('/').to_owned(),
                    requirement,
                })
            })
            .collect::<Result<_, String>>()?;
        let default = match default {
            DefaultRoute::Deny => Requirement::Deny,
            DefaultRoute::Authenticated => Requirement::Token {
                scopes: Vec::new(),
                dpop: DpopRule::Allow,
                auth: None,
            },
        };
        Ok(Routes { routes, default })
    }

    /// What `method` on `path` (the URI's path, without the query) needs.
    pub fn requirement(&self, method: &Method, path: &str) -> Result<&Requirement, AmbiguousPath> {
        check_method(method)?;
        check_path(path)?;
        let hit = self.routes.iter().find(|r| {
            (r.methods.is_empty() || r.methods.contains(method)) && covers(&r.prefix, path)
        });
        Ok(hit.map_or(&self.default, |r| &r.requirement))
    }
}

/// True when `prefix` (without a trailing `/`) covers `path` on whole segments, ASCII
/// case ignored (an upstream that routes case-insensitively reads `/ADMIN` as `/admin`).
/// A `.` right after the prefix is covered too: Rails' `(.:format)` and Spring's old
/// suffix matching route `/admin.json` to the `/admin` handler.
fn covers(prefix: &str, path: &str) -> bool {
    let (p, q) = (prefix.as_bytes(), path.as_bytes());
    q.len() >= p.len()
        && q[..p.len()].eq_ignore_ascii_case(p)
        && (q.len() == p.len() || matches!(q[p.len()], b'/' | b'.'))
}

/// Refuses a method with a lower-case letter: hyper (and Envoy's `check.method`) pass
/// `delete` on as it is, routes compare methods exactly, and Werkzeug and Django upper-case
/// it and run the `DELETE` handler, so `delete` would skip a `DELETE`-only route.
fn check_method(method: &Method) -> Result<(), AmbiguousPath> {
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(AmbiguousPath("method with a lower-case letter"));
    }
    Ok(())
}

/// Refuses paths the gateway and the upstream could read differently (see the module
/// comment for why each is refused).
pub fn check_path(path: &str) -> Result<(), AmbiguousPath> {
    if !path.starts_with('/') {
        return Err(AmbiguousPath("does not start with /"));
    }
    if path.contains("//") {
        return Err(AmbiguousPath("empty segment"));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(AmbiguousPath("backslash or NUL"));
    }
    if path.contains(';') {
        return Err(AmbiguousPath("; (path parameters)"));
    }
    let bytes = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let decoded = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or(AmbiguousPath("% not followed by two hex digits"))?;
        if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~') {
            return Err(AmbiguousPath("percent-encoded unreserved character"));
        }
        if matches!(decoded, b'/' | b'\\' | b';' | b'%' | 0) {
            return Err(AmbiguousPath("encoded separator, ;, NUL or percent"));
        }
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(AmbiguousPath("dot segment"));
    }
    if path.bytes().any(|b| b == b'%' || !b.is_ascii()) {
        let bytes = percent_decoded(path);
        if FOLDS_TO_ASCII
            .iter()
            .any(|letter| bytes.windows(letter.len()).any(|w| w == *letter))
        {
            return Err(AmbiguousPath("a letter that case-folds to ASCII"));
        }
    }
    Ok(())
}

/// The UTF-8 of the letters Unicode case rules map to ASCII: `İ` (U+0130) and `ı` (U+0131)
/// to `i`, `ſ` (U+017F) to `s`, the Kelvin sign (U+212A) to `k`. Java's
/// `equalsIgnoreCase` reads `/admın` as `/admin`, which the gateway's ASCII case rule would
/// not.
const FOLDS_TO_ASCII: [&[u8]; 4] = [
    &[0xC4, 0xB0],
    &[0xC4, 0xB1],
    &[0xC5, 0xBF],
    &[0xE2, 0x84, 0xAA],
];

/// `path` with every `%XX` decoded (an invalid escape is left as it is; `check_path`
/// refuses those before this runs).
fn percent_decoded(path: &str) -> Vec<u8> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| b.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// The route's `acr` and `max_age_secs` as the guard's requirement, if it has either.
fn auth_requirement(route: &RouteConfig) -> Option<AuthRequirement> {
    let age = route.max_age_secs.map(Duration::from_secs);
    match (&route.acr, age) {
        (None, None) => None,
        (Some(acr), None) => Some(AuthRequirement::acr(acr.clone())),
        (None, Some(age)) => Some(AuthRequirement::max_age(age)),
        (Some(acr), Some(age)) => Some(AuthRequirement::acr(acr.clone()).within(age)),
    }
}

/// Checks one configured route.
pub fn check_route(route: &RouteConfig) -> Result<(), String> {
    check_path(&route.path).map_err(|e| format!("route path {:?}: {e}", route.path))?;
    let asks_sign_in = route.acr.is_some() || route.max_age_secs.is_some();
    if route.public && (!route.scopes.is_empty() || route.dpop == DpopRule::Require || asks_sign_in)
    {
        return Err(format!(
            "route {:?} is public and also needs scopes, DPoP, acr or max_age_secs; pick one",
            route.path
        ));
    }
    if let Some(acr) = &route.acr {
        // It goes into the challenge's quoted acr_values: visible ASCII, no quote or
        // backslash, no space (one value).
        let plain = !acr.is_empty()
            && acr
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
        if !plain {
            return Err(format!(
                "route {:?}: acr {acr:?} must be one value of visible ASCII without quotes",
                route.path
            ));
        }
    }
    if let Some(age) = route.max_age_secs
        && !(1..=MAX_AGE_SECS).contains(&age)
    {
        return Err(format!(
            "route {:?}: max_age_secs {age} must be between 1 and {MAX_AGE_SECS}",
            route.path
        ));
    }
    for m in &route.methods {
        if m.is_empty() || m.bytes().any(|b| !b.is_ascii_uppercase()) {
            return Err(format!(
                "route {:?}: method {m:?} is not an upper-case method name",
                route.path
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml: &str) -> Routes {
        #[derive(serde::Deserialize)]
        struct T {
            route: Vec<RouteConfig>,
        }
        let t: T = toml::from_str(toml).unwrap();
        Routes::new(&t.route, DefaultRoute::Deny).unwrap()
    }

    #[test]
    fn first_match_on_whole_segments_wins_and_the_rest_is_denied() {
        let r = table(
            r#"
            [[route]]
            path = "/healthz"
            public = true
            [[route]]
            methods = ["GET"]
            path = "/notes"
            scopes = ["notes:read"]
            "#,
        );
        assert_eq!(
            r.requirement(&Method::GET, "/healthz").unwrap(),
            &Requirement::Public
        );
        assert!(matches!(
            r.requirement(&Method::GET, "/notes/7").unwrap(),
            Requirement::Token { .. }
        ));
        assert_eq!(
            r.requirement(&Method::GET, "/notes-admin").unwrap(),
            &Requirement::Deny
        );
        assert_eq!(
            r.requirement(&Method::POST, "/notes").unwrap(),
            &Requirement::Deny
        );
        assert_eq!(
            r.requirement(&Method::GET, "/healthzz").unwrap(),
            &Requirement::Deny
        );
    }

    #[test]
    fn paths_the_upstream_could_read_differently_are_refused() {
        let r = table("[[route]]\npath = \"/public\"\npublic = true\n");
        for p in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/%2E%2E/admin",
            "/public%2f..%2fadmin",
            "/public/..\\admin",
            "//public",
            "/public/./x",
            "/public/%252e%252e/admin",
            "public",
        ] {
            assert!(r.requirement(&Method::GET, p).is_err(), "{p}");
        }
    }

    /// Upstream frameworks rewrite paths before routing: percent-decoding unreserved
    /// characters (Starlette, Flask, Django, Spring), ignoring case (Express, ASP.NET),
    /// dropping `;params` and reading `..;` as `..` (Tomcat, Spring). None of these may
    /// pass as the broader public route while the upstream sees `/admin`.
    #[test]
    fn paths_an_upstream_rewrites_into_a_protected_route_never_pass_as_public() {
        let r = table(
            r#"
            [[route]]
            path = "/admin"
            scopes = ["admin"]
            [[route]]
            path = "/public"
            public = true
            [[route]]
            path = "/"
            public = true
            "#,
        );
        for p in [
            "/%61dmin/users",
            "/%61DMIN/users",
            "/admin;x=1",
            "/admin;/users",
            "/ADMIN",
            "/Admin/users",
            "/%41DMIN",
            "/%41dmin",
            "/public/..;/admin",
            "/public/..%3B/admin",
            "/public/..%3b/admin",
            "/public/%2E%2e/admin",
            "/adm%69n",
            "/admin%7e",
            "/admin%5F",
            "/%30",
            "/x%2Dy",
            "/public/%",
            "/public/%4",
            "/public/%zz",
            "/public/%+1",
        ] {
            match r.requirement(&Method::GET, p) {
                Err(_) => {}
                Ok(Requirement::Token { scopes, .. }) => assert_eq!(scopes, &["admin"], "{p}"),
                Ok(other) => panic!("{p} passed as {other:?}"),
            }
        }
        assert!(matches!(
            r.requirement(&Method::GET, "/ADMIN/users").unwrap(),
            Requirement::Token { .. }
        ));
        // Other encoded bytes are left as they are (the upstream decodes them to the same
        // characters the gateway would, and none changes the route).
        for p in [
            "/public/caf%C3%A9",
            "/public/caf%c3%a9",
            "/public/a%20b",
            "/public/q%3F",
        ] {
            assert_eq!(
                r.requirement(&Method::GET, p).unwrap(),
                &Requirement::Public,
                "{p}"
            );
        }
    }

    #[test]
    fn a_get_route_also_covers_head() {
        let r = table(
            r#"
            [[route]]
            methods = ["GET"]
            path = "/notes"
            scopes = ["notes:read"]
            [[route]]
            path = "/"
            public = true
            "#,
        );
        assert!(matches!(
            r.requirement(&Method::HEAD, "/notes/1").unwrap(),
            Requirement::Token { .. }
        ));
        assert_eq!(
            r.requirement(&Method::POST, "/healthz").unwrap(),
            &Requirement::Public
        );
    }

    #[test]
    fn a_method_with_a_lower_case_letter_is_refused_not_matched_past_its_route() {
        let r = table(
            r#"
            [[route]]
            methods = ["DELETE", "GET"]
            path = "/notes"
            scopes = ["notes:write"]
            [[route]]
            path = "/"
            public = true
            "#,
        );
        for m in ["delete", "Delete", "head", "Get", "get", "pOST"] {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            assert!(r.requirement(&method, "/notes/1").is_err(), "{m}");
        }
        assert!(matches!(
            r.requirement(&Method::DELETE, "/notes/1").unwrap(),
            Requirement::Token { .. }
        ));
        let custom = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(r.requirement(&custom, "/x").unwrap(), &Requirement::Public);
    }

    /// Rails' `(.:format)` and Spring's old suffix matching route `/admin.json` to the
    /// `/admin` handler: it must not fall to a broader public route.
    #[test]
    fn a_format_suffix_stays_under_its_route() {
        let r = table(
            r#"
            [[route]]
            path = "/admin"
            scopes = ["admin"]
            [[route]]
            path = "/"
            public = true
            "#,
        );
        for p in ["/admin.json", "/Admin.xml", "/admin.", "/admin.json/x"] {
            assert!(
                matches!(
                    r.requirement(&Method::GET, p),
                    Ok(Requirement::Token { .. })
                ),
                "{p}"
            );
        }
        assert_eq!(
            r.requirement(&Method::GET, "/adminx").unwrap(),
            &Requirement::Public
        );
    }

    /// Java's `equalsIgnoreCase` (and other Unicode case folds) read `ı` (U+0131), `İ`
    /// (U+0130), `ſ` (U+017F) and the Kelvin sign (U+212A) as `i`, `i`, `s` and `k`.
    #[test]
    fn letters_that_case_fold_to_ascii_are_refused_encoded_or_raw() {
        let r = table(
            r#"
            [[route]]
            path = "/admin"
            scopes = ["admin"]
            [[route]]
            path = "/"
            public = true
            "#,
        );
        for p in [
            "/adm%C4%B1n",
            "/adm%c4%b1n",
            "/adm%C4%B0n",
            "/admın",
            "/admİn",
            "/x/%C5%BF",
            "/ſecret",
            "/%E2%84%AA",
            "/\u{212A}ey",
            "/adm%C4ın",
        ] {
            assert!(r.requirement(&Method::GET, p).is_err(), "{p}");
        }
        for p in ["/notes/caf%C3%A9", "/caf\u{e9}", "/%C3%85"] {
            assert_eq!(
                r.requirement(&Method::GET, p).unwrap(),
                &Requirement::Public,
                "{p}"
            );
        }
    }

    fn check_of(toml: &str) -> Result<(), String> {
        let r: RouteConfig = toml::from_str(toml).unwrap();
        check_route(&r)
    }

    #[test]
    fn a_step_up_route_needs_a_plain_acr_and_a_sane_max_age_and_no_public() {
        let ok = check_of("path = \"/a\"\nacr = \"urn:tessera:acr:mfa\"\nmax_age_secs = 300");
        assert_eq!(ok, Ok(()));
        for bad in [
            "path = \"/a\"\npublic = true\nacr = \"urn:tessera:acr:mfa\"",
            "path = \"/a\"\npublic = true\nmax_age_secs = 60",
            "path = \"/a\"\nacr = \"\"",
            "path = \"/a\"\nacr = \"a b\"",
            "path = \"/a\"\nacr = 'a\"b'",
            "path = \"/a\"\nmax_age_secs = 0",
            "path = \"/a\"\nmax_age_secs = 99999999999",
        ] {
            assert!(check_of(bad).is_err(), "{bad}");
        }
        let r = table("[[route]]\npath = \"/a\"\nacr = \"x\"\nmax_age_secs = 60");
        assert_eq!(
            r.requirement(&Method::GET, "/a").unwrap(),
            &Requirement::Token {
                scopes: vec![],
                dpop: DpopRule::Allow,
                auth: Some(AuthRequirement::acr("x").within(Duration::from_secs(60))),
            }
        );
    }
}
