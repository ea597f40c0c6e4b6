//! The static verifier: a fixed key set (one key, or a JWK Set read at start-up).

use tessera_token::{JwkSet, KeySet, UnixTime, Validation, VerifyingKey};

use super::{Inner, Verifier};
use crate::{BuildError, GuardError, Identity};

#[derive(Debug)]
pub(super) struct StaticKeys(KeySet);

impl StaticKeys {
    pub(super) fn verify(
        &self,
        token: &str,
        validation: &Validation,
        now: UnixTime,
    ) -> Result<Identity, GuardError> {
        self.0
            .verify(token, validation, now)
            .map(Identity::from_verified)
            .map_err(GuardError::InvalidToken)
    }
}

impl Verifier {
    /// Verifies with a fixed set of keys.
    pub fn keys(keys: KeySet) -> Self {
        Verifier {
            inner: Inner::Static(StaticKeys(keys)),
        }
    }

    /// Verifies with a single key.
    pub fn key(key: VerifyingKey) -> Result<Self, BuildError> {
        KeySet::new(vec![key])
            .map(Self::keys)
            .map_err(BuildError::Keys)
    }

    /// Verifies with the signature keys of a JWK Set document.
    pub fn jwks(json: &[u8]) -> Result<Self, BuildError> {
        let set = JwkSet::from_json(json).map_err(BuildError::Keys)?;
        KeySet::from_jwks(&set)
            .map(Self::keys)
            .map_err(BuildError::Keys)
    }
}
