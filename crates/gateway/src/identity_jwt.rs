//! The optional identity JWT (proxy mode): a short-lived JWT the gateway signs for each
//! forwarded request (`sub`, `scope`, `client_id`, the forwarded claims; `iss` the
//! gateway's URL, `aud` the upstream), and the JWKS the upstream verifies it with. Signing
//! is tessera-token's; the key is generated at start-up (ES256) or read from a PKCS#8 file.

use std::time::Duration;

use http::HeaderValue;
use serde_json::Map;
use tessera_guard::Identity;
use tessera_token::{Algorithm, Audience, Claims, JwkSet, SigningKey, UnixTime};

use crate::config::IdentityConfig;

/// The path the gateway serves its JWKS at (answered by the gateway, never proxied).
pub const JWKS_PATH: &str = "/.well-known/tessera-gateway/jwks.json";

/// The `typ` of an identity JWT (RFC 8725 section 3.11: not mistakable for an access token).
pub const TYP: &str = "tessera-identity+jwt";

/// Signs identity JWTs.
pub struct IdentityJwt {
    key: SigningKey,
    jwks: String,
    issuer: String,
    audience: String,
    ttl: Duration,
    claims: Vec<String>,
}

/// Why the identity JWT cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum IdentityJwtError {
    /// The key file could not be read.
    #[error("identity.jwt_key_file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key could not be generated or parsed, or has no public JWK.
    #[error("identity JWT key: {0}")]
    Key(String),
}

impl IdentityJwt {
    /// Builds the signer for `issuer` (the gateway's public URL) and `audience` (the
    /// upstream): the key from `identity.jwt_key_file`, or a fresh ES256 key.
    pub fn new(
        config: &IdentityConfig,
        issuer: &str,
        audience: &str,
    ) -> Result<IdentityJwt, IdentityJwtError> {
        let key = match &config.jwt_key_file {
            Some(path) => {
                let pem =
                    std::fs::read_to_string(path).map_err(|source| IdentityJwtError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| IdentityJwtError::Key(e.to_string()))?
            }
            None => SigningKey::generate(Algorithm::Es256)
                .map_err(|e| IdentityJwtError::Key(e.to_string()))?,
        };
        if key.algorithm() == Algorithm::Hs256 {
            return Err(IdentityJwtError::Key(
                "an HMAC key cannot be published in a JWKS; use ES256, EdDSA or RS256".into(),
            ));
        }
        let public = key
            .public_jwk()
            .ok_or_else(|| IdentityJwtError::Key("the key has no public JWK".into()))?;
        let kid = public
            .thumbprint()
            .map_err(|e| IdentityJwtError::Key(e.to_string()))?;
        let key = key.with_kid(kid);
        let public = key
            .public_jwk()
            .ok_or_else(|| IdentityJwtError::Key("the key has no public JWK".into()))?;
        let jwks = JwkSet { keys: vec![public] }.to_json();
        Ok(IdentityJwt {
            key,
            jwks,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl: Duration::from_secs(config.jwt_ttl_secs),
            claims: config.claims.clone(),
        })
    }

    /// The JWKS document (compact JSON) with the one public key.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The identity JWT for `identity` at `now`, as a header value; `None` if signing
    /// failed (logged; the request then goes without it, and an upstream that requires it
    /// refuses).
    pub fn header_for(&self, identity: &Identity, now: UnixTime) -> Option<HeaderValue> {
        let mut extra = Map::new();
        for claim in &self.claims {
            if let Some(v) = identity.extra.get(claim) {
                extra.insert(claim.clone(), v.clone());
            }
        }
        let claims = Claims {
            iss: Some(self.issuer.clone()),
            sub: identity.sub.clone(),
            aud: Audience::new([self.audience.clone()]),
            iat: Some(now),
            exp: Some(now.saturating_add(self.ttl)),
            client_id: identity.client_id.clone(),
            scope: identity.scope.clone(),
            extra,
            ..Claims::default()
        };
        match self.key.sign(&claims, Some(TYP)) {
            Ok(jwt) => HeaderValue::from_str(&jwt).ok(),
            Err(e) => {
                tracing::error!(error = %e, "could not sign the identity JWT");
                None
            }
        }
    }
}

impl std::fmt::Debug for IdentityJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityJwt")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}
