//! The client credentials grant (RFC 6749 section 4.4): a confidential client gets an
//! access token for itself. No refresh token, and no store write per token. A DPoP
//! proof is recorded once the scope and audience were granted.

use crate::dpop::{self, Proof};
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
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::UnauthorizedClient(
            "public clients cannot use client_credentials",
        ));
    }
    let scope = resolve_scope(params.get("scope"), &client.scope)?;
    let audience = resolve_audience(params.get("resource"), &client.audience, &core.issuer)?;
    if let Some(proof) = proof {
        dpop::record(core, &client.id, proof)?;
    }
    let jkt = proof.map(Proof::jkt);
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
            jkt,
        },
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: dpop::token_type(jkt),
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
            dpop_bound_access_tokens: false,
            created_at: UnixTime::from_secs(0),
        }
    }

    /// The grant runs on a bare `Core`: no router, no HTTP.
    #[tokio::test]
    async fn a_confidential_client_gets_a_token_for_itself_with_its_shared_sid() {
        let (core, _dir, _clock) = testing::core().await;
        let params = Params::from_pairs([("scope".to_owned(), "read".to_owned())]).unwrap();
        let issued = exchange(&core, &client(true), &params, None).await.unwrap();
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
        let public = exchange(&core, &client(false), &none, None)
            .await
            .unwrap_err();
        assert_eq!(public.code(), "unauthorized_client");
        let wide = Params::from_pairs([("scope".to_owned(), "admin".to_owned())]).unwrap();
        let refused = exchange(&core, &client(true), &wide, None)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "invalid_scope");
    }

    /// RFC 9449 section 5.2: a client registered with `dpop_bound_access_tokens` gets
    /// nothing without a proof; with one, its token is bound to the proof's key, and
    /// the same proof does not work twice.
    #[tokio::test]
    async fn a_dpop_bound_client_needs_a_proof_and_gets_a_bound_token() {
        use serde_json::json;
        use tessera_token::dpop::sign_proof;
        use tessera_token::{Algorithm, SigningKey};

        use crate::audit::RequestContext;
        use crate::dpop;

        let (core, _dir, _clock) = testing::core().await;
        let core = std::sync::Arc::new(core);
        let mut svc = client(true);
        svc.dpop_bound_access_tokens = true;
        let ctx = || RequestContext {
            ip: None,
            user_agent: None,
        };
        let params =
            Params::from_pairs([("grant_type".to_owned(), "client_credentials".to_owned())])
                .unwrap();
        let refused = crate::grants::exchange(&core, &svc, &params, ctx(), None)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "invalid_dpop_proof");

        let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
        let url = core.url("/token");
        let claims =
            json!({"jti": "j1", "htm": "POST", "htu": url, "iat": core.clock.now().secs()});
        let proof = sign_proof(&key, &claims).unwrap();
        let checked = dpop::check(&core, &[&proof], "POST", &url).unwrap();
        // Refused for its scope, the request does not spend the proof.
        let wide = Params::from_pairs([
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("scope".to_owned(), "admin".to_owned()),
        ])
        .unwrap();
        let refused = crate::grants::exchange(&core, &svc, &wide, ctx(), checked.as_ref())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "invalid_scope");
        let issued = crate::grants::exchange(&core, &svc, &params, ctx(), checked.as_ref())
            .await
            .unwrap();
        assert_eq!(issued.token_type, "DPoP");
        let jkt = key.public_jwk().unwrap().thumbprint().unwrap();
        let verified = crate::tokens::verify_access(&core, &issued.access_token).unwrap();
        let cnf = verified.claims().cnf.as_ref().unwrap();
        assert_eq!(cnf.jkt.as_deref(), Some(jkt.as_str()));
        let seen = crate::tokens::introspect(&core, &svc, &issued.access_token)
            .await
            .unwrap();
        let seen = serde_json::to_value(seen).unwrap();
        assert_eq!(seen["token_type"], "DPoP");
        assert_eq!(seen["cnf"], json!({ "jkt": jkt }));

        let replayed = dpop::check(&core, &[&proof], "POST", &url).unwrap();
        let refused = crate::grants::exchange(&core, &svc, &params, ctx(), replayed.as_ref())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "invalid_dpop_proof");
    }
}
