//! The token endpoint's grants (RFC 6749 section 4 and 6), one file each, behind one
//! dispatch function; plus what they share: parameters, scope and audience rules, and
//! minting the RFC 9068 access token.

pub(crate) mod authorization_code;
mod client_credentials;
mod password;
mod refresh_token;
mod unconfirmed;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use std::time::Duration;

use tessera_token::{Algorithm, Audience, Claims, OpaqueToken, Scope, TokenKind, UnixTime};
use zeroize::Zeroizing;

use crate::ids::random_id;
use crate::keys::KeyRing;
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::store::{AuditEvent, ClientRecord, GrantRecord, GrantType, NewRefreshToken};

pub(crate) use client_credentials::CLIENT_SID_PREFIX;

/// Prefix of the `sid` of an access token minted by `tessera token mint --sub`: it names
/// no stored grant and no user sign-in, only the operator's mint (audited as `token.mint`).
pub(crate) const MINTED_SID_PREFIX: &str = "m_";
#[cfg(test)]
pub(crate) use refresh_token::successor;
#[cfg(test)]
pub(crate) use unconfirmed::REMEMBER_SECS;
pub(crate) use unconfirmed::UnconfirmedRotations;

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

/// Facts about the request beyond its parameters.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestContext {
    /// The peer's address, when known.
    pub(crate) ip: Option<std::net::IpAddr>,
    /// The `User-Agent` header, when sent (at most 200 characters).
    pub(crate) user_agent: Option<String>,
}

impl RequestContext {
    /// The grant context to store: the peer's /24 (IPv4) or /48 (IPv6), and the agent.
    pub(crate) fn grant_context(&self) -> crate::store::GrantContext {
        crate::store::GrantContext {
            net: self.ip.map(network),
            agent: self.user_agent.clone(),
        }
    }
}

/// The /24 (IPv4) or /48 (IPv6) network of an address, as `ADDR/LEN`.
pub(crate) fn network(ip: std::net::IpAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{}/24", Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        },
    }
}

/// Parses `grant_type`, checks the client may use it, and runs the grant.
pub(crate) async fn exchange(
    state: &std::sync::Arc<AppState>,
    client: &ClientRecord,
    params: &Params,
    ctx: RequestContext,
) -> Result<TokenResponse, OAuthError> {
    let grant = grant_type(params)?;
    if !client.allows(grant) {
        return Err(OAuthError::UnauthorizedClient(
            "this client is not registered for this grant type",
        ));
    }
    tracing::Span::current().record("grant_type", grant.as_str());
    let issued = match grant {
        GrantType::ClientCredentials => client_credentials::exchange(state, client, params).await,
        GrantType::Password => password::exchange(state, client, params, ctx).await,
        GrantType::RefreshToken => refresh_token::exchange(state, client, params, &ctx).await,
        GrantType::AuthorizationCode => authorization_code::exchange(state, client, params).await,
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
    /// The client's signing algorithm, `None` for the server's default.
    pub(crate) alg: Option<Algorithm>,
}

/// Signs an RFC 9068 access token (`typ: at+jwt`) with the active key; returns the token
/// and its lifetime in seconds.
pub(crate) fn mint_access_token(
    state: &AppState,
    g: &AccessGrant<'_>,
) -> Result<(String, u64), OAuthError> {
    let ttl = state.config.access_token_ttl;
    let ring = state.keys.current();
    if ring.signer(g.alg).is_none() {
        let alg = g.alg.map_or("the default algorithm", |a| a.name());
        return Err(OAuthError::no_signing_key(state, alg));
    }
    let token = sign_access_token(&ring, &state.issuer, state.clock.now(), ttl, g)
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
    let claims = Claims {
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
        ..Claims::default()
    };
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

/// Records an audit event; a failure is logged, never surfaced to the client.
pub(crate) async fn audit(
    state: &AppState,
    kind: &str,
    client_id: Option<&str>,
    user_id: Option<&str>,
    detail: serde_json::Value,
) {
    let event = AuditEvent {
        at: state.clock.now(),
        kind: kind.to_owned(),
        client_id: client_id.map(str::to_owned),
        user_id: user_id.map(str::to_owned),
        detail: detail.to_string(),
    };
    if let Err(e) = state.store.record(&event).await {
        tracing::warn!(error = %e, kind, "could not record audit event");
    }
}

/// The first refresh token of a new grant when the client may refresh: the token for the
/// response and its record for the store (idle lifetime, capped by the grant's).
pub(crate) fn first_refresh_token(
    state: &AppState,
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
            .saturating_add(state.config.refresh_idle_ttl)
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
    fn networks_are_slash_24_and_slash_48() {
        let n = |s: &str| network(s.parse().unwrap());
        assert_eq!(n("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(n("::ffff:192.0.2.77"), "192.0.2.0/24");
        assert_eq!(n("2001:db8:1:2:3::9"), "2001:db8:1::/48");
        assert_ne!(n("192.0.2.1"), n("192.0.3.1"));
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
