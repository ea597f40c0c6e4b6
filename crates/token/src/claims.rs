//! JWT claims: RFC 7519 registered claims, the RFC 9068 access-token profile, OIDC
//! session members and the RFC 7800 `cnf` confirmation, plus any custom claims.

pub(crate) mod read;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;

/// Seconds since the Unix epoch (a JWT NumericDate). Time is always passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(i64);

impl UnixTime {
    /// The instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        UnixTime(secs)
    }

    /// Seconds since the epoch.
    pub const fn secs(self) -> i64 {
        self.0
    }

    /// This instant plus `d` (saturating).
    pub fn saturating_add(self, d: Duration) -> Self {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        UnixTime(self.0.saturating_add(secs))
    }

    /// This instant minus `d` (saturating).
    pub fn saturating_sub(self, d: Duration) -> Self {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        UnixTime(self.0.saturating_sub(secs))
    }
}

impl From<SystemTime> for UnixTime {
    /// Converts a clock reading; times before the epoch map to negative seconds.
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UnixTime(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Err(e) => UnixTime(-i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX)),
        }
    }
}

/// The `aud` claim: one or more audiences. Serialized as a string when there is one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience(Vec<String>);

impl Audience {
    /// An audience list.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Self {
        Audience(values.into_iter().map(Into::into).collect())
    }

    /// True when `aud` names this audience.
    pub fn contains(&self, aud: &str) -> bool {
        self.0.iter().any(|a| a == aud)
    }

    /// The audiences.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

/// An OAuth 2 scope (RFC 6749 section 3.3): a set of case-sensitive scope tokens,
/// written space-delimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    /// True when the scope includes `token`.
    pub fn contains(&self, token: &str) -> bool {
        self.0.iter().any(|t| t == token)
    }

    /// True when every token of `self` is in `other`.
    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.iter().all(|t| other.contains(t))
    }

    /// The tokens of `self` that are also in `other`, in `self`'s order.
    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(
            self.0
                .iter()
                .filter(|t| other.contains(t))
                .cloned()
                .collect(),
        )
    }

    /// The scope tokens.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// True when there is no token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for Scope {
    type Err = Error;

    /// Parses `scope-token *( SP scope-token )`; repeated tokens are kept once.
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut tokens: Vec<String> = Vec::new();
        for token in s.split(' ') {
            let valid = !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
            if !valid {
                return Err(Error::InvalidClaim("scope"));
            }
            if !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_owned());
            }
        }
        Ok(Scope(tokens))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The `cnf` confirmation claim (RFC 7800): the key a sender-constrained token is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    /// RFC 9449 DPoP: base64url SHA-256 thumbprint of the proof key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// RFC 8705 mutual TLS: base64url SHA-256 of the client certificate.
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    /// Other confirmation methods, which a resource server must not ignore.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A JWT claims set. Registered and profile claims are typed fields; anything else is in
/// `extra`. Build one to sign; verification hands back a [`crate::VerifiedClaims`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Claims {
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject: the user, or the client for client credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience(s).
    #[serde(skip_serializing_if = "Audience::is_empty")]
    pub aud: Audience,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<UnixTime>,
    /// Not before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<UnixTime>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<UnixTime>,
    /// Unique token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// RFC 9068: the client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// RFC 9068 / RFC 8693: granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Grant or session id the token belongs to (the unit of "log out").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// When the user authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixTime>,
    /// Authentication context class reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Confirmation (sender-constraint) of the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The claims [`Claims`] has a field for. Every other member goes to `extra`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registered {
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Jti,
    ClientId,
    Scope,
    Sid,
    AuthTime,
    Acr,
    Cnf,
}

impl Registered {
    const ALL: [Registered; 13] = [
        Registered::Iss,
        Registered::Sub,
        Registered::Aud,
        Registered::Exp,
        Registered::Nbf,
        Registered::Iat,
        Registered::Jti,
        Registered::ClientId,
        Registered::Scope,
        Registered::Sid,
        Registered::AuthTime,
        Registered::Acr,
        Registered::Cnf,
    ];

    fn named(name: &str) -> Option<Registered> {
        Registered::ALL.into_iter().find(|c| c.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Registered::Iss => "iss",
            Registered::Sub => "sub",
            Registered::Aud => "aud",
            Registered::Exp => "exp",
            Registered::Nbf => "nbf",
            Registered::Iat => "iat",
            Registered::Jti => "jti",
            Registered::ClientId => "client_id",
            Registered::Scope => "scope",
            Registered::Sid => "sid",
            Registered::AuthTime => "auth_time",
            Registered::Acr => "acr",
            Registered::Cnf => "cnf",
        }
    }
}

impl Claims {
    /// Reads registered claims from a parsed JSON object, checking their types; every
    /// other member goes to `extra`. A refusal names the wrong-typed claim of least name,
    /// whatever order the map walks in (`serde_json`'s `preserve_order` feature, which
    /// another crate may turn on, changes it). This is the reference [`read::claims`],
    /// which reads the bytes without building the map, is tested against.
    #[cfg(test)]
    pub(crate) fn from_object(map: Map<String, Value>) -> Result<Self, Error> {
        let mut c = Claims::default();
        let mut wrong: Option<&'static str> = None;
        for (name, value) in map {
            if let Some(claim) = Registered::named(&name) {
                if c.set(claim, value).is_err() && wrong.is_none_or(|w| claim.name() < w) {
                    wrong = Some(claim.name());
                }
            } else {
                c.extra.insert(name, value);
            }
        }
        match wrong {
            Some(name) => Err(Error::InvalidClaim(name)),
            None => Ok(c),
        }
    }

