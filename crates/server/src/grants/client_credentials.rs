//! The client credentials grant (RFC 6749 section 4.4): a confidential client gets an
//! access token for itself. No refresh token, and no store write per token.

use crate::grants::{
    AccessGrant, Params, TokenResponse, mint_access_token, resolve_audience, resolve_scope,
    scope_member,
};
use crate::oauth::OAuthError;
use crate::state::Core;
use crate::store::{ClientRecord, client_credentials_sid};

pub(crate) async fn exchange(
    core: &Core,
    client: &ClientRecord,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::UnauthorizedClient(
            "public clients cannot use client_credentials",
        ));
    }
    let scope = resolve_scope(params.get("scope"), &client.scope)?;
    let audience = resolve_audience(params.get("resource"), &client.audience, &core.issuer)?;
    let sid = client_credentials_sid(&client.id);
    let (access_token, expires_in) = mint_access_token(
        core,
        &AccessGrant {
            sub: &client.id,
            client_id: &client.id,
            scope: &scope,
            audience: &audience,
            sid: &sid,
            auth_time: None,
            amr: None,
            alg: client.signing_alg,
        },
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: None,
        scope: scope_member(&scope),
        id_token: None,
    })
}

#[cfg(test)]
mod tests {
    use tessera_token::{Scope, UnixTime};

    use super::*;
    use crate::state::testing;
    use crate::store::GrantType;

    fn client(secret: bool) -> ClientRecord {
        ClientRecord {
            id: "svc".into(),
            name: "svc".into(),
            secret_hash: secret.then(|| tessera_token::TokenHash::of(b"tsr_cs_x")),
            grant_types: vec![GrantType::ClientCredentials],
            scope: "read write".parse::<Scope>().unwrap(),
            audience: vec!["api".into()],
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            first_party: false,
            signing_alg: None,
            id_token_alg: None,
            created_at: UnixTime::from_secs(0),
        }
    }

    /// The grant runs on a bare `Core`: no router, no HTTP.
    #[tokio::test]
    async fn a_confidential_client_gets_a_token_for_itself_with_its_shared_sid() {
        let (core, _dir, _clock) = testing::core().await;
        let params = Params::from_pairs([("scope".to_owned(), "read".to_owned())]).unwrap();
        let issued = exchange(&core, &client(true), &params).await.unwrap();
        assert_eq!(issued.scope.as_deref(), Some("read"));
        assert!(issued.refresh_token.is_none());
        let verified = crate::tokens::verify_access(&core, &issued.access_token).unwrap();
        let claims = verified.claims();
        assert_eq!(claims.sub.as_deref(), Some("svc"));
        assert_eq!(claims.sid.as_deref(), Some("cc_svc"));
        assert!(claims.aud.iter().any(|a| a == "api"));
    }

    #[tokio::test]
    async fn a_public_client_or_a_scope_beyond_its_own_is_refused() {
        let (core, _dir, _clock) = testing::core().await;
        let none = Params::from_pairs([]).unwrap();
        let public = exchange(&core, &client(false), &none).await.unwrap_err();
        assert_eq!(public.code(), "unauthorized_client");
        let wide = Params::from_pairs([("scope".to_owned(), "admin".to_owned())]).unwrap();
        let refused = exchange(&core, &client(true), &wide).await.unwrap_err();
        assert_eq!(refused.code(), "invalid_scope");
    }
}
