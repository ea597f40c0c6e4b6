//! The one decision both modes share: match the route, run the guard on the request head,
//! check the route's scopes, DPoP rule and sign-in (`acr`, `max_age_secs`), and either allow (with the identity headers to
//! add) or deny (with the guard's status and `WWW-Authenticate` intact).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use tessera_guard::{AuthRequirement, Guard, GuardError, Identity, ScopeRequirement};

use crate::config::DpopRule;
use crate::identity::IdentityHeaders;
use crate::routes::{Requirement, Routes};

/// Guard, route table and identity headers: built once at start-up, shared by every request.
pub struct Gateway {
    guard: Guard,
    routes: Routes,
    identity: IdentityHeaders,
    /// False until start-up work the guard cannot do itself is done (the revocation
    /// feed's first read), and again while the feed is stale: then every request needing
    /// a token gets 503.
    ready: Arc<AtomicBool>,
}

/// An allowed request.
#[derive(Debug)]
pub struct Allowed {
    /// The caller's verified identity; `None` on a public route.
    pub identity: Option<Arc<Identity>>,
    /// The identity headers to add (after [`Gateway::strip_incoming`]).
    pub headers: HeaderMap,
    /// The route's `max_age_secs`: what was allowed holds only that long after the
    /// token's `auth_time` (a tunnel is closed then).
    pub max_age: Option<std::time::Duration>,
}

/// What the gateway decided.
#[derive(Debug)]
pub enum Decision {
    /// Let it through.
    Allow(Allowed),
    /// Answer this instead (401/403 with the guard's challenge, 400 for an ambiguous path or method).
    Deny(Response),
}

impl Gateway {
    /// Assembles a gateway.
    pub fn new(guard: Guard, routes: Routes, identity: IdentityHeaders) -> Gateway {
        Gateway {
            guard,
            routes,
            identity,
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Answers 503 to every request needing a token until `ready` turns true (the
    /// start-up task sets it once the revocation feed has been read: before that, a
    /// revoked token would pass).
    pub fn ready_when(mut self, ready: Arc<AtomicBool>) -> Gateway {
        self.ready = ready;
        self
    }

    /// Whether the gateway decides on tokens yet.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The answer of the readiness probe (`/readyz` in forward-auth mode,
    /// `/.well-known/tessera-gateway/readyz` in proxy mode): 200 while deciding on tokens,
    /// 503 before the revocation feed is first read and while it is stale.
    pub fn readiness(&self) -> Response {
        if self.is_ready() {
            "ready".into_response()
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the issuer's revocation feed is not current (not read yet, or out of reach too long)",
            )
                .into_response()
        }
    }

    /// The identity header names the gateway sets (subject, scope, client id, each
    /// configured claim), for a mode that must overwrite every one of them.
    pub fn identity_header_names(&self) -> impl Iterator<Item = &http::HeaderName> {
        self.identity.names()
    }

    /// The guard (for its metadata router, warm-up and revocation feed).
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Removes incoming identity headers (and credentials unless forwarded) from a request
    /// bound for the upstream.
    pub fn strip_incoming(&self, headers: &mut HeaderMap) {
        self.identity.strip_incoming(headers);
    }

    /// Decides on a request head: `parts` carries the method, URI and headers of the
    /// request as the client sent it (forward-auth rebuilds them from the proxy's headers).
    pub async fn decide(&self, parts: &Parts) -> Decision {
        let requirement = match self.routes.requirement(&parts.method, parts.uri.path()) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "refused an ambiguous request");
                return Decision::Deny((StatusCode::BAD_REQUEST, e.to_string()).into_response());
            }
        };
        let (scopes, dpop, auth) = match requirement {
            // A token in the URL is refused even where none is needed: it would reach the
            // upstream's logs (the guard refuses it on every other route).
            Requirement::Public
                if parts
                    .uri
                    .query()
                    .is_some_and(tessera_guard::query_has_access_token) =>
            {
                return self.deny(
                    parts,
                    GuardError::InvalidRequest("access tokens in the URL are not accepted".into()),
                );
            }
            Requirement::Public => {
                return Decision::Allow(Allowed {
                    identity: None,
                    headers: HeaderMap::new(),
                    max_age: None,
                });
            }
            Requirement::Deny => {
                return Decision::Deny(
                    (StatusCode::FORBIDDEN, "no route allows this request").into_response(),
                );
            }
            Requirement::Token { scopes, dpop, auth } => (scopes, *dpop, auth),
        };
        if !self.is_ready() {
            return self.deny(
                parts,
                GuardError::Unavailable(
                    "the revocation feed is not current (not read yet, or out of reach for longer than revocation.max_staleness_secs)",
                ),
            );
        }
        let identity = match self.guard.authenticate(parts).await {
            Ok(Some(identity)) => identity,
            Ok(None) => return self.deny(parts, GuardError::MissingToken),
            Err(e) => return self.deny(parts, e),
        };
        // An empty list asks for nothing (`all` of no scopes holds).
        let needed = ScopeRequirement::all(scopes.iter().cloned());
        if let Err(e) = needed.check(identity.scope.as_ref()) {
            return self.deny(parts, e);
        }
        let bound = identity.cnf.as_ref().is_some_and(|c| c.jkt.is_some());
        if dpop == DpopRule::Require && !bound {
            return self.deny(
                parts,
                GuardError::TokenBinding("this route requires a DPoP-bound token"),
            );
        }
        // RFC 9470: a sign-in too weak or too old for the route gets 401
        // insufficient_user_authentication naming acr_values / max_age, by the guard's
        // rule (its ladder, clock and leeway). After the scope: no step-up is asked for a
        // token that may not do this anyway.
        if let Some(auth) = auth
            && let Err(e) = self.guard.check_authentication(&identity, auth)
        {
            return self.deny(parts, e);
        }
        let headers = self.identity.for_identity(&identity);
        Decision::Allow(Allowed {
            identity: Some(identity),
            headers,
            max_age: auth.as_ref().and_then(AuthRequirement::age_limit),
        })
    }

    fn deny(&self, parts: &Parts, err: GuardError) -> Decision {
        Decision::Deny(self.guard.error_response_to(parts, &err))
    }
}
