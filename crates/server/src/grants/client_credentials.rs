//! The client credentials grant (RFC 6749 section 4.4): a confidential client gets an
//! access token for itself. No refresh token, and no store write per token.

use crate::grants::{
    AccessGrant, Params, TokenResponse, mint_access_token, resolve_audience, resolve_scope,
    scope_member,
};
use crate::oauth::OAuthError;
use crate::state::AppState;
pub(crate) use crate::store::CLIENT_SID_PREFIX;
use crate::store::{ClientRecord, client_credentials_sid};

pub(crate) async fn exchange(
    state: &AppState,
    client: &ClientRecord,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::UnauthorizedClient(
            "public clients cannot use client_credentials",
        ));
    }
    let scope = resolve_scope(params.get("scope"), &client.scope)?;
    let audience = resolve_audience(params.get("resource"), &client.audience, &state.issuer)?;
    let sid = client_credentials_sid(&client.id);
    let (access_token, expires_in) = mint_access_token(
        state,
        &AccessGrant {
            sub: &client.id,
            client_id: &client.id,
            scope: &scope,
            audience: &audience,
            sid: &sid,
            auth_time: None,
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
