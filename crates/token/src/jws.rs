//! JWS compact serialization (RFC 7515 section 7.1): strict parsing of the three
//! segments and the protected header, signing, and verification against a key set.

mod header_cache;

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use self::header_cache::HeaderCache;

use crate::{
    Claims, Error, SigningKey, UnixTime, Validation, VerifiedClaims, VerifyingKey, b64, json,
    validation::DEFAULT_MAX_TOKEN_LEN,
};

/// Header members that would let the token choose its own key: always refused.
const FORBIDDEN_HEADERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// The protected header members Tessera reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The `alg` the token claims; it must match the verifying key's algorithm.
    pub alg: String,
    /// Key id.
    pub kid: Option<String>,
    /// Media type (`at+jwt` for RFC 9068 access tokens).
    pub typ: Option<String>,
}

impl Header {
    fn from_object(map: &Map<String, Value>) -> Result<Self, Error> {
        let alg = match map.get("alg") {
            Some(Value::String(alg)) => alg,
            Some(_) => return Err(Error::Malformed("header alg is not a string")),
            None => return Err(Error::Malformed("header has no alg")),
        };
        if alg.eq_ignore_ascii_case("none") {
            return Err(Error::AlgNone);
        }
        if let Some(name) = FORBIDDEN_HEADERS.into_iter().find(|h| map.contains_key(*h)) {
            return Err(Error::ForbiddenHeader(name));
        }
        // No JWS extension is implemented, so any `crit` names something not understood
        // (and registered names may not appear in it at all, RFC 7515 section 4.1.11).
        if map.contains_key("crit") {
            return Err(Error::UnknownCrit);
        }
        Ok(Header {
            alg: alg.clone(),
            kid: optional_string(map, "kid")?,
            typ: optional_string(map, "typ")?,
        })
    }
}

fn optional_string(map: &Map<String, Value>, name: &'static str) -> Result<Option<String>, Error> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::Malformed("header member has the wrong type")),
    }
}

/// A compact JWS split into its parts, header parsed and checked, signature decoded.
/// `H` is what the header is read into: [`Header`] for tokens, the proof header for
/// DPoP proofs (the one place an embedded `jwk` is allowed).
pub(crate) struct Compact<'a, H = Header> {
    pub(crate) header: H,
    /// The header segment as sent (base64url).
    pub(crate) header_b64: &'a str,
    pub(crate) signing_input: &'a str,
    pub(crate) payload_b64: &'a str,
    pub(crate) signature: Vec<u8>,
}

impl<'a> Compact<'a> {
    fn parse(token: &'a str, max_len: usize) -> Result<Self, Error> {
        Self::parse_with(token, max_len, |h| Header::from_object(&header_object(h)?))
    }
}

impl<'a, H> Compact<'a, H> {
    /// Splits `token`, reading its header segment (base64url, not empty) with
    /// `read_header` first (so `alg: none` is named as such even when unsigned), then the
    /// other segments. `read_header` decodes the segment with [`header_object`], or finds
    /// what it read from these exact bytes before.
    pub(crate) fn parse_with(
        token: &'a str,
        max_len: usize,
        read_header: impl FnOnce(&'a str) -> Result<H, Error>,
    ) -> Result<Self, Error> {
        if token.len() > max_len {
            return Err(Error::TooLarge {
                len: token.len(),
                limit: max_len,
            });
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Malformed("not three dot-separated segments"));
        };
        match parts.count() {
            0 => {}
            2 => return Err(Error::Encrypted),
            _ => return Err(Error::Malformed("not three dot-separated segments")),
        }
        if h.is_empty() {
            return Err(Error::Malformed("empty segment"));
        }
        let header = read_header(h)?;
        if p.is_empty() || s.is_empty() {
            return Err(Error::Malformed("empty segment"));
        }
        let signature = b64::decode(s, "signature is not base64url")?;
        if !b64::is_alphabet(p.as_bytes()) {
            return Err(Error::Malformed("payload is not base64url"));
        }
        Ok(Compact {
            header,
            header_b64: h,
            signing_input: &token[..h.len() + 1 + p.len()],
            payload_b64: p,
            signature,
        })
    }

    /// The payload as [`Claims`] (duplicate member names refused).
    fn claims(&self) -> Result<Claims, Error> {
        let payload = b64::decode(self.payload_b64, "payload is not base64url")?;
        crate::claims::read::claims(&payload)
    }
}

/// A JWS header segment decoded and parsed as a JSON object (duplicate members refused).
pub(crate) fn header_object(segment: &str) -> Result<Map<String, Value>, Error> {
    let json = b64::decode(segment, "header is not base64url")?;
    json::parse_object(&json, "header is not a JSON object")
}

/// Keys a resource server trusts, looked up by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    /// Headers of tokens that verified, by their exact bytes.
    headers: HeaderCache,
}

impl KeySet {
    /// A set of keys; two keys with the same `kid` are refused.
    pub fn new(keys: Vec<VerifyingKey>) -> Result<Self, Error> {
        for (i, k) in keys.iter().enumerate() {
            if let Some(kid) = k.kid()
                && keys[..i].iter().any(|o| o.kid() == Some(kid))
            {
                return Err(Error::InvalidKey("two keys share a kid"));
            }
        }
        Ok(KeySet {
            keys,
            headers: HeaderCache::default(),
        })
    }

