//! The authorization code grant: issuing a code (RFC 6749 section 4.1.2) and redeeming
//! it (section 4.1.3) with PKCE (RFC 7636 section 4.6). A code is bound to its client,
//! redirect URI and S256 challenge; it is redeemed once, in the same transaction that
//! stores the grant. A second redemption revokes the
//! grant the first one issued (section 4.1.2: "SHOULD revoke ... tokens previously
//! issued based on that authorization code"). A code requested with `dpop_jkt` (RFC 9449
//! section 10) is redeemed only with a DPoP proof by that key; presented without one, even
//! after its first redemption, it is refused and revokes nothing.

use serde_json::json;
use tessera_token::pkce::{self, ChallengeMethod};
use tessera_token::{OpaqueToken, Scope, TokenKind};

use crate::audit::audit;
use crate::dpop::{self, Proof};
use crate::grants::{
    AccessGrant, Params, TokenResponse, first_refresh_token, mint_access_token, refresh_binding,
    resolve_audience, scope_member,
};
use crate::ids::random_id;
use crate::oauth::OAuthError;
use crate::oidc;
use crate::state::Core;
use crate::store::{AuthCodeRecord, ClientRecord, GrantRecord, RedeemOutcome, SessionRecord};

const BAD_CODE: &str = "authorization code is invalid, expired or already used";

/// What a code is bound to: the validated authorization request it answers.
pub(crate) struct CodeRequest<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: &'a str,
    pub(crate) code_challenge: &'a str,
    pub(crate) scope: &'a Scope,
    pub(crate) nonce: Option<&'a str>,
    /// The thumbprint of the DPoP key the code is bound to (RFC 9449 section 10).
    pub(crate) dpop_jkt: Option<&'a str>,
}

/// The outcome of [`issue`].
pub(crate) enum Issued {
    /// The code to send to the client; only its hash is stored.
    Code(OpaqueToken),
    /// The session was live when read, but a revoke-all (or disable, or remove) has moved
    /// its user on since: no code outlives that.
    SessionRevoked,
}

/// Issues a code for `request` to the user signed in with `session` (RFC 6749 section
/// 4.1.2): stores its hash with the client, redirect URI, challenge, scope, nonce, the
/// session's sign-in time and the user's generation, for [`exchange`] to redeem.
pub(crate) async fn issue(
    core: &Core,
    request: &CodeRequest<'_>,
    session: &SessionRecord,
) -> Result<Issued, OAuthError> {
    let code = OpaqueToken::generate(TokenKind::AuthorizationCode)
        .map_err(|e| OAuthError::Server(e.to_string()))?;
    let now = core.clock.now();
    let record = AuthCodeRecord {
        hash: code.hash(),
        client_id: request.client_id.to_owned(),
        user_id: session.user_id.clone(),
        redirect_uri: request.redirect_uri.to_owned(),
        code_challenge: request.code_challenge.to_owned(),
        scope: request.scope.clone(),
        nonce: request.nonce.map(str::to_owned),
        auth_time: session.created_at,
        created_at: now,
        expires_at: now.saturating_add(core.config.tokens.authorization_code_ttl),
        used_at: None,
        grant_id: None,
        generation: session.generation,
        amr: session.amr.clone(),
        dpop_jkt: request.dpop_jkt.map(str::to_owned),
    };
    if !core.store.insert_auth_code(&record).await? {
        return Ok(Issued::SessionRevoked);
    }
    tracing::info!(client_id = %request.client_id, "authorization code issued");
    Ok(Issued::Code(code))
}

