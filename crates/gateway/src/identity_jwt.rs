//! The optional identity JWT (proxy mode): a short-lived JWT the gateway signs per
//! identity and reuses for half its lifetime (`sub`, `scope`, `client_id`, the forwarded
//! claims; `iss` the gateway's URL, `aud` the upstream), so it says who the caller is, not
//! which request was allowed; and the JWKS the upstream verifies it with. Signing is
//! tessera-token's; the key is generated at start-up (ES256) or read from a PKCS#8 file
//! (a WARN when group or others can read it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use http::HeaderValue;
use serde_json::Map;
#[cfg(test)]
use serde_json::Value;
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
    /// Signed JWTs by identity (everything in them but `iat`/`exp`), reused for the first
    /// half of their lifetime: a signature per identity per half-TTL, not per request.
    recent: Mutex<HashMap<String, (HeaderValue, UnixTime)>>,
}

/// The claims an identity JWT sets itself.
const OWN_CLAIMS: [&str; 9] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
];

/// Past this many identities the reuse cache is emptied (its memory stays bounded; the
/// only cost is one signature per identity again).
const RECENT_MAX: usize = 10_000;

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
                if let Some(mode) = loose_permissions(path) {
                    tracing::warn!(
                        path = %path.display(),
                        mode = %format!("{mode:o}"),
                        "identity.jwt_key_file can be read or written by group or others: whoever reads it can sign identity JWTs the upstream accepts (chmod 600 it)"
                    );
                }
                SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| IdentityJwtError::Key(e.to_string()))?
            }
            None => SigningKey::generate(Algorithm::Es256)
                .map_err(|e| IdentityJwtError::Key(e.to_string()))?,
        };
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
            recent: Mutex::new(HashMap::new()),
        })
    }

    /// The JWKS document (compact JSON) with the one public key.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The identity JWT for the verified claims `identity` at `now`, as a header value; `None` if signing
    /// failed (logged; the request then goes without it, and an upstream that requires it
    /// refuses). Its `exp` is `now` + the TTL, or the access token's `exp` if sooner; one
    /// signed for the same identity less than half a TTL ago is reused.
    pub fn header_for(&self, identity: &Claims, now: UnixTime) -> Option<HeaderValue> {
        let mut extra = Map::new();
        // Claims the JWT sets itself are not copied (a JSON object with two `iss` members
        // is refused by careful parsers, tessera-token's included).
        for claim in self
            .claims
            .iter()
            .filter(|c| !OWN_CLAIMS.contains(&c.as_str()))
        {
            if let Some(v) = crate::identity::claim_value(identity, claim) {
                extra.insert(claim.clone(), v);
            }
        }
        let mut claims = Claims {
            iss: Some(self.issuer.clone()),
            sub: identity.sub.clone(),
            aud: Audience::new([self.audience.clone()]),
            client_id: identity.client_id.clone(),
            scope: identity.scope.clone(),
            // The access token's expiry, only for the reuse key (replaced below).
            exp: identity.exp,
            extra,
            ..Claims::default()
        };
        let key = serde_json::to_string(&claims).ok()?;
        let fresh = |issued: UnixTime| {
            issued.secs() <= now.secs() && now.secs() < issued.saturating_add(self.ttl / 2).secs()
        };
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((jwt, issued)) = recent.get(&key)
            && fresh(*issued)
        {
            return Some(jwt.clone());
        }
        drop(recent);
        let mut exp = now.saturating_add(self.ttl);
        if let Some(token_exp) = identity.exp
            && token_exp.secs() < exp.secs()
        {
            exp = token_exp;
        }
        claims.iat = Some(now);
        claims.exp = Some(exp);
        let jwt = match self.key.sign(&claims, Some(TYP)) {
            Ok(jwt) => HeaderValue::from_str(&jwt).ok()?,
            Err(e) => {
                tracing::error!(error = %e, "could not sign the identity JWT");
                return None;
            }
        };
        recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= RECENT_MAX {
            recent.clear();
        }
        recent.insert(key, (jwt.clone(), now));
        Some(jwt)
    }
}

