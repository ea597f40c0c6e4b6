//! The token endpoint's grants (RFC 6749 section 4 and 6), one file each, behind one
//! dispatch function; plus what they share: parameters, scope and audience rules, and
//! minting the RFC 9068 access token.

pub(crate) mod authorization_code;
mod client_credentials;
mod password;
mod refresh_token;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use std::time::Duration;

use tessera_token::{
    Algorithm, Audience, Claims, Confirmation, OpaqueToken, Scope, TokenKind, UnixTime,
};
use zeroize::Zeroizing;

use crate::audit::RequestContext;
use crate::dpop::Proof;
use crate::ids::random_id;
use crate::keys::KeyRing;
use crate::oauth::OAuthError;
use crate::state::Core;
use crate::store::{Amr, ClientRecord, GrantRecord, GrantType, NewRefreshToken};

#[cfg(test)]
pub(crate) use refresh_token::successor;

/// A parameter name fit for an error description: at most 40 characters, no controls.
pub(crate) fn printable_name(name: &str) -> String {
    name.chars().take(40).filter(|c| !c.is_control()).collect()
}

/// Request parameters of a form-encoded body: each name at most once (RFC 6749 section
/// 3.2: "parameters MUST NOT be included more than once"); empty values count as absent
/// (section 3.1). Values may be secrets: `Debug` shows names only; zeroized on drop.
#[derive(Default)]
pub(crate) struct Params(BTreeMap<String, Zeroizing<String>>);

impl Params {
    /// Collects pairs, refusing a repeated name.
    pub(crate) fn from_pairs<I: IntoIterator<Item = (String, String)>>(
        pairs: I,
    ) -> Result<Self, OAuthError> {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if map.contains_key(&k) {
                let name = printable_name(&k);
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name} is repeated"
                )));
            }
            map.insert(k, Zeroizing::new(v));
        }
        Ok(Params(map))
    }

    /// A parameter's value; empty means absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(|v| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A required parameter.
    pub(crate) fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A successful token response (RFC 6749 section 5.1). `Debug` hides the tokens.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    /// `Bearer`, or `DPoP` when the access token is bound to the key of the request's
    /// DPoP proof (RFC 9449 section 5).
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    /// OpenID Connect ID token (authorization code grant with scope `openid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Parses `grant_type`, checks the client may use it, and runs the grant. With a DPoP
/// `proof` (checked by [`dpop::check`]) the access token is bound to its key; a client
/// registered with `dpop_bound_access_tokens` must send one (RFC 9449 section 5.2). Each
/// grant records the proof against replay ([`dpop::record`]) only once every one of its
/// own checks passed (credentials, scope, audience, the binding of the family or code),
/// just before it writes or mints: a request refused for any other reason does not spend
/// its proof, and an unauthenticated caller cannot fill the replay cache.
pub(crate) async fn exchange(
    core: &std::sync::Arc<Core>,
    client: &ClientRecord,
    params: &Params,
    ctx: RequestContext,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    let grant = grant_type(params)?;
    if !client.allows(grant) {
        return Err(OAuthError::UnauthorizedClient(
            "this client is not registered for this grant type",
        ));
    }
    if client.dpop_bound_access_tokens && proof.is_none() {
        return Err(OAuthError::InvalidDpopProof(
            "this client must send a DPoP proof with every token request",
        ));
    }
    tracing::Span::current().record("grant_type", grant.as_str());
    let issued = match grant {
        GrantType::ClientCredentials => {
            client_credentials::exchange(core, client, params, proof).await
        }
        GrantType::Password => password::exchange(core, client, params, ctx, proof).await,
        GrantType::RefreshToken => refresh_token::exchange(core, client, params, &ctx, proof).await,
        GrantType::AuthorizationCode => {
            authorization_code::exchange(core, client, params, proof).await
        }
    }?;
    crate::metrics::token_issued(grant);
    Ok(issued)
}

/// `grant_type`: missing is `invalid_request`, unknown is `unsupported_grant_type`.
pub(crate) fn grant_type(params: &Params) -> Result<GrantType, OAuthError> {
    params
        .require("grant_type")?
        .parse()
        .map_err(|_| OAuthError::UnsupportedGrantType)
}

/// The scope to grant (RFC 6749 section 3.3): everything `allowed` when none is asked
/// for; otherwise the request, which must be well-formed and within `allowed`.
pub(crate) fn resolve_scope(requested: Option<&str>, allowed: &Scope) -> Result<Scope, OAuthError> {
    let Some(s) = requested else {
        return Ok(allowed.clone());
    };
    let requested: Scope = s
        .parse()
        .map_err(|_| OAuthError::InvalidScope("scope is malformed"))?;
    if !requested.is_subset(allowed) {
        return Err(OAuthError::InvalidScope(
            "scope includes a value this client may not request",
        ));
    }
    Ok(requested.intersection(allowed))
}

/// The audience (RFC 8707 `resource`): one of the client's audiences, or all of them;
/// a client without audiences gets the issuer.
pub(crate) fn resolve_audience(
    resource: Option<&str>,
    registered: &[String],
    issuer: &str,
) -> Result<Vec<String>, OAuthError> {
    match resource {
        Some(r) if registered.iter().any(|a| a == r) => Ok(vec![r.to_owned()]),
        Some(_) => Err(OAuthError::InvalidTarget),
        None if registered.is_empty() => Ok(vec![issuer.to_owned()]),
        None => Ok(registered.to_vec()),
    }
}

