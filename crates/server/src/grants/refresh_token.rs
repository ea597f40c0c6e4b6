//! The refresh token grant (RFC 6749 section 6) with rotation on every use.
//!
//! A token's successor is derived, not random: HMAC(server key, parent hash). So every
//! caller presenting the same token within the grace window, on any replica, gets the same
//! successor without the store ever holding a plaintext token; the store's conditional
//! update picks the one caller that rotates. A used token presented after the grace
//! window revokes the whole family (its `sid` goes to the revocation feed), except once:
//! the retry, on this server, of a rotation it could not confirm ([`super::unconfirmed`]).
//! What follows a committed rotation is best effort; should the answer itself fail (no
//! signing key), the rotation counts as unconfirmed too, so the retry gets the successor.
//! A family bound to a DPoP key (a public client's) is refreshed only with a proof by it;
//! a public client's unbound family is bound by the first refresh that brings a proof.

use aws_lc_rs::hmac;
use serde_json::json;
use tessera_token::{OpaqueToken, Scope, TokenHash, TokenKind, UnixTime};

use crate::audit::{RequestContext, audit};
use crate::dpop::{self, Proof};
use crate::grants::{
    AccessGrant, Params, TokenResponse, mint_access_token, refresh_binding, scope_member,
};
use crate::oauth::OAuthError;
use crate::state::Core;
use crate::store::{ClientRecord, GrantRecord, NewRefreshToken, RotateOutcome};

const BAD_TOKEN: &str = "refresh token is invalid, expired or revoked";

pub(crate) async fn exchange(
    core: &Core,
    client: &ClientRecord,
    params: &Params,
    ctx: &RequestContext,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    let presented = params.require("refresh_token")?;
    let token = OpaqueToken::parse_kind(presented, TokenKind::RefreshToken)
        .map_err(|_| OAuthError::InvalidGrant(BAD_TOKEN))?;
    let hash = token.hash();
    let now = core.clock.now();
    let Some((record, grant)) = core.store.refresh_token(&hash).await? else {
        return Err(OAuthError::InvalidGrant(BAD_TOKEN));
    };
    // RFC 6749 section 6: the token must have been issued to the authenticated client;
    // and its user must still stand behind the grant (not removed, not disabled, no
    // "revoke all" since the sign-in it comes from), as read by the same query.
    if grant.client_id != client.id
        || grant.revoked_at.is_some()
        || !record.owner.allows(grant.generation)
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

    let jkt = binding(&grant, proof)?;
    // RFC 9449 section 5: a public client's refresh token issued in answer to a DPoP
    // request is bound; an unbound family is bound by the rotation that answers one.
    let bind = grant
        .dpop_jkt
        .is_none()
        .then(|| refresh_binding(client, jkt))
        .flatten();
    // Every check passed; the proof is spent before the rotation commits, so of two
    // concurrent refreshes with one proof only one gets past here.
    if let Some(proof) = proof {
        dpop::record(core, &client.id, proof)?;
    }

    let next = successor(&core.refresh_key, &hash)?;
    let new = NewRefreshToken {
        hash: next.hash(),
        grant_id: grant.id.clone(),
        issued_at: now,
        expires_at: now
            .saturating_add(core.config.tokens.refresh_idle_ttl)
            .min(grant.expires_at),
    };
    let outcome = match core
        .store
        .rotate_refresh_token(&hash, &new, now, bind.as_deref())
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => {
            // Committed or not, this server cannot tell (a lost acknowledgement looks
            // like any other failure): remember the token, so that if the rotation did
            // happen, the client's retry here gets the successor instead of counting
            // as reuse.
            core.unconfirmed.remember(&hash, now);
            return Err(e.into());
        }
    };
    match outcome {
        RotateOutcome::Rotated => {
            // A retry whose earlier attempt had not committed after all: nothing to keep.
            core.unconfirmed.take(&hash, now);
            // The rotation stands: nothing after it may turn the answer into a refusal.
            record_context(core, client, &grant, ctx).await;
        }
        RotateOutcome::AlreadyUsed { used_at } => {
            if retry_of_unconfirmed(core, &hash, &new, now).await? {
                tracing::info!(sid = %grant.id, client_id = %client.id, "refresh retried after an unconfirmed rotation: answered with its successor");
            } else if !within_grace(core, used_at, now) {
                revoke_family(core, client, &grant).await?;
                return Err(OAuthError::InvalidGrant(BAD_TOKEN));
            }
        }
        RotateOutcome::Unknown => return Err(OAuthError::InvalidGrant(BAD_TOKEN)),
    }

    let answer = answer(core, client, &grant, &scope, &next, jkt);
    if answer.is_err() {
        // The rotation stands but its successor was not handed out: let a retry have it.
        core.unconfirmed.remember(&hash, now);
    }
    answer
}

