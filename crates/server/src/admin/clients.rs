//! Operator client management: register (with the checks that name the fix), list,
//! rotate a secret, change the ID-token algorithm or the DPoP requirement, remove.

use serde_json::json;
use tessera_token::{Algorithm, OpaqueToken, TokenKind};

use super::{Admin, check_name, parse_scope};
use crate::Error;
use crate::ids::random_id;
use crate::store::{ClientRecord, GrantType};

/// A client to register.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Unique name.
    pub name: String,
    /// Grant types it may use.
    pub grant_types: Vec<GrantType>,
    /// Allowed scope, space-separated (may be empty).
    pub scope: String,
    /// Audiences of its access tokens.
    pub audience: Vec<String>,
    /// Redirect URIs of the authorization code flow (matched exactly).
    pub redirect_uris: Vec<String>,
    /// OpenID Connect `post_logout_redirect_uri`s.
    pub post_logout_redirect_uris: Vec<String>,
    /// A first-party client: no consent page.
    pub first_party: bool,
    /// A public client (no secret).
    pub public: bool,
    /// Algorithm of its access tokens; `None` for the server's default.
    pub signing_alg: Option<Algorithm>,
    /// Algorithm of its ID tokens (`id_token_signed_response_alg`); `None` for RS256.
    pub id_token_alg: Option<Algorithm>,
    /// RFC 9449 `dpop_bound_access_tokens`: every token request must carry a DPoP proof.
    pub dpop_bound_access_tokens: bool,
}

