//! The validation policy applied to claims after the signature verifies, and the
//! [`VerifiedClaims`] that only a successful verification produces.

use std::ops::Deref;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{Algorithm, Claims, Error, UnixTime};

/// Default largest token accepted, in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;
/// Default clock-skew leeway.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// A claim the policy may require to be present (`exp`, `iss` and `aud` always are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequiredClaim {
    /// `sub`
    Sub,
    /// `iat`
    Iat,
    /// `nbf`
    Nbf,
    /// `jti`
    Jti,
    /// `client_id`
    ClientId,
    /// `scope`
    Scope,
    /// `sid`
    Sid,
    /// `auth_time`
    AuthTime,
    /// `acr`
    Acr,
}

impl RequiredClaim {
    fn name(self) -> &'static str {
        match self {
            RequiredClaim::Sub => "sub",
            RequiredClaim::Iat => "iat",
            RequiredClaim::Nbf => "nbf",
            RequiredClaim::Jti => "jti",
            RequiredClaim::ClientId => "client_id",
            RequiredClaim::Scope => "scope",
            RequiredClaim::Sid => "sid",
            RequiredClaim::AuthTime => "auth_time",
            RequiredClaim::Acr => "acr",
        }
    }

    fn present_in(self, c: &Claims) -> bool {
        match self {
            RequiredClaim::Sub => c.sub.is_some(),
            RequiredClaim::Iat => c.iat.is_some(),
            RequiredClaim::Nbf => c.nbf.is_some(),
            RequiredClaim::Jti => c.jti.is_some(),
            RequiredClaim::ClientId => c.client_id.is_some(),
            RequiredClaim::Scope => c.scope.is_some(),
            RequiredClaim::Sid => c.sid.is_some(),
            RequiredClaim::AuthTime => c.auth_time.is_some(),
            RequiredClaim::Acr => c.acr.is_some(),
        }
    }
}

/// What makes a token acceptable: issuer(s), audience(s), leeway, required claims and
/// header `typ`. There is no way to accept any issuer or any audience.
#[derive(Debug, Clone)]
pub struct Validation {
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    required: Vec<RequiredClaim>,
    typ: Option<String>,
    max_token_len: usize,
}

impl Validation {
    /// A policy accepting tokens from `issuer` for `audience`, with a 30 s leeway and an
    /// 8 KiB size limit. `exp` is required.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Validation {
            issuers: vec![issuer.into()],
            audiences: vec![audience.into()],
            leeway: DEFAULT_LEEWAY,
            required: Vec::new(),
            typ: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// The RFC 9068 access-token profile: `typ` must be `at+jwt`, and `sub`, `client_id`,
    /// `iat` and `jti` must be present.
    pub fn access_token(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self::new(issuer, audience)
            .require_typ("at+jwt")
            .require(RequiredClaim::Sub)
            .require(RequiredClaim::ClientId)
            .require(RequiredClaim::Iat)
            .require(RequiredClaim::Jti)
    }

    /// Also accepts tokens from `issuer`.
    pub fn also_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Also accepts tokens for `audience`.
    pub fn also_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Allowed clock skew for `exp`, `nbf`, `iat` and `auth_time`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires `claim` to be present.
    pub fn require(mut self, claim: RequiredClaim) -> Self {
        if !self.required.contains(&claim) {
            self.required.push(claim);
        }
        self
    }

    /// Requires the header `typ` to be this media type (compared per RFC 7515 section
    /// 4.1.9: case-insensitively, with or without the `application/` prefix).
    pub fn require_typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Largest token accepted, in bytes (default 8 KiB).
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// The configured size limit.
    pub fn token_len_limit(&self) -> usize {
        self.max_token_len
    }

    /// The allowed clock skew ([`Validation::leeway`]).
    pub fn clock_leeway(&self) -> Duration {
        self.leeway
    }

    /// The accepted issuers.
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Applies the header `typ` rule.
    pub(crate) fn check_typ(&self, header_typ: Option<&str>) -> Result<(), Error> {
        match &self.typ {
            None => Ok(()),
            Some(want) => match header_typ {
                Some(got) if media_type_eq(got, want) => Ok(()),
                _ => Err(Error::WrongType),
            },
        }
    }

    /// Applies every claim rule at time `now`.
    pub(crate) fn check_claims(&self, c: &Claims, now: UnixTime) -> Result<(), Error> {
        let exp = c.exp.ok_or(Error::MissingClaim("exp"))?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(Error::Expired);
        }
        if let Some(nbf) = c.nbf
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(Error::NotYetValid);
        }
        if let Some(iat) = c.iat
            && iat > now.saturating_add(self.leeway)
        {
            return Err(Error::IssuedInFuture);
        }
        if let Some(auth_time) = c.auth_time
            && auth_time > now.saturating_add(self.leeway)
        {
            return Err(Error::InvalidClaim("auth_time"));
        }
        let iss = c.iss.as_deref().ok_or(Error::MissingClaim("iss"))?;
        if !self.issuers.iter().any(|i| i == iss) {
            return Err(Error::WrongIssuer);
        }
        if c.aud.is_empty() {
            return Err(Error::MissingClaim("aud"));
        }
        if !self.audiences.iter().any(|a| c.aud.contains(a)) {
            return Err(Error::WrongAudience);
        }
        for claim in &self.required {
            if !claim.present_in(c) {
                return Err(Error::MissingClaim(claim.name()));
            }
        }
        Ok(())
    }
}

/// `typ` values compare case-insensitively, and `application/` may be omitted.
fn media_type_eq(a: &str, b: &str) -> bool {
    fn strip(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &s[12..],
            _ => s,
        }
    }
    strip(a).eq_ignore_ascii_case(strip(b))
}

/// Claims of a token whose signature verified and whose claims passed a [`Validation`].
/// Only verification constructs this type; it dereferences to [`Claims`].
#[derive(Debug, Clone)]
pub struct VerifiedClaims {
    claims: Claims,
    kid: Option<String>,
    alg: Algorithm,
}

impl VerifiedClaims {
    pub(crate) fn new(claims: Claims, kid: Option<String>, alg: Algorithm) -> Self {
        VerifiedClaims { claims, kid, alg }
    }

    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The claims, moved out (the verification facts, `kid` and algorithm, are dropped).
    pub fn into_claims(self) -> Claims {
        self.claims
    }

    /// The `kid` of the key that verified the token.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm of the key that verified the token.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The custom (non-registered) claims deserialized into the caller's type.
    pub fn extra<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.claims.extra_as()
    }
}

impl Deref for VerifiedClaims {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_comparison_per_rfc7515() {
        assert!(media_type_eq("at+jwt", "at+jwt"));
        assert!(media_type_eq("application/at+JWT", "at+jwt"));
        assert!(media_type_eq("AT+JWT", "application/at+jwt"));
        assert!(!media_type_eq("JWT", "at+jwt"));
        assert!(!media_type_eq("application/jwt", "at+jwt"));
    }
}
