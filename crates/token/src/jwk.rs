//! JSON Web Keys and key sets (RFC 7517, RFC 7518 section 6, OKP per RFC 8037) and
//! thumbprints (RFC 7638).

use crate::{Error, SecretString, b64, json};
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

/// One JSON Web Key. Only the members Tessera reads are kept; unknown members are ignored.
///
/// Private members (`d`, `k`) are [`SecretString`]s: redacted from `Debug`, zeroized on drop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`, `EC`, `RSA` or `oct`.
    pub kty: String,
    /// Intended use (`sig`); keys marked `enc` are never used to verify.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Permitted operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    /// The algorithm this key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Curve (`Ed25519`, `P-256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// OKP public key, or EC x coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Private key (OKP seed or EC scalar), base64url. Never exported by Tessera.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<SecretString>,
    /// Symmetric key (base64url). Never exported by Tessera.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<SecretString>,
}

impl Jwk {
    /// Parses one JWK from JSON, refusing duplicate member names.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let map = json::parse_object(bytes, "JWK")?;
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|_| Error::InvalidKey("JWK"))
    }

    /// Serializes to compact JSON.
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// True when the JWK carries private key material.
    pub fn is_private(&self) -> bool {
        self.d.is_some() || self.k.is_some()
    }

    /// The same key without private members.
    pub fn to_public(&self) -> Jwk {
        let mut public = self.clone();
        public.d = None;
        public.k = None;
        public
    }

    /// RFC 7638 thumbprint: base64url of the SHA-256 of the required members in
    /// lexicographic order, without whitespace.
    pub fn thumbprint(&self) -> Result<String, Error> {
        let missing = Error::InvalidKey("JWK lacks a member its thumbprint needs");
        let members: Vec<(&str, &str)> = match self.kty.as_str() {
            "EC" => vec![
                ("crv", self.crv.as_deref().ok_or(missing.clone())?),
                ("kty", "EC"),
                ("x", self.x.as_deref().ok_or(missing.clone())?),
                ("y", self.y.as_deref().ok_or(missing)?),
            ],
            "OKP" => vec![
                ("crv", self.crv.as_deref().ok_or(missing.clone())?),
                ("kty", "OKP"),
                ("x", self.x.as_deref().ok_or(missing)?),
            ],
            "RSA" => vec![
                ("e", self.e.as_deref().ok_or(missing.clone())?),
                ("kty", "RSA"),
                ("n", self.n.as_deref().ok_or(missing)?),
            ],
            "oct" => vec![
                (
                    "k",
                    self.k.as_ref().map(SecretString::expose).ok_or(missing)?,
                ),
                ("kty", "oct"),
            ],
            _ => return Err(Error::Unsupported),
        };
        let mut canonical = String::from("{");
        for (i, (name, value)) in members.iter().enumerate() {
            if i > 0 {
                canonical.push(',');
            }
            // serde_json escapes exactly as RFC 7638 section 3 requires (RFC 8259 strings).
            canonical.push_str(&serde_json::Value::from(*name).to_string());
            canonical.push(':');
            canonical.push_str(&serde_json::Value::from(*value).to_string());
        }
        canonical.push('}');
        Ok(b64::encode(digest::digest(
            &digest::SHA256,
            canonical.as_bytes(),
        )))
    }
}

/// A JWK Set (RFC 7517 section 5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses a JWK Set from JSON, refusing duplicate member names anywhere in it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let map = json::parse_object(bytes, "JWK Set")?;
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|_| Error::InvalidKey("JWK Set"))
    }

    /// Serializes to compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The key with this `kid`, if any.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        let jwk = Jwk::from_json(include_bytes!("../testdata/rfc7638-3.1-jwk.json")).unwrap();
        let expected = include_str!("../testdata/rfc7638-3.1-thumbprint.txt");
        assert_eq!(jwk.thumbprint().unwrap(), expected.trim());
    }

    #[test]
    fn private_members_are_redacted_and_stripped() {
        let jwk =
            Jwk::from_json(include_bytes!("../testdata/rfc8037-a.1-private.jwk.json")).unwrap();
        assert!(jwk.is_private());
        let dbg = format!("{jwk:?}");
        assert!(!dbg.contains(jwk.d.as_ref().unwrap().expose()));
        let public = jwk.to_public();
        assert!(!public.is_private());
        assert!(!public.to_json().contains("\"d\""));
        assert_eq!(public.thumbprint(), jwk.thumbprint());
    }

    #[test]
    fn rfc8037_thumbprint_example() {
        // RFC 8037 appendix A.3.
        let jwk =
            Jwk::from_json(include_bytes!("../testdata/rfc8037-a.2-public.jwk.json")).unwrap();
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn duplicate_members_refused() {
        assert_eq!(
            Jwk::from_json(br#"{"kty":"OKP","crv":"Ed25519","x":"a","x":"b"}"#),
            Err(Error::DuplicateMember)
        );
        assert_eq!(
            JwkSet::from_json(br#"{"keys":[],"keys":[]}"#),
            Err(Error::DuplicateMember)
        );
    }
}