    /// The signature keys of a JWK Set. Keys that cannot verify (encryption keys,
    /// unsupported types or curves) are skipped; a malformed or weak signature key is
    /// an error.
    pub fn from_jwks(jwks: &crate::JwkSet) -> Result<Self, Error> {
        let mut keys = Vec::with_capacity(jwks.keys.len());
        for jwk in &jwks.keys {
            match VerifyingKey::from_jwk(jwk) {
                Ok(k) => keys.push(k),
                Err(Error::Unsupported) => {}
                Err(Error::InvalidKey(reason)) if reason.starts_with("key") => {}
                Err(e) => return Err(e),
            }
        }
        Self::new(keys)
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// True when a key has this `kid`.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }

    /// Picks the key for a header: by `kid` when present; otherwise the only key, or the
    /// only key of the header's algorithm. The key's algorithm must equal the header's.
    fn select(&self, header: &Header) -> Result<&VerifyingKey, Error> {
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid() == Some(kid.as_str()))
                .ok_or(Error::UnknownKid)?,
            None => match self.keys.as_slice() {
                [] => return Err(Error::UnknownKid),
                [only] => only,
                many => {
                    let mut matching = many.iter().filter(|k| k.algorithm().name() == header.alg);
                    match (matching.next(), matching.next()) {
                        (Some(k), None) => k,
                        (Some(_), Some(_)) => return Err(Error::AmbiguousKey),
                        (None, _) => return Err(Error::AlgMismatch),
                    }
                }
            },
        };
        if key.algorithm().name() != header.alg {
            return Err(Error::AlgMismatch);
        }
        Ok(key)
    }

    /// Verifies a compact JWS JWT and validates its claims at time `now`.
    pub fn verify(
        &self,
        token: &str,
        validation: &Validation,
        now: UnixTime,
    ) -> Result<VerifiedClaims, Error> {
        let mut fresh = false;
        let jws = Compact::parse_with(token, validation.token_len_limit(), |segment| {
            if let Some(known) = self.headers.get(segment) {
                return Ok(known);
            }
            fresh = true;
            Header::from_object(&header_object(segment)?).map(Arc::new)
        })?;
        let key = self.select(&jws.header)?;
        key.verify_bytes(jws.signing_input.as_bytes(), &jws.signature)?;
        if fresh {
            self.headers.insert(jws.header_b64, &jws.header);
        }
        validation.check_typ(jws.header.typ.as_deref())?;
        let claims = jws.claims()?;
        validation.check_claims(&claims, now)?;
        Ok(VerifiedClaims::new(
            claims,
            key.kid().map(str::to_owned),
            key.algorithm(),
        ))
    }

    /// How many token headers are cached (for tests).
    #[cfg(test)]
    pub(crate) fn cached_headers(&self) -> usize {
        self.headers.len()
    }
}

/// Verifies a compact JWS signature with `key` and returns the decoded payload bytes
/// without interpreting them (RFC vectors whose payload is not a claims set use this).
#[cfg(test)]
pub(crate) fn verify_payload(token: &str, key: &VerifyingKey) -> Result<Vec<u8>, Error> {
    let jws = Compact::parse(token, DEFAULT_MAX_TOKEN_LEN)?;
    if key.algorithm().name() != jws.header.alg {
        return Err(Error::AlgMismatch);
    }
    key.verify_bytes(jws.signing_input.as_bytes(), &jws.signature)?;
    b64::decode(jws.payload_b64, "payload is not base64url")
}

/// A token decoded without any signature or claim check, for display only.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// The protected header.
    pub header: Header,
    /// The claims, unchecked.
    pub claims: Claims,
}

/// Decodes a JWT's header and claims WITHOUT verifying anything. Nothing in the result
/// may be trusted; use it to show a token to a person (`tessera token decode`).
pub fn decode_unverified(token: &str) -> Result<Unverified, Error> {
    let jws = Compact::parse(token, DEFAULT_MAX_TOKEN_LEN)?;
    let claims = jws.claims()?;
    Ok(Unverified {
        header: jws.header,
        claims,
    })
}

impl SigningKey {
    /// Signs a JWT: header `{"alg", "typ", "kid"}` from this key and `typ`, then `claims`.
    pub fn sign<C: Serialize + ?Sized>(
        &self,
        claims: &C,
        typ: Option<&str>,
    ) -> Result<String, Error> {
        #[derive(Serialize)]
        struct OutHeader<'a> {
            alg: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            typ: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            kid: Option<&'a str>,
        }
        let header = OutHeader {
            alg: self.algorithm().name(),
            typ,
            kid: self.kid(),
        };
        let header = serde_json::to_vec(&header).map_err(|_| Error::Crypto)?;
        let payload = serde_json::to_vec(claims).map_err(|_| Error::InvalidClaim("claims"))?;
        self.sign_raw(&header, &payload)
    }

    /// Signs arbitrary header and payload bytes into a compact JWS. The header must name
    /// this key's algorithm; used for RFC test vectors whose bytes are fixed.
    pub(crate) fn sign_raw(&self, header: &[u8], payload: &[u8]) -> Result<String, Error> {
        let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 100);
        b64::encode_into(header, &mut out);
        out.push('.');
        b64::encode_into(payload, &mut out);
        let sig = self.sign_bytes(out.as_bytes())?;
        out.push('.');
        b64::encode_into(sig, &mut out);
        Ok(out)
    }
}
