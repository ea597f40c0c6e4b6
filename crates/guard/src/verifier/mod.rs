//! Verifiers: what turns a bearer token into an [`Identity`]. Static keys, a remote
//! issuer's JWKS found by discovery, or RFC 7662 introspection for opaque tokens.

mod discovery;
mod introspection;
mod remote;
mod static_keys;

use std::fmt;

use tessera_token::{BearerToken, UnixTime, Validation};

use crate::{FetchError, GuardError, Identity};

pub use discovery::{AuthorizationServerMetadata, discover};
pub use introspection::Introspection;
pub use remote::RemoteIssuer;

/// How tokens are verified. Build one with [`Verifier::keys`], [`Verifier::jwks`],
/// [`Verifier::remote`] or [`Verifier::introspection`] and hand it to
/// [`crate::Guard::builder`].
pub struct Verifier {
    inner: Inner,
}

enum Inner {
    Static(static_keys::StaticKeys),
    Remote(remote::RemoteJwks),
    Introspection(Introspection),
}

/// A successful verification and how long its answer may be cached at most (besides
/// the token's own `exp`).
pub(crate) struct Verified {
    pub(crate) identity: Identity,
    pub(crate) cache_until: Option<UnixTime>,
}

impl Verifier {
    pub(crate) async fn verify(
        &self,
        token: &BearerToken,
        validation: &Validation,
        now: UnixTime,
    ) -> Result<Verified, GuardError> {
        match &self.inner {
            Inner::Static(k) => {
                k.verify(token.expose(), validation, now)
                    .map(|identity| Verified {
                        identity,
                        cache_until: None,
                    })
            }
            Inner::Remote(r) => r
                .verify(token.expose(), validation, now)
                .await
                .map(|identity| Verified {
                    identity,
                    cache_until: None,
                }),
            Inner::Introspection(i) => i.verify(token.expose(), validation, now).await,
        }
    }

    /// Fetches keys now (remote issuer), so the first request does not wait. Other
    /// verifiers have nothing to fetch.
    pub(crate) async fn warm_up(&self, now: UnixTime) -> Result<(), FetchError> {
        match &self.inner {
            Inner::Remote(r) => r.refresh(now).await,
            _ => Ok(()),
        }
    }

    /// The issuer a remote verifier fetches keys from.
    pub(crate) fn issuer(&self) -> Option<&str> {
        match &self.inner {
            Inner::Remote(r) => Some(r.issuer()),
            _ => None,
        }
    }

    /// Key fetches made so far (remote issuer); 0 for other verifiers.
    pub(crate) fn fetch_count(&self) -> u64 {
        match &self.inner {
            Inner::Remote(r) => r.fetch_count(),
            _ => 0,
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Static(k) => f.debug_tuple("Verifier::Static").field(k).finish(),
            Inner::Remote(r) => f.debug_tuple("Verifier::Remote").field(r).finish(),
            Inner::Introspection(i) => f.debug_tuple("Verifier::Introspection").field(i).finish(),
        }
    }
}
