//! The route table: methods and a path prefix on whole segments, first match wins. Paths
//! are judged as the upstream will see them, so a path whose meaning could differ between
//! the gateway and the upstream (dot segments, encoded `/` or `\`, `//`, NUL) is refused
//! rather than matched: `/public/../admin` must not pass as `/public`.

use http::Method;

use crate::config::{DefaultRoute, DpopRule, RouteConfig};

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
    },
    /// Refused (no route matched and the default is `deny`).
    Deny,
}

/// A path the gateway refuses to judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ambiguous request path: {0}")]
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
                let methods = r
                    .methods
                    .iter()
                    .map(|m| Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
                let requirement = if r.public {
                    Requirement::Public
                } else {
                    Requirement::Token {
                        scopes: r.scopes.clone(),
                        dpop: r.dpop,
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
            },
        };
        Ok(Routes { routes, default })
    }

    /// What `method` on `path` (the URI's path, without the query) needs.
    pub fn requirement(&self, method: &Method, path: &str) -> Result<&Requirement, AmbiguousPath> {
        check_path(path)?;
        let hit = self.routes.iter().find(|r| {
            (r.methods.is_empty() || r.methods.contains(method)) && covers(&r.prefix, path)
        });
        Ok(hit.map_or(&self.default, |r| &r.requirement))
    }
}

/// True when `prefix` (without a trailing `/`) covers `path` on whole segments.
fn covers(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Refuses paths the gateway and the upstream could read differently.
pub fn check_path(path: &str) -> Result<(), AmbiguousPath> {
    if !path.starts_with('/') {
        return Err(AmbiguousPath("does not start with /"));
    }
    if path.contains("//") {
        return Err(AmbiguousPath("empty segment"));
    }
    let lower = path.to_ascii_lowercase();
    for encoded in ["%2f", "%5c", "%00", "%2e", "%25"] {
        if lower.contains(encoded) {
            return Err(AmbiguousPath("encoded separator, dot, NUL or percent"));
        }
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(AmbiguousPath("backslash or NUL"));
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(AmbiguousPath("dot segment"));
    }
    Ok(())
}

/// Checks one configured route.
pub fn check_route(route: &RouteConfig) -> Result<(), String> {
    check_path(&route.path).map_err(|e| format!("route path {:?}: {e}", route.path))?;
    if route.public && (!route.scopes.is_empty() || route.dpop == DpopRule::Require) {
        return Err(format!(
            "route {:?} is public and also needs scopes or DPoP; pick one",
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
}