pub(crate) async fn exchange(
    core: &Core,
    client: &ClientRecord,
    params: &Params,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    let presented = params.require("code")?;
    let redirect_uri = params.require("redirect_uri")?;
    let verifier = params.require("code_verifier")?;
    let code = OpaqueToken::parse_kind(presented, TokenKind::AuthorizationCode)
        .map_err(|_| OAuthError::InvalidGrant(BAD_CODE))?;
    let hash = code.hash();
    let now = core.clock.now();
    let Some(record) = core.store.auth_code(&hash).await? else {
        return Err(OAuthError::InvalidGrant(BAD_CODE));
    };
    if record.client_id != client.id {
        return Err(OAuthError::InvalidGrant(BAD_CODE));
    }
    // RFC 9449 section 10: a code requested with `dpop_jkt` is redeemed only with a proof
    // by that key. Checked before reuse detection: whoever holds a leaked bound code but
    // not the key can neither redeem it nor, by replaying it, revoke the grant it gave.
    match (record.dpop_jkt.as_deref(), proof) {
        (None, _) => {}
        (Some(_), None) => {
            return Err(OAuthError::InvalidDpopProof(
                "this code is bound to a DPoP key: send a proof made with it",
            ));
        }
        (Some(bound), Some(p)) if bound == p.jkt() => {}
        (Some(_), Some(_)) => {
            return Err(OAuthError::InvalidDpopProof(
                "this code is bound to another DPoP key",
            ));
        }
    }
    if record.used_at.is_some() {
        revoke_reused(core, client, record.grant_id.as_deref(), &record.user_id).await?;
        return Err(OAuthError::InvalidGrant(BAD_CODE));
    }
    if record.expires_at <= now {
        return Err(OAuthError::InvalidGrant(BAD_CODE));
    }
    if record.redirect_uri != redirect_uri {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    pkce::check_verifier(verifier).map_err(|_| {
        OAuthError::invalid_request("code_verifier must be 43-128 unreserved characters")
    })?;
    pkce::verify(
        ChallengeMethod::S256,
        &record.code_challenge,
        verifier,
        false,
    )
    .map_err(|_| OAuthError::InvalidGrant("code_verifier does not match the code_challenge"))?;
    let mut audience = resolve_audience(params.get("resource"), &client.audience, &core.issuer)?;
    let jkt = proof.map(Proof::jkt);
    // With `openid`, the token is also for the userinfo endpoint at the issuer.
    if record.scope.contains("openid") && !audience.contains(&core.issuer) {
        audience.push(core.issuer.clone());
    }

    let grant = GrantRecord {
        id: random_id("g_")?,
        client_id: client.id.clone(),
        user_id: Some(record.user_id.clone()),
        scope: record.scope.clone(),
        audience: audience.clone(),
        created_at: record.auth_time,
        expires_at: now.saturating_add(core.config.tokens.refresh_absolute_ttl),
        revoked_at: None,
        generation: record.generation,
        amr: record.amr.clone(),
        dpop_jkt: refresh_binding(client, jkt),
    };
    let (refresh, first) = first_refresh_token(core, client, &grant, now)?;
    // The keys are checked before the code is spent, so a missing one leaves it redeemable.
    let ring = core.keys.current();
    if ring.signer(client.signing_alg).is_none() {
        let alg = client
            .signing_alg
            .map_or("the default algorithm", |a| a.name());
        return Err(OAuthError::no_signing_key(alg, core.key_retry_after()));
    }
    if record.scope.contains("openid") && ring.id_token_signer(client.id_token_alg).is_none() {
        let alg = client.id_token_alg.unwrap_or(crate::keys::ID_TOKEN_ALG);
        return Err(OAuthError::no_signing_key(
            alg.name(),
            core.key_retry_after(),
        ));
    }
    // Every check passed: the proof is spent now, before the code is.
    if let Some(proof) = proof {
        dpop::record(core, &client.id, proof)?;
    }
    match core
        .store
        .redeem_auth_code(&hash, now, &grant, first.as_ref())
        .await?
    {
        RedeemOutcome::Redeemed => {}
        RedeemOutcome::AlreadyUsed { grant_id } => {
            revoke_reused(core, client, grant_id.as_deref(), &record.user_id).await?;
            return Err(OAuthError::InvalidGrant(BAD_CODE));
        }
        RedeemOutcome::Unknown => return Err(OAuthError::InvalidGrant(BAD_CODE)),
    }
    audit(
        core,
        "login.success",
        Some(&client.id),
        Some(&record.user_id),
        json!({ "sid": grant.id, "grant_type": "authorization_code", "refresh_token": refresh.is_some() }),
    )
    .await;

    let (access_token, expires_in) = mint_access_token(
        core,
        &AccessGrant {
            sub: &record.user_id,
            client_id: &client.id,
            scope: &record.scope,
            audience: &audience,
            sid: &grant.id,
            auth_time: Some(record.auth_time),
            amr: Some(&record.amr),
            alg: client.signing_alg,
            jkt,
        },
    )?;
    let id_token = if record.scope.contains("openid") {
        Some(oidc::mint_id_token(
            core,
            &oidc::IdTokenFor {
                sub: &record.user_id,
                client,
                auth_time: record.auth_time,
                amr: &record.amr,
                nonce: record.nonce.as_deref(),
                sid: &grant.id,
                access_token: &access_token,
            },
        )?)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: dpop::token_type(jkt),
        expires_in,
        refresh_token: refresh.map(|t| t.expose().to_owned()),
        scope: scope_member(&record.scope),
        id_token,
    })
}

/// A code presented again: revokes the grant issued from its first redemption.
async fn revoke_reused(
    core: &Core,
    client: &ClientRecord,
    grant_id: Option<&str>,
    user_id: &str,
) -> Result<(), OAuthError> {
    if let Some(id) = grant_id {
        core.store.revoke_grant(id, core.revoked_now()).await?;
    }
    tracing::warn!(client_id = %client.id, sid = grant_id.unwrap_or_default(), "authorization code reuse: grant revoked");
    audit(
        core,
        "code.reuse",
        Some(&client.id),
        Some(user_id),
        json!({ "sid": grant_id }),
    )
    .await;
    Ok(())
}
