//! What the server knows about a token it issued: revocation (RFC 7009) and
//! introspection (RFC 7662). Refresh tokens are looked up by hash; access tokens are
//! verified with the server's own keys and checked against the revocation feed.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tessera_token::{OpaqueToken, TokenKind, Validation, VerifiedClaims, decode_unverified};

use crate::audit::audit;
use crate::oauth::OAuthError;
use crate::state::Core;
use crate::store::ClientRecord;

/// Verifies an access token this server issued (signature, `typ`, `iss`, `exp` with no
/// leeway); `None` for anything else.
pub(crate) fn verify_access(core: &Core, token: &str) -> Option<VerifiedClaims> {
    let unverified = decode_unverified(token).ok()?;
    let aud = unverified.claims.aud.iter().next()?.to_owned();
    let policy = Validation::access_token(core.issuer.clone(), aud).leeway(Duration::ZERO);
    core.keys
        .current()
        .verifier()
        .verify(token, &policy, core.clock.now())
        .ok()
}

/// RFC 7009 section 2.1: revokes `token` if `client` may. A refresh token revokes its
/// whole grant; an access token puts its `jti` into the feed. Unknown, invalid or foreign
/// tokens are ignored (the answer is 200 either way, section 2.2).
///
/// Only a revocation that will write spends the client's `/revoke` budget
/// ([`Core::revoke_limit`]): the client's own token, not yet revoked. Garbage, foreign
/// and already-revoked tokens write nothing, so anyone who knows a public client's id
/// cannot spend its budget and hold up its users' revocations.
pub(crate) async fn revoke(
    core: &Core,
    client: &ClientRecord,
    token: &str,
) -> Result<(), OAuthError> {
    // RFC 7009 section 2.1: a token issued to another client is refused, not revoked;
    // an unknown, expired or malformed token answers 200 (section 2.2).
    const NOT_YOURS: &str = "the token was not issued to this client";
    if let Ok(rt) = OpaqueToken::parse_kind(token, TokenKind::RefreshToken) {
        let Some((_, grant)) = core.store.refresh_token(&rt.hash()).await? else {
            return Ok(());
        };
        if grant.client_id != client.id {
            return Err(OAuthError::UnauthorizedClient(NOT_YOURS));
        }
        if grant.revoked_at.is_some() {
            return Ok(());
        }
        core.revoke_limit.check(&client.id)?;
        if core
            .store
            .revoke_grant(&grant.id, core.revoked_now())
            .await?
        {
            audit(
                core,
                "revoke.grant",
                Some(&client.id),
                grant.user_id.as_deref(),
                json!({ "sid": grant.id }),
            )
            .await;
        }
        return Ok(());
    }
    let Some(claims) = verify_access(core, token) else {
        return Ok(());
    };
    if claims.client_id.as_deref() != Some(client.id.as_str()) {
        return Err(OAuthError::UnauthorizedClient(NOT_YOURS));
    }
    let (Some(jti), Some(exp)) = (claims.jti.as_deref(), claims.exp) else {
        return Ok(());
    };
    // Revoking a token already in the feed writes nothing and audits nothing (issue 14:
    // repeated revocations must not grow the feed or the audit log), and costs nothing.
    if core.store.is_revoked(Some(jti), None).await? {
        return Ok(());
    }
    core.revoke_limit.check(&client.id)?;
    if core.store.revoke_jti(jti, exp, core.clock.now()).await? {
        audit(
            core,
            "revoke.access_token",
            Some(&client.id),
            None,
            json!({ "jti": jti }),
        )
        .await;
    }
    Ok(())
}

/// RFC 7662 section 2.2 introspection response. Inactive is `{"active": false}` and
/// nothing else; absent members are omitted.
// The served type is the documented type (`/openapi.json`). Members in alphabetical order:
// the bytes the former `json!` map (sorted) produced.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub(crate) struct IntrospectionResponse {
    /// The sign-in's Authentication Context Class Reference (RFC 9470 section 6.1); user
    /// access tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<String>,
    active: bool,
    /// How the user signed in (RFC 8176 values); user access tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<Vec<String>>,
    /// When the user last authenticated (RFC 9470 section 6.1); user access tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// RFC 7800 confirmation of a DPoP-bound access token: `{"jkt": <thumbprint>}`
    /// (RFC 9449 section 6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    cnf: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    /// `Bearer` for access tokens, `DPoP` for DPoP-bound ones; absent for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    /// `access_token` or `refresh_token` (what was introspected).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_use: Option<&'static str>,
}