impl Admin {
    /// Registers a client; returns it and, for a confidential client, its secret (shown
    /// once, stored only as a hash).
    pub async fn add_client(
        &self,
        new: NewClient,
    ) -> Result<(ClientRecord, Option<OpaqueToken>), Error> {
        check_name("client", &new.name)?;
        if new.grant_types.is_empty() {
            return Err(Error::Invalid(
                "a client needs at least one grant type; add --grant-types client_credentials (or password, refresh_token)".into(),
            ));
        }
        if new.public && new.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(Error::Invalid(
                "public clients cannot use client_credentials; drop --public or the grant type"
                    .into(),
            ));
        }
        let scope = parse_scope(&new.scope)?;
        if new.signing_alg.is_some_and(|a| !a.is_asymmetric()) {
            return Err(Error::Invalid(
                "--signing-alg must be EdDSA, ES256 or RS256".into(),
            ));
        }
        // An unsigned (`none`) or shared-secret (HS256) ID token would let anyone, or the
        // client itself, forge the user's identity.
        if new.id_token_alg.is_some_and(|a| !a.is_asymmetric()) {
            return Err(Error::Invalid(
                "--id-token-alg must be RS256, ES256 or EdDSA".into(),
            ));
        }
        for a in &new.audience {
            if a.is_empty() || a.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::Invalid(format!(
                    "audience {a:?} must be one word without spaces"
                )));
            }
        }
        for u in new
            .redirect_uris
            .iter()
            .chain(&new.post_logout_redirect_uris)
        {
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && !u.contains('#')
                && !u.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(Error::Invalid(format!(
                    "redirect URI {u:?} must be an absolute http(s) URI without a fragment"
                )));
            }
        }
        if new.grant_types.contains(&GrantType::AuthorizationCode) && new.redirect_uris.is_empty() {
            return Err(Error::Invalid(
                "authorization_code needs at least one --redirect-uri".into(),
            ));
        }
        let secret = if new.public {
            None
        } else {
            Some(OpaqueToken::generate(TokenKind::ClientSecret)?)
        };
        let mut grant_types = new.grant_types.clone();
        grant_types.dedup();
        let client = ClientRecord {
            id: random_id("")?,
            name: new.name.clone(),
            secret_hash: secret.as_ref().map(OpaqueToken::hash),
            grant_types,
            scope,
            audience: new.audience,
            redirect_uris: new.redirect_uris,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            first_party: new.first_party,
            signing_alg: new.signing_alg,
            id_token_alg: new.id_token_alg,
            dpop_bound_access_tokens: new.dpop_bound_access_tokens,
            created_at: self.clock.now(),
        };
        self.store
            .insert_client(&client)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => {
                    Error::Conflict(format!("client {} already exists", new.name))
                }
                other => other,
            })?;
        self.audit(
            "client.add",
            Some(&client.id),
            None,
            json!({ "name": client.name }),
        )
        .await;
        Ok((client, secret))
    }

    /// All clients.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>, Error> {
        Ok(self.store.clients().await?)
    }

    pub(crate) async fn client(&self, key: &str) -> Result<ClientRecord, Error> {
        self.store.client_by_id_or_name(key).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "no client with id or name {key}; see `tessera client list`"
            ))
        })
    }

    /// Replaces a confidential client's secret; the old one stops working at once.
    pub async fn rotate_secret(&self, key: &str) -> Result<(ClientRecord, OpaqueToken), Error> {
        let client = self.client(key).await?;
        if client.is_public() {
            return Err(Error::Invalid(format!(
                "client {} is public and has no secret",
                client.name
            )));
        }
        let secret = OpaqueToken::generate(TokenKind::ClientSecret)?;
        self.store
            .set_client_secret(&client.id, &secret.hash())
            .await?;
        self.audit("client.rotate_secret", Some(&client.id), None, json!({}))
            .await;
        Ok((client, secret))
    }

    /// Sets the algorithm of a client's ID tokens (`id_token_signed_response_alg`) in
    /// place: same client_id, secret and grants. Servers apply it once their client cache
    /// entry expires (`client_cache_ttl_secs`).
    pub async fn set_id_token_alg(&self, key: &str, alg: Algorithm) -> Result<ClientRecord, Error> {
        // Same rule as at registration: unsigned or shared-secret ID tokens are forgeable.
        if !alg.is_asymmetric() {
            return Err(Error::Invalid(
                "--id-token-alg must be RS256, ES256 or EdDSA".into(),
            ));
        }
        let mut client = self.client(key).await?;
        let from = client.id_token_alg.unwrap_or(crate::keys::ID_TOKEN_ALG);
        self.store.set_client_id_token_alg(&client.id, alg).await?;
        self.audit(
            "client.update",
            Some(&client.id),
            None,
            json!({ "id_token_alg": { "from": from.name(), "to": alg.name() } }),
        )
        .await;
        client.id_token_alg = Some(alg);
        Ok(client)
    }

    /// Sets whether a client must send a DPoP proof with every token request (RFC 9449
    /// `dpop_bound_access_tokens`), in place. Servers apply it once their client cache
    /// entry expires (`client_cache_ttl_secs`); tokens issued before keep their binding
    /// or lack of one.
    pub async fn set_dpop_bound(&self, key: &str, required: bool) -> Result<ClientRecord, Error> {
        let mut client = self.client(key).await?;
        let from = client.dpop_bound_access_tokens;
        self.store
            .set_client_dpop_bound(&client.id, required)
            .await?;
        self.audit(
            "client.update",
            Some(&client.id),
            None,
            json!({ "dpop_bound_access_tokens": { "from": from, "to": required } }),
        )
        .await;
        client.dpop_bound_access_tokens = required;
        Ok(client)
    }

    /// Removes a client and revokes everything issued to it.
    pub async fn remove_client(&self, key: &str) -> Result<ClientRecord, Error> {
        let client = self.client(key).await?;
        self.store.remove_client(&client.id, self.revoked()).await?;
        self.audit(
            "client.remove",
            Some(&client.id),
            None,
            json!({ "name": client.name }),
        )
        .await;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{FileConfig, Overrides, ServerConfig};
    use crate::store::sqlite::SqliteStore;

    async fn admin() -> Admin {
        let mut config =
            ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
        config.store.data_dir = tempfile::tempdir().unwrap().keep();
        Admin::for_tests(Arc::new(SqliteStore::in_memory().await.unwrap()), config)
    }

    #[tokio::test]
    async fn shared_secret_id_tokens_are_refused_at_registration_and_others_kept() {
        let admin = admin().await;
        let rp = NewClient {
            name: "rp".into(),
            grant_types: vec![GrantType::AuthorizationCode],
            redirect_uris: vec!["https://rp.example/cb".into()],
            public: true,
            ..NewClient::default()
        };
        // HS256 would be keyed with a secret the client holds: it could forge ID tokens.
        let hs = NewClient {
            id_token_alg: Some(Algorithm::Hs256),
            ..rp.clone()
        };
        let refused = admin.add_client(hs).await.unwrap_err();
        assert!(matches!(refused, Error::Invalid(ref m) if m.contains("--id-token-alg")));
        assert!(admin.clients().await.unwrap().is_empty(), "nothing stored");
        let (ed, _) = admin
            .add_client(NewClient {
                id_token_alg: Some(Algorithm::EdDsa),
                ..rp.clone()
            })
            .await
            .unwrap();
        let back = admin.store.client(&ed.id).await.unwrap().unwrap();
        assert_eq!(back.id_token_alg, Some(Algorithm::EdDsa));
        let (default, _) = admin
            .add_client(NewClient {
                name: "rp2".into(),
                ..rp
            })
            .await
            .unwrap();
        let back = admin.store.client(&default.id).await.unwrap().unwrap();
        assert_eq!(back.id_token_alg, None, "None: RS256");
    }
}