    /// Sets a registered claim from its JSON value, checking its type: the one place
    /// each claim's rule lives. The error names the claim.
    fn set(&mut self, claim: Registered, value: Value) -> Result<(), Error> {
        let name = claim.name();
        match claim {
            Registered::Iss => self.iss = Some(string(value, name)?),
            Registered::Sub => self.sub = Some(string(value, name)?),
            Registered::Aud => self.aud = audience(value)?,
            Registered::Exp => self.exp = Some(numeric_date(value, name)?),
            Registered::Nbf => self.nbf = Some(numeric_date(value, name)?),
            Registered::Iat => self.iat = Some(numeric_date(value, name)?),
            Registered::Jti => self.jti = Some(string(value, name)?),
            Registered::ClientId => self.client_id = Some(string(value, name)?),
            Registered::Scope => self.scope = Some(string(value, name)?.parse()?),
            Registered::Sid => self.sid = Some(string(value, name)?),
            Registered::AuthTime => self.auth_time = Some(numeric_date(value, name)?),
            Registered::Acr => self.acr = Some(string(value, name)?),
            Registered::Cnf => self.cnf = Some(confirmation(value)?),
        }
        Ok(())
    }

    /// Deserializes the custom claims (`extra`) into the caller's own type.
    pub fn extra_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(&self.extra).map_err(|_| Error::InvalidClaim("custom claims"))
    }
}

fn string(value: Value, name: &'static str) -> Result<String, Error> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(Error::InvalidClaim(name)),
    }
}

/// NumericDate (RFC 7519 section 2): a JSON number of seconds; fractions are truncated.
fn numeric_date(value: Value, name: &'static str) -> Result<UnixTime, Error> {
    let Value::Number(n) = value else {
        return Err(Error::InvalidClaim(name));
    };
    if let Some(i) = n.as_i64() {
        return Ok(UnixTime(i));
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(UnixTime(f.floor() as i64)),
        _ => Err(Error::InvalidClaim(name)),
    }
}

fn audience(value: Value) -> Result<Audience, Error> {
    match value {
        Value::String(s) => Ok(Audience(vec![s])),
        Value::Array(items) => items
            .into_iter()
            .map(|v| string(v, "aud"))
            .collect::<Result<Vec<_>, _>>()
            .map(Audience),
        _ => Err(Error::InvalidClaim("aud")),
    }
}

impl Confirmation {
    /// Reads a `cnf` member from JSON (an introspection answer, RFC 7662 with RFC 9449
    /// section 6.2): `jkt` and `x5t#S256` typed, anything else kept in `other`.
    pub fn from_value(value: Value) -> Result<Self, Error> {
        confirmation(value)
    }
}

fn confirmation(value: Value) -> Result<Confirmation, Error> {
    let Value::Object(members) = value else {
        return Err(Error::InvalidClaim("cnf"));
    };
    let mut cnf = Confirmation::default();
    for (name, value) in members {
        match name.as_str() {
            "jkt" => cnf.jkt = Some(string(value, "cnf")?),
            "x5t#S256" => cnf.x5t_s256 = Some(string(value, "cnf")?),
            _ => {
                cnf.other.insert(name, value);
            }
        }
    }
    Ok(cnf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_grammar() {
        let s: Scope = "notes:read notes:write notes:read".parse().unwrap();
        assert_eq!(s.to_string(), "notes:read notes:write");
        assert!(s.contains("notes:write"));
        for bad in ["", "a  b", " a", "a ", "a\"b", "a\\b", "é", "a\tb"] {
            assert_eq!(
                bad.parse::<Scope>(),
                Err(Error::InvalidClaim("scope")),
                "{bad:?}"
            );
        }
        let narrow: Scope = "notes:read".parse().unwrap();
        assert!(narrow.is_subset(&s));
        assert!(!s.is_subset(&narrow));
        assert_eq!(s.intersection(&narrow), narrow);
    }

    #[test]
    fn audience_serializes_as_string_when_single() {
        let one = Audience::new(["api"]);
        assert_eq!(serde_json::to_string(&one).unwrap(), r#""api""#);
        let two = Audience::new(["a", "b"]);
        assert_eq!(serde_json::to_string(&two).unwrap(), r#"["a","b"]"#);
    }

    #[test]
    fn numeric_dates_accept_fractions_and_refuse_strings() {
        use serde_json::json;
        assert_eq!(
            numeric_date(json!(1700000000.9), "exp"),
            Ok(UnixTime(1700000000))
        );
        assert_eq!(
            numeric_date(json!("1700000000"), "exp"),
            Err(Error::InvalidClaim("exp"))
        );
        assert_eq!(
            numeric_date(json!(1e300), "exp"),
            Err(Error::InvalidClaim("exp"))
        );
    }
}