/// RFC 7662 section 2.2: the token's state. Anything not active is `{"active": false}`
/// and nothing else. Active answers carry `token_use` (`access_token` or `refresh_token`,
/// as Ory Hydra names it), `iss` and `aud`; `token_type` (`Bearer`, or `DPoP` with `cnf`
/// for a bound token) only for access tokens.
pub(crate) async fn introspect(
    core: &Core,
    client: &ClientRecord,
    token: &str,
) -> Result<IntrospectionResponse, OAuthError> {
    let inactive = IntrospectionResponse::default();
    let now = core.clock.now();
    if let Ok(rt) = OpaqueToken::parse_kind(token, TokenKind::RefreshToken) {
        let Some((record, grant)) = core.store.refresh_token(&rt.hash()).await? else {
            return Ok(inactive);
        };
        let live = grant.client_id == client.id
            && grant.revoked_at.is_none()
            && record.owner.allows(grant.generation)
            && record.used_at.is_none()
            && record.expires_at > now
            && grant.expires_at > now;
        if !live {
            return Ok(inactive);
        }
        // No `token_type`: RFC 7662 means the access token type (the scheme, `Bearer`),
        // and a refresh token is not presented under any scheme. `token_use` says what it
        // is, so a resource server never takes it for an access token.
        return Ok(IntrospectionResponse {
            active: true,
            token_use: Some("refresh_token"),
            client_id: Some(grant.client_id),
            iss: Some(core.issuer.clone()),
            aud: Some(grant.audience),
            iat: Some(record.issued_at.secs()),
            exp: Some(record.expires_at.secs()),
            sid: Some(grant.id),
            sub: grant.user_id,
            scope: (!grant.scope.is_empty()).then(|| grant.scope.to_string()),
            ..IntrospectionResponse::default()
        });
    }
    let Some(claims) = verify_access(core, token) else {
        return Ok(inactive);
    };
    if core
        .store
        .is_revoked(claims.jti.as_deref(), claims.sid.as_deref())
        .await?
    {
        return Ok(inactive);
    }
    if !owner_stands(core, &claims).await? {
        return Ok(inactive);
    }
    let mut claims = claims.into_claims();
    let jkt = claims.cnf.as_ref().and_then(|c| c.jkt.as_deref());
    // RFC 9470 section 6.1: a resource server that introspects learns the sign-in's
    // assurance as one that verifies the JWT does (RFC 7662 allows extra members).
    let amr = match claims.extra.remove("amr") {
        Some(serde_json::Value::Array(values)) => values
            .into_iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    Ok(IntrospectionResponse {
        active: true,
        acr: claims.acr,
        amr,
        auth_time: claims.auth_time.map(|t| t.secs()),
        token_type: Some(crate::dpop::token_type(jkt)),
        cnf: jkt.map(|jkt| json!({ "jkt": jkt })),
        token_use: Some("access_token"),
        aud: Some(claims.aud.iter().map(str::to_owned).collect()),
        exp: claims.exp.map(|t| t.secs()),
        iat: claims.iat.map(|t| t.secs()),
        scope: claims.scope.as_ref().map(ToString::to_string),
        iss: claims.iss,
        sub: claims.sub,
        client_id: claims.client_id,
        jti: claims.jti,
        sid: claims.sid,
    })
}

/// True when the user behind an access token's grant still stands behind it, by the same
/// rule as a refresh ([`crate::store::GrantOwner::allows`]): not removed, not disabled, no
/// "revoke all" since the sign-in. A client's own token and an operator's minted token
/// (their `sid` names no stored grant, only the client or the mint) have no sign-in to ask
/// about; the revocation feed still reaches them.
async fn owner_stands(core: &Core, claims: &VerifiedClaims) -> Result<bool, OAuthError> {
    let Some(sid) = claims.sid.as_deref() else {
        return Ok(true);
    };
    if sid.starts_with(crate::store::CLIENT_SID_PREFIX)
        || sid.starts_with(crate::store::MINTED_SID_PREFIX)
    {
        return Ok(true);
    }
    // A grant that is gone was purged by the janitor after its absolute lifetime ended
    // (or a day after its revocation, whose feed entry outlives every access token of
    // it); an access token minted near that end may outlive the row by up to its own
    // lifetime, and stays bounded by its `exp` and the feed, as a guard checking
    // signatures would judge it.
    Ok(match core.store.grant_owner(sid).await? {
        Some((grant, owner)) => owner.allows(grant.generation),
        None => true,
    })
}