/// What goes into an access token besides the server's own claims.
pub(crate) struct AccessGrant<'a> {
    pub(crate) sub: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) scope: &'a Scope,
    pub(crate) audience: &'a [String],
    pub(crate) sid: &'a str,
    pub(crate) auth_time: Option<UnixTime>,
    /// How the user signed in (`acr`, `amr`); `None` for a client's own token.
    pub(crate) amr: Option<&'a Amr>,
    /// The client's signing algorithm, `None` for the server's default.
    pub(crate) alg: Option<Algorithm>,
    /// The thumbprint of the DPoP key the token is bound to (`cnf.jkt`), if any.
    pub(crate) jkt: Option<&'a str>,
}

/// Signs an RFC 9068 access token (`typ: at+jwt`) with the active key; returns the token
/// and its lifetime in seconds.
pub(crate) fn mint_access_token(
    core: &Core,
    g: &AccessGrant<'_>,
) -> Result<(String, u64), OAuthError> {
    let ttl = core.config.tokens.access_token_ttl;
    let ring = core.keys.current();
    if ring.signer(g.alg).is_none() {
        let alg = g.alg.map_or("the default algorithm", |a| a.name());
        return Err(OAuthError::no_signing_key(alg, core.key_retry_after()));
    }
    let token = sign_access_token(&ring, &core.issuer, core.clock.now(), ttl, g)
        .map_err(|e| OAuthError::Server(e.to_string()))?;
    Ok((token, ttl.as_secs()))
}

/// Builds and signs the claims of an access token; shared by the grants and `token mint`.
pub(crate) fn sign_access_token(
    ring: &KeyRing,
    issuer: &str,
    now: UnixTime,
    ttl: Duration,
    g: &AccessGrant<'_>,
) -> Result<String, crate::Error> {
    let mut claims = Claims {
        iss: Some(issuer.to_owned()),
        sub: Some(g.sub.to_owned()),
        aud: Audience::new(g.audience.iter().cloned()),
        exp: Some(now.saturating_add(ttl)),
        iat: Some(now),
        jti: Some(random_id("")?),
        client_id: Some(g.client_id.to_owned()),
        scope: (!g.scope.is_empty()).then(|| g.scope.clone()),
        sid: Some(g.sid.to_owned()),
        auth_time: g.auth_time,
        cnf: g.jkt.map(|jkt| Confirmation {
            jkt: Some(jkt.to_owned()),
            ..Confirmation::default()
        }),
        ..Claims::default()
    };
    if let Some(amr) = g.amr {
        crate::oidc::add_assurance(&mut claims, amr);
    }
    let key = ring.signer(g.alg).ok_or_else(|| {
        let alg = g.alg.map_or("the default algorithm", |a| a.name());
        crate::Error::Key(format!(
            "no active key for {alg}; run `tessera keys rotate --alg {alg}`"
        ))
    })?;
    let token = key.sign(&claims, Some("at+jwt"))?;
    if let Some(jti) = &claims.jti {
        // The request's one log line names the token (observe.rs); the event is for debugging.
        let span = tracing::Span::current();
        span.record("sid", g.sid);
        span.record("jti", jti.as_str());
        tracing::debug!(client_id = g.client_id, sid = g.sid, jti = %jti, kid = key.kid().unwrap_or_default(), "access token issued");
    }
    Ok(token)
}

/// The response's `scope` member: present when not empty.
pub(crate) fn scope_member(scope: &Scope) -> Option<String> {
    (!scope.is_empty()).then(|| scope.to_string())
}

/// The key a new grant's refresh tokens are bound to: a public client's proof key
/// (RFC 9449 section 5); a confidential client's refresh tokens stay unbound, its
/// authentication protects them.
pub(crate) fn refresh_binding(client: &ClientRecord, jkt: Option<&str>) -> Option<String> {
    jkt.filter(|_| client.is_public()).map(str::to_owned)
}

/// The first refresh token of a new grant when the client may refresh: the token for the
/// response and its record for the store (idle lifetime, capped by the grant's).
pub(crate) fn first_refresh_token(
    core: &Core,
    client: &ClientRecord,
    grant: &GrantRecord,
    now: UnixTime,
) -> Result<(Option<OpaqueToken>, Option<NewRefreshToken>), OAuthError> {
    if !client.allows(GrantType::RefreshToken) {
        return Ok((None, None));
    }
    let token = OpaqueToken::generate(TokenKind::RefreshToken)
        .map_err(|e| OAuthError::Server(e.to_string()))?;
    let record = NewRefreshToken {
        hash: token.hash(),
        grant_id: grant.id.clone(),
        issued_at: now,
        expires_at: now
            .saturating_add(core.config.tokens.refresh_idle_ttl)
            .min(grant.expires_at),
    };
    Ok((Some(token), Some(record)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_refuse_repeats_and_treat_empty_as_absent() {
        let p =
            Params::from_pairs([("a".into(), "1".into()), ("b".into(), String::new())]).unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert!(Params::from_pairs([("a".into(), "1".into()), ("a".into(), "2".into())]).is_err());
        let secret = Params::from_pairs([("password".into(), "hunter2".into())]).unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn scope_rules() {
        let allowed: Scope = "a b".parse().unwrap();
        assert_eq!(resolve_scope(None, &allowed).unwrap(), allowed);
        assert_eq!(resolve_scope(Some("b"), &allowed).unwrap().to_string(), "b");
        assert!(resolve_scope(Some("c"), &allowed).is_err());
        assert!(resolve_scope(Some("a  b"), &allowed).is_err());
    }

    #[test]
    fn audience_rules() {
        let reg = vec!["api".to_owned(), "other".to_owned()];
        assert_eq!(resolve_audience(None, &reg, "iss").unwrap(), reg);
        assert_eq!(
            resolve_audience(Some("api"), &reg, "iss").unwrap(),
            vec!["api"]
        );
        assert!(resolve_audience(Some("nope"), &reg, "iss").is_err());
        assert_eq!(resolve_audience(None, &[], "iss").unwrap(), vec!["iss"]);
    }
}
