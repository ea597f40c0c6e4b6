//! The verified identity handed to handlers, whichever verifier produced it.

use std::ops::Deref;

use tessera_token::{Algorithm, Claims, VerifiedClaims};

/// The claims of a token the guard accepted. It dereferences to [`Claims`], so
/// `identity.sub`, `identity.scope`, `identity.client_id` read as on a JWT; custom
/// claims come out with [`Claims::extra_as`].
///
/// Only the guard constructs it: from a [`VerifiedClaims`] (signature checked by
/// `tessera-token`) or from an RFC 7662 introspection answer the authorization server
/// gave over an authenticated channel.
#[derive(Debug, Clone)]
pub struct Identity {
    claims: Claims,
    origin: Origin,
}

/// How the token was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A JWS signature checked against a key of the configured set.
    Jwt {
        /// The `kid` of the key that verified it.
        kid: Option<String>,
        /// The key's algorithm.
        alg: Algorithm,
    },
    /// The authorization server's introspection endpoint said `active: true`.
    Introspection,
}

impl Identity {
    pub(crate) fn from_verified(v: VerifiedClaims) -> Self {
        let origin = Origin::Jwt {
            kid: v.kid().map(str::to_owned),
            alg: v.algorithm(),
        };
        Identity {
            claims: v.into_claims(),
            origin,
        }
    }

    pub(crate) fn from_introspection(claims: Claims) -> Self {
        Identity {
            claims,
            origin: Origin::Introspection,
        }
    }

    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// How the token was verified.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// True when the granted scope includes `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims
            .scope
            .as_ref()
            .is_some_and(|s| s.contains(scope))
    }
}

impl Deref for Identity {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}
