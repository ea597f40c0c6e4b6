//! The refresh token grant (RFC 6749 section 6) with rotation on every use.
//!
//! A token's successor is derived, not random: HMAC(server key, parent hash). So every
//! caller presenting the same token within the grace window, on any replica, gets the same
//! successor without the store ever holding a plaintext token; the store's conditional
//! update picks the one caller that rotates. A used token presented after the grace
//! window revokes the whole family (its `sid` goes to the revocation feed).

use aws_lc_rs::hmac;
use serde_json::json;
use tessera_token::{OpaqueToken, Scope, TokenHash, TokenKind};

use crate::grants::{
    AccessGrant, Params, RequestContext, TokenResponse, audit, mint_access_token, scope_member,
};
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::store::{ClientRecord, NewRefreshToken, RotateOutcome};

const BAD_TOKEN: &str = "refresh token is invalid, expired or revoked";

pub(crate) async fn exchange(
    state: &AppState,
    client: &ClientRecord,
    params: &Params,
    ctx: &RequestContext,
) -> Result<TokenResponse, OAuthError> {
    let presented = params.require("refresh_token")?;
    let token = OpaqueToken::parse_kind(presented, TokenKind::RefreshToken)
        .map_err(|_| OAuthError::InvalidGrant(BAD_TOKEN))?;
    let hash = token.hash();
    let now = state.clock.now();
    let Some((record, grant)) = state.store.refresh_token(&hash).await? else {
        return Err(OAuthError::InvalidGrant(BAD_TOKEN));
    };
    // RFC 6749 section 6: the token must have been issued to the authenticated client.
    if grant.client_id != client.id
        || grant.revoked_at.is_some()
        || record.expires_at <= now
        || grant.expires_at <= now
    {
        return Err(OAuthError::InvalidGrant(BAD_TOKEN));
    }
    let scope = match params.get("scope") {
        None => grant.scope.clone(),
        Some(s) => {
            let asked: Scope = s
                .parse()
                .map_err(|_| OAuthError::InvalidScope("scope is malformed"))?;
            if !asked.is_subset(&grant.scope) {
                return Err(OAuthError::InvalidScope(
                    "a refresh may narrow the scope, never widen it",
                ));
            }
            asked
        }
    };

    let next = successor(&state.refresh_key, &hash)?;
    let new = NewRefreshToken {
        hash: next.hash(),
        grant_id: grant.id.clone(),
        issued_at: now,
        expires_at: now
            .saturating_add(state.config.refresh_idle_ttl)
            .min(grant.expires_at),
    };
    match state.store.rotate_refresh_token(&hash, &new, now).await? {
        RotateOutcome::Rotated => new_context(state, client, &grant, ctx).await?,
        RotateOutcome::AlreadyUsed { used_at } => {
            let grace = i64::try_from(state.config.refresh_reuse_grace.as_secs()).unwrap_or(60);
            let within = grace > 0 && now.secs() - used_at.secs() <= grace;
            if !within {
                let revoked = state.revoked_now();
                state.store.revoke_grant(&grant.id, revoked).await?;
                metrics::counter!(crate::metrics::REFRESH_REUSE).increment(1);
                tracing::warn!(sid = %grant.id, client_id = %client.id, "refresh token reuse: family revoked");
                audit(
                    state,
                    "refresh.reuse",
                    Some(&client.id),
                    grant.user_id.as_deref(),
                    json!({ "sid": grant.id }),
                )
                .await;
                return Err(OAuthError::InvalidGrant(BAD_TOKEN));
            }
        }
        RotateOutcome::Unknown => return Err(OAuthError::InvalidGrant(BAD_TOKEN)),
    }

    let sub = grant.user_id.as_deref().unwrap_or(&grant.client_id);
    let (access_token, expires_in) = mint_access_token(
        state,
        &AccessGrant {
            sub,
            client_id: &client.id,
            scope: &scope,
            audience: &grant.audience,
            sid: &grant.id,
            auth_time: Some(grant.created_at),
            alg: client.signing_alg,
        },
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: Some(next.expose().to_owned()),
        scope: scope_member(&scope),
        id_token: None,
    })
}

/// Records the context of this refresh and, when the family's previous request came from
/// another network or user agent, the audit event `refresh.new_context`.
async fn new_context(
    state: &AppState,
    client: &ClientRecord,
    grant: &crate::store::GrantRecord,
    ctx: &RequestContext,
) -> Result<(), OAuthError> {
    let now = ctx.grant_context();
    let Some(before) = state.store.swap_grant_context(&grant.id, &now).await? else {
        return Ok(());
    };
    let net_changed = before.net.is_some() && now.net.is_some() && before.net != now.net;
    let agent_changed = before.agent.is_some() && before.agent != now.agent;
    if net_changed || agent_changed {
        tracing::warn!(sid = %grant.id, net_changed, agent_changed, "refresh from a new context");
        audit(
            state,
            "refresh.new_context",
            Some(&client.id),
            grant.user_id.as_deref(),
            json!({
                "sid": grant.id,
                "previous_net": before.net,
                "net": now.net,
                "previous_user_agent": before.agent,
                "user_agent": now.agent,
            }),
        )
        .await;
    }
    Ok(())
}

/// The successor of the refresh token hashing to `parent`: its 256 secret bits are
/// HMAC-SHA256(key, parent hash), in tessera-token's opaque format.
pub(crate) fn successor(key: &hmac::Key, parent: &TokenHash) -> Result<OpaqueToken, OAuthError> {
    let tag = hmac::sign(key, parent.as_bytes());
    let bits: &[u8; 32] = tag
        .as_ref()
        .try_into()
        .map_err(|_| OAuthError::Server("HMAC-SHA256 tag is not 32 bytes".into()))?;
    Ok(OpaqueToken::from_secret_bytes(
        TokenKind::RefreshToken,
        bits,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_is_deterministic_valid_and_keyed() {
        let k1 = hmac::Key::new(hmac::HMAC_SHA256, &[1u8; 32]);
        let k2 = hmac::Key::new(hmac::HMAC_SHA256, &[2u8; 32]);
        let parent = OpaqueToken::generate(TokenKind::RefreshToken)
            .unwrap()
            .hash();
        let a = successor(&k1, &parent).unwrap();
        assert_eq!(a, successor(&k1, &parent).unwrap());
        assert_ne!(a, successor(&k2, &parent).unwrap());
        assert_ne!(a.hash(), parent);
        assert!(OpaqueToken::parse_kind(a.expose(), TokenKind::RefreshToken).is_ok());
    }
}
