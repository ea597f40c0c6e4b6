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

#[cfg(test)]
mod tests {
    use tessera_token::{Algorithm, Audience, Claims, SigningKey};

    use super::*;

    #[test]
    fn single_key_and_jwks_document() {
        let key = SigningKey::generate(Algorithm::Es256)
            .unwrap()
            .with_kid("k1");
        let now = UnixTime::from_secs(1_800_000_000);
        let claims = Claims {
            iss: Some("https://as".into()),
            aud: Audience::new(["api"]),
            exp: Some(UnixTime::from_secs(now.secs() + 60)),
            ..Claims::default()
        };
        let token = key.sign(&claims, None).unwrap();
        let policy = Validation::new("https://as", "api");
        let jwks = format!(r#"{{"keys":[{}]}}"#, key.public_jwk().unwrap().to_json());
        for v in [
            Verifier::key(key.verifying_key().unwrap()).unwrap(),
            Verifier::jwks(jwks.as_bytes()).unwrap(),
        ] {
            let Inner::Static(s) = &v.inner else { panic!() };
            assert!(s.verify(&token, &policy, now).is_ok());
        }
        assert!(Verifier::jwks(b"{}").is_err());
    }
}
