//! JSON Web Keys and key sets (RFC 7517, RFC 7518 section 6, OKP per RFC 8037) and
//! thumbprints (RFC 7638).

use crate::{Error, SecretString, b64, json};
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
        JwkRef::of(self).thumbprint()
    }
}

/// A JWK's members borrowed where they lie: from a [`Jwk`], or read in place from a
/// parsed JSON object (a DPoP proof's `jwk` header, with no copy of the object).
/// [`JwkRef::from_object`] accepts exactly what deserializing a [`Jwk`] accepts, so
/// both paths build the same keys and thumbprints.
#[derive(Clone, Copy, Default)]
pub(crate) struct JwkRef<'a> {
    pub(crate) kty: &'a str,
    pub(crate) use_: Option<&'a str>,
    /// False when `key_ops` is present and does not list `verify`.
    pub(crate) ops_allow_verify: bool,
    pub(crate) alg: Option<&'a str>,
    pub(crate) kid: Option<&'a str>,
    pub(crate) crv: Option<&'a str>,
    pub(crate) x: Option<&'a str>,
    pub(crate) y: Option<&'a str>,
    pub(crate) n: Option<&'a str>,
    pub(crate) e: Option<&'a str>,
    /// Private members: their presence is what matters outside the thumbprint of an
    /// `oct` key (`k`).
    d: Option<&'a str>,
    k: Option<&'a str>,
}

impl<'a> JwkRef<'a> {
    /// The members of `jwk`.
    pub(crate) fn of(jwk: &'a Jwk) -> Self {
        JwkRef {
            kty: &jwk.kty,
            use_: jwk.use_.as_deref(),
            ops_allow_verify: jwk
                .key_ops
                .as_ref()
                .is_none_or(|ops| ops.iter().any(|o| o == "verify")),
            alg: jwk.alg.as_deref(),
            kid: jwk.kid.as_deref(),
            crv: jwk.crv.as_deref(),
            x: jwk.x.as_deref(),
            y: jwk.y.as_deref(),
            n: jwk.n.as_deref(),
            e: jwk.e.as_deref(),
            d: jwk.d.as_ref().map(SecretString::expose),
            k: jwk.k.as_ref().map(SecretString::expose),
        }
    }

    /// The members of a JWK given as a parsed JSON object, or `None` when the object is
    /// not one (as serde reads a [`Jwk`]: `kty` a string; every other member Tessera
    /// reads absent, `null` or a string, `key_ops` an array of strings; members it does
    /// not read ignored, whatever their type).
    pub(crate) fn from_object(map: &'a Map<String, Value>) -> Option<Self> {
        let mut jwk = JwkRef {
            ops_allow_verify: true,
            ..JwkRef::default()
        };
        let mut kty = None;
        for (name, value) in map {
            let slot = match name.as_str() {
                "kty" => &mut kty,
                "use" => &mut jwk.use_,
                "alg" => &mut jwk.alg,
                "kid" => &mut jwk.kid,
                "crv" => &mut jwk.crv,
                "x" => &mut jwk.x,
                "y" => &mut jwk.y,
                "n" => &mut jwk.n,
                "e" => &mut jwk.e,
                "d" => &mut jwk.d,
                "k" => &mut jwk.k,
                "key_ops" => {
                    jwk.ops_allow_verify = match value {
                        Value::Null => true,
                        Value::Array(ops) => {
                            let mut verify = false;
                            for op in ops {
                                verify |= op.as_str()? == "verify";
                            }
                            verify
                        }
                        _ => return None,
                    };
                    continue;
                }
                _ => continue,
            };
            *slot = match value {
                Value::Null => None,
                Value::String(s) => Some(s.as_str()),
                _ => return None,
            };
        }
        jwk.kty = kty?;
        Some(jwk)
    }

    /// The symmetric key, if any (only an `oct` key's verifier reads it).
    pub(crate) fn k(&self) -> Option<&'a str> {
        self.k
    }

    /// True when private key material is present.
    pub(crate) fn is_private(&self) -> bool {
        self.d.is_some() || self.k.is_some()
    }

    /// RFC 7638 thumbprint, hashed as it is written (no intermediate JSON text).
    pub(crate) fn thumbprint(&self) -> Result<String, Error> {
        let missing = || Error::InvalidKey("JWK lacks a member its thumbprint needs");
        let need = |m: Option<&'a str>| m.ok_or_else(missing);
        let members: &[(&str, &str)] = match self.kty {
            "EC" => &[
                ("crv", need(self.crv)?),
                ("kty", "EC"),
                ("x", need(self.x)?),
                ("y", need(self.y)?),
            ],
            "OKP" => &[
                ("crv", need(self.crv)?),
                ("kty", "OKP"),
                ("x", need(self.x)?),
            ],
            "RSA" => &[("e", need(self.e)?), ("kty", "RSA"), ("n", need(self.n)?)],
            "oct" => &[("k", need(self.k)?), ("kty", "oct")],
            _ => return Err(Error::Unsupported),
        };
        // The canonical JSON in one buffer, hashed at once (the members are short).
        let mut canonical =
            Vec::with_capacity(64 + members.iter().map(|(_, v)| v.len()).sum::<usize>());
        canonical.push(b'{');
        for (i, (name, value)) in members.iter().enumerate() {
            if i > 0 {
                canonical.push(b',');
            }
            // serde_json escapes exactly as RFC 7638 section 3 requires (RFC 8259
            // strings); writing into a Vec cannot fail.
            serde_json::to_writer(&mut canonical, name).map_err(|_| Error::Crypto)?;
            canonical.push(b':');
            serde_json::to_writer(&mut canonical, value).map_err(|_| Error::Crypto)?;
        }
        canonical.push(b'}');
        Ok(b64::encode(digest::digest(&digest::SHA256, &canonical)))
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