/// The response to a refresh whose rotation stands: a fresh access token and `next`.
fn answer(
    core: &Core,
    client: &ClientRecord,
    grant: &GrantRecord,
    scope: &Scope,
    next: &OpaqueToken,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let sub = grant.user_id.as_deref().unwrap_or(&grant.client_id);
    let (access_token, expires_in) = mint_access_token(
        core,
        &AccessGrant {
            sub,
            client_id: &client.id,
            scope,
            audience: &grant.audience,
            sid: &grant.id,
            auth_time: Some(grant.created_at),
            // A refresh is not a sign-in: the grant's own.
            amr: grant.user_id.is_some().then_some(&grant.amr),
            alg: client.signing_alg,
            jkt,
        },
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: dpop::token_type(jkt),
        expires_in,
        refresh_token: Some(next.expose().to_owned()),
        scope: scope_member(scope),
        id_token: None,
    })
}

/// The key this refresh's access token is bound to. A bound family (a public client's,
/// RFC 9449 section 5) needs a proof by its key, and keeps that binding; an unbound one
/// has its access token bound to the proof's key when there is one (and, a public
/// client's, the family too: see [`exchange`]).
fn binding<'p>(
    grant: &GrantRecord,
    proof: Option<&'p Proof>,
) -> Result<Option<&'p str>, OAuthError> {
    match (grant.dpop_jkt.as_deref(), proof) {
        (None, proof) => Ok(proof.map(Proof::jkt)),
        (Some(_), None) => Err(OAuthError::InvalidDpopProof(
            "this refresh token is bound to a DPoP key: send a proof made with it",
        )),
        (Some(bound), Some(proof)) if bound == proof.jkt() => Ok(Some(proof.jkt())),
        (Some(_), Some(_)) => Err(OAuthError::InvalidDpopProof(
            "this refresh token is bound to another DPoP key",
        )),
    }
}

/// True when the rotation of `parent` was unconfirmed on this server and its successor
/// `next` is in the store, unused, in a live family: the rotation had committed and this
/// is the client's retry. The memory is forgotten then (and when the successor is not
/// there), so a second retry is ordinary reuse.
async fn retry_of_unconfirmed(
    core: &Core,
    parent: &TokenHash,
    next: &NewRefreshToken,
    now: UnixTime,
) -> Result<bool, OAuthError> {
    if !core.unconfirmed.contains(parent, now) {
        return Ok(false);
    }
    // A store failure here answers 503 and keeps the memory for the next retry.
    let pending = match core.store.refresh_token(&next.hash).await? {
        Some((record, family)) => {
            record.used_at.is_none()
                && record.expires_at > now
                && family.id == next.grant_id
                && family.revoked_at.is_none()
                && record.owner.allows(family.generation)
        }
        None => false,
    };
    // Of concurrent retries, one takes the memory; the others are reuse.
    Ok(core.unconfirmed.take(parent, now) && pending)
}

/// True when a token first used at `used_at` may still be retried at `now`
/// (`refresh_reuse_grace_secs`; never when it is 0).
fn within_grace(core: &Core, used_at: UnixTime, now: UnixTime) -> bool {
    let grace = i64::try_from(core.config.tokens.refresh_reuse_grace.as_secs()).unwrap_or(60);
    grace > 0 && now.secs() - used_at.secs() <= grace
}

