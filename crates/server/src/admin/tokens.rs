//! Operator token tools: mint an access token from the local store, verify one against the
//! store's published keys.

use std::time::Duration;

use serde_json::json;
use tessera_token::{Jwk, KeySet, Validation, VerifiedClaims, decode_unverified};

use super::Admin;
use crate::Error;
use crate::grants::{AccessGrant, resolve_audience, resolve_scope, sign_access_token};
use crate::ids::random_id;
use crate::keys;

/// What `tessera token mint` asks for.
#[derive(Debug, Clone, Default)]
pub struct MintRequest {
    /// client_id or name of the client the token is for.
    pub client: String,
    /// Subject; default: the client id.
    pub sub: Option<String>,
    /// Scope; default: the client's whole scope.
    pub scope: Option<String>,
    /// One of the client's audiences; default: all of them.
    pub audience: Option<String>,
    /// Lifetime; default: the configured access-token lifetime.
    pub ttl: Option<Duration>,
    /// Issuer; default: this data directory's issuer.
    pub issuer: Option<String>,
    /// Binds the token to a DPoP key (RFC 9449 section 6.1): `cnf.jkt`, the key's RFC 7638
    /// thumbprint.
    pub cnf_jkt: Option<String>,
}

impl Admin {
    /// The issuer this data directory's server uses (configured, or derived from `listen`).
    pub fn issuer(&self) -> String {
        self.config.serving.issuer_for(self.config.serving.listen)
    }

    /// Mints an access token for a client with the local keys, as the token endpoint would.
    pub async fn mint(&self, req: MintRequest) -> Result<String, Error> {
        let client = self.client(&req.client).await?;
        let issuer = match &req.issuer {
            Some(i) => crate::config::validate_issuer(i)?,
            None => self.issuer(),
        };
        let scope = resolve_scope(req.scope.as_deref(), &client.scope)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let audience = resolve_audience(req.audience.as_deref(), &client.audience, &issuer)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let ttl = req.ttl.unwrap_or(self.config.tokens.access_token_ttl);
        if !(1..=86_400).contains(&ttl.as_secs()) {
            return Err(Error::Invalid(
                "--ttl must be between 1 and 86400 seconds".into(),
            ));
        }
        let now = self.clock.now();
        let ring = keys::load_or_create(
            &*self.store,
            self.sealer(),
            self.config.signing.signing_alg,
            keys::Timings::of(&self.config),
            now,
        )
        .await?;
        if let Some(jkt) = &req.cnf_jkt {
            check_jkt(jkt)?;
        }
        let sub = req.sub.clone().unwrap_or_else(|| client.id.clone());
        let sid = match &req.sub {
            None => crate::store::client_credentials_sid(&client.id),
            Some(_) => random_id(crate::store::MINTED_SID_PREFIX)?,
        };
        let grant = AccessGrant {
            sub: &sub,
            client_id: &client.id,
            scope: &scope,
            audience: &audience,
            sid: &sid,
            auth_time: None,
            amr: None,
            alg: client.signing_alg,
            jkt: req.cnf_jkt.as_deref(),
        };
        let token = sign_access_token(&ring, &issuer, now, ttl, &grant)?;
        self.audit(
            "token.mint",
            Some(&client.id),
            None,
            json!({ "sub": sub, "sid": sid, "ttl": ttl.as_secs(), "dpop_bound": req.cnf_jkt.is_some() }),
        )
        .await;
        Ok(token)
    }

    /// Verifies an access token against the keys in the store (RFC 9068 profile); the
    /// audience defaults to the token's own first audience.
    pub async fn verify(
        &self,
        token: &str,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<VerifiedClaims, Error> {
        let invalid =
            |e: tessera_token::Error| Error::InvalidToken(format!("token is not valid: {e}"));
        let records = self.store.keys().await?;
        let mut keys = Vec::new();
        for r in &records {
            keys.push(tessera_token::VerifyingKey::from_jwk(&Jwk::from_json(
                r.public_jwk.as_bytes(),
            )?)?);
        }
        let set = KeySet::new(keys)?;
        let aud = match audience {
            Some(a) => a.to_owned(),
            None => decode_unverified(token)
                .map_err(invalid)?
                .claims
                .aud
                .iter()
                .next()
                .map(str::to_owned)
                .unwrap_or_default(),
        };
        let issuer = issuer.map_or_else(|| self.issuer(), str::to_owned);
        set.verify(
            token,
            &Validation::access_token(issuer, aud),
            self.clock.now(),
        )
        .map_err(invalid)
    }
}

/// Checks that `jkt` looks like an RFC 7638 SHA-256 thumbprint (43 base64url characters).
fn check_jkt(jkt: &str) -> Result<(), Error> {
    let is_b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if jkt.len() != 43 || !jkt.chars().all(is_b64url) {
        return Err(Error::Invalid(
            "--cnf-jkt must be an RFC 7638 SHA-256 thumbprint (43 base64url characters)".into(),
        ));
    }
    Ok(())
}