/// The permission bits of `path` when group or others have any access to it (a private
/// key should be the owner's alone); `None` when not, or not knowable.
fn loose_permissions(path: &std::path::Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
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

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_token::{KeySet, Validation};

    fn signer(ttl: u64) -> IdentityJwt {
        let config = IdentityConfig {
            jwt: true,
            jwt_ttl_secs: ttl,
            claims: vec!["acr".into(), "tenant".into(), "iss".into(), "sub".into()],
            ..IdentityConfig::default()
        };
        IdentityJwt::new(&config, "https://gw.example", "http://127.0.0.1:8000").unwrap()
    }

    fn caller(sub: &str, exp: i64) -> Claims {
        let mut extra = Map::new();
        extra.insert("tenant".into(), "t1".into());
        extra.insert("secret_claim".into(), "not forwarded".into());
        Claims {
            acr: Some("urn:x".into()),
            sub: Some(sub.into()),
            client_id: Some("app".into()),
            scope: Some("a b".parse().unwrap()),
            exp: Some(UnixTime::from_secs(exp)),
            extra,
            ..Claims::default()
        }
    }

    #[test]
    fn the_jwt_verifies_with_the_published_jwks_and_carries_only_the_configured_claims() {
        let s = signer(60);
        let now = UnixTime::from_secs(1_800_000_000);
        let jwt = s.header_for(&caller("alice", 1_800_000_600), now).unwrap();
        let keys = KeySet::from_jwks(&JwkSet::from_json(s.jwks().as_bytes()).unwrap()).unwrap();
        let policy = Validation::new("https://gw.example", "http://127.0.0.1:8000");
        let v = keys.verify(jwt.to_str().unwrap(), &policy, now).unwrap();
        assert_eq!(v.sub.as_deref(), Some("alice"));
        assert_eq!(v.client_id.as_deref(), Some("app"));
        assert_eq!(v.acr.as_deref(), Some("urn:x"));
        assert_eq!(v.extra.get("tenant"), Some(&Value::from("t1")));
        assert!(!v.extra.contains_key("secret_claim"));
        assert_eq!(v.exp, Some(UnixTime::from_secs(1_800_000_060)));
        assert!(!s.jwks().contains("\"d\""), "a private key in the JWKS");
        // Another audience (another upstream) is refused.
        let other = Validation::new("https://gw.example", "http://other");
        assert!(keys.verify(jwt.to_str().unwrap(), &other, now).is_err());
    }

    #[test]
    fn a_jwt_is_reused_for_half_its_lifetime_and_never_outlives_the_access_token() {
        let s = signer(60);
        let t0 = UnixTime::from_secs(1_800_000_000);
        let alice = caller("alice", 1_800_000_600);
        let first = s.header_for(&alice, t0).unwrap();
        let at = |secs: i64| UnixTime::from_secs(1_800_000_000 + secs);
        assert_eq!(s.header_for(&alice, at(29)).unwrap(), first);
        assert_ne!(s.header_for(&alice, at(30)).unwrap(), first);
        assert_ne!(
            s.header_for(&caller("bob", 1_800_000_600), t0).unwrap(),
            first
        );
        // A clock that went back does not reuse a JWT "from the future".
        assert_ne!(
            s.header_for(&alice, UnixTime::from_secs(1_799_999_990))
                .unwrap(),
            first
        );

        let short = caller("carol", 1_800_000_010);
        let jwt = s.header_for(&short, t0).unwrap();
        let keys = KeySet::from_jwks(&JwkSet::from_json(s.jwks().as_bytes()).unwrap()).unwrap();
        let policy = Validation::new("https://gw.example", "http://127.0.0.1:8000");
        let v = keys.verify(jwt.to_str().unwrap(), &policy, t0).unwrap();
        assert_eq!(v.exp, Some(UnixTime::from_secs(1_800_000_010)));
    }

    #[test]
    fn a_key_file_is_used_and_a_missing_one_is_a_start_up_error() {
        let dir = std::env::temp_dir().join(format!("gw-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.pem");
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        std::fs::write(&path, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        let config = IdentityConfig {
            jwt_key_file: Some(path.clone()),
            ..IdentityConfig::default()
        };
        let s = IdentityJwt::new(&config, "https://gw", "http://up").unwrap();
        assert!(
            s.jwks()
                .contains(&key.public_jwk().unwrap().thumbprint().unwrap())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(loose_permissions(&path), None);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(loose_permissions(&path), Some(0o644));
        }
        let missing = IdentityConfig {
            jwt_key_file: Some(dir.join("missing.pem")),
            ..IdentityConfig::default()
        };
        assert!(IdentityJwt::new(&missing, "https://gw", "http://up").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