/// Reuse detected: revokes the whole family, counts and audits it.
async fn revoke_family(
    core: &Core,
    client: &ClientRecord,
    grant: &GrantRecord,
) -> Result<(), OAuthError> {
    core.store
        .revoke_grant(&grant.id, core.revoked_now())
        .await?;
    metrics::counter!(crate::metrics::REFRESH_REUSE).increment(1);
    tracing::warn!(sid = %grant.id, client_id = %client.id, "refresh token reuse: family revoked");
    audit(
        core,
        "refresh.reuse",
        Some(&client.id),
        grant.user_id.as_deref(),
        json!({ "sid": grant.id }),
    )
    .await;
    Ok(())
}

/// Records the context of this refresh and, when the family's previous request came from
/// another network or user agent, the audit event `refresh.new_context`. Best effort: it
/// runs after the rotation committed, so a failure is logged and counted, never answered.
async fn record_context(
    core: &Core,
    client: &ClientRecord,
    grant: &GrantRecord,
    ctx: &RequestContext,
) {
    let now = ctx.grant_context();
    let before = match core.store.swap_grant_context(&grant.id, &now).await {
        Ok(Some(before)) => before,
        Ok(None) => return,
        Err(e) => {
            metrics::counter!(crate::metrics::STORE_ERRORS).increment(1);
            tracing::warn!(sid = %grant.id, error = %e, "could not record the refresh context; the rotation stands");
            return;
        }
    };
    let net_changed = before.net.is_some() && now.net.is_some() && before.net != now.net;
    let agent_changed = before.agent.is_some() && before.agent != now.agent;
    if net_changed || agent_changed {
        tracing::warn!(sid = %grant.id, net_changed, agent_changed, "refresh from a new context");
        audit(
            core,
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

    /// RFC 9449 section 5: a bound family needs a proof by its key and keeps the binding;
    /// an unbound one binds only the access token, to whatever key proves.
    #[tokio::test]
    async fn a_bound_family_is_refreshed_only_with_a_proof_by_its_key() {
        use serde_json::json;
        use tessera_token::dpop::sign_proof;
        use tessera_token::{Algorithm, SigningKey};

        let (core, _dir, _clock) = crate::state::testing::core().await;
        let url = core.url("/token");
        let proof_by = |key: &SigningKey, jti: &str| {
            let claims =
                json!({"jti": jti, "htm": "POST", "htu": url, "iat": core.clock.now().secs()});
            let proof = sign_proof(key, &claims).unwrap();
            dpop::check(&core, &[&proof], "POST", &url)
                .unwrap()
                .unwrap()
        };
        let (mine, other) = (
            SigningKey::generate(Algorithm::Es256).unwrap(),
            SigningKey::generate(Algorithm::EdDsa).unwrap(),
        );
        let (mine_proof, other_proof) = (proof_by(&mine, "a"), proof_by(&other, "b"));
        let mut grant = GrantRecord {
            id: "g_1".into(),
            client_id: "spa".into(),
            user_id: Some("u_1".into()),
            scope: Scope::default(),
            audience: vec![],
            created_at: UnixTime::from_secs(0),
            expires_at: UnixTime::from_secs(i64::MAX),
            revoked_at: None,
            generation: 0,
            amr: crate::store::Amr::password(),
            dpop_jkt: Some(mine_proof.jkt().to_owned()),
        };
        assert_eq!(
            binding(&grant, Some(&mine_proof)).unwrap(),
            Some(mine_proof.jkt())
        );
        for refused in [binding(&grant, None), binding(&grant, Some(&other_proof))] {
            assert_eq!(refused.unwrap_err().code(), "invalid_dpop_proof");
        }
        grant.dpop_jkt = None;
        assert_eq!(binding(&grant, None).unwrap(), None);
        assert_eq!(
            binding(&grant, Some(&other_proof)).unwrap(),
            Some(other_proof.jkt())
        );
    }
}
