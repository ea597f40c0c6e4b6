//! DPoP proofs (RFC 9449): parsing and verifying the proof JWT a client sends in the
//! `DPoP` header, the RFC 7638 thumbprint of its key, and the `ath` hash of an access
//! token; and the replay cache of proofs both the server and the guard keep. The caller
//! checks the nonces.
//!
//! A proof is the one place an embedded key is allowed: its header's `jwk` is a public key
//! (a private member is refused), and the proof's `alg` must be one that key can verify
//! (EdDSA, ES256, RS256 or PS256; never `none` or HMAC).

mod cache;
mod claims;
mod replay;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::constant_time;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde_json::{Map, Value};

use self::claims::{Member, ProofClaims};

use crate::jwk::JwkRef;
use crate::jws::{Compact, header_object};
use crate::keys::{b64_member, bit_len, strip_leading_zeros};
use crate::{Error, MIN_RSA_BITS, SigningKey, TokenHash, UnixTime, VerifyingKey, b64};

pub use cache::ProofKeyCache;
pub use replay::{Replay, ReplayCache};

/// The `typ` of a DPoP proof (RFC 9449 section 4.2).
pub const PROOF_TYP: &str = "dpop+jwt";

/// The `alg` values a proof may use, as discovery lists them
/// (`dpop_signing_alg_values_supported`).
pub const PROOF_ALGS: [&str; 4] = ["EdDSA", "ES256", "RS256", "PS256"];

/// The longest proof accepted, in bytes (an RSA-4096 key in the header fits easily).
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// The longest `jti` accepted, in bytes (RFC 9449 asks for at least 96 bits of entropy;
/// a replay cache should not hold arbitrary strings).
pub const MAX_JTI_LEN: usize = 256;

/// The longest `nonce` accepted, in bytes.
pub const MAX_NONCE_LEN: usize = 512;

/// The largest RSA modulus a proof's key may have, in bits. Proofs are verified before the
/// client is authenticated, so anyone may make the server verify one: a bigger key would
/// only make each verification dearer.
pub const MAX_PROOF_RSA_BITS: usize = 4096;

/// Default `iat` window on either side of now (before the leeway).
pub const DEFAULT_PROOF_WINDOW: Duration = Duration::from_secs(60);

/// What a proof must match: the request it came with, and the time.
#[derive(Debug, Clone, Copy)]
pub struct ProofCheck<'a> {
    /// The request's method (`htm`), compared exactly (methods are case-sensitive).
    pub method: &'a str,
    /// The request's public URL (`htu`); its query and fragment are ignored, and both
    /// sides are normalised before comparing ([`normalize_htu`]).
    pub url: &'a str,
    /// Now.
    pub now: UnixTime,
    /// How far `iat` may be from now on either side (plus `leeway`).
    pub window: Duration,
    /// Allowance for clock skew.
    pub leeway: Duration,
    /// SHA-256 of the access token presented with the proof, if any: its base64url
    /// must be the proof's `ath`.
    pub access_token_hash: Option<TokenHash>,
    /// The thumbprint of the key the proof must be signed with, if known (a bound
    /// token's `cnf.jkt`): checked, constant-time, before the signature.
    pub jkt: Option<&'a str>,
}

impl<'a> ProofCheck<'a> {
    /// A check of a proof sent with `method` to `url` at `now`, with the default window,
    /// no leeway and no access token.
    pub fn new(method: &'a str, url: &'a str, now: UnixTime) -> Self {
        ProofCheck {
            method,
            url,
            now,
            window: DEFAULT_PROOF_WINDOW,
            leeway: Duration::ZERO,
            access_token_hash: None,
            jkt: None,
        }
    }

    /// Sets the thumbprint the proof's key must have (a bound token's `cnf.jkt`).
    pub fn with_jkt(mut self, jkt: &'a str) -> Self {
        self.jkt = Some(jkt);
        self
    }

    /// Sets the access token presented with the proof (its `ath` is then required).
    pub fn with_access_token(self, token: &str) -> Self {
        self.with_access_token_hash(&TokenHash::of(token.as_bytes()))
    }

    /// Sets the SHA-256 of the access token presented with the proof, for a caller that
    /// hashed the token already (a cache keyed by [`TokenHash::of`] its bytes): the same
    /// check as [`ProofCheck::with_access_token`] without hashing the token again.
    pub fn with_access_token_hash(mut self, hash: &TokenHash) -> Self {
        self.access_token_hash = Some(*hash);
        self
    }

    /// Sets the `iat` window and the leeway.
    pub fn with_window(mut self, window: Duration, leeway: Duration) -> Self {
        self.window = window;
        self.leeway = leeway;
        self
    }
}

/// A proof whose signature, header and claims were checked against a [`ProofCheck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof's key: the `jkt` a bound token carries in `cnf`.
    pub jkt: String,
    /// The proof's unique id, for the caller's replay cache (keyed with `jkt`).
    pub jti: String,
    /// When the client made the proof.
    pub iat: UnixTime,
    /// The server nonce the proof carries, for the caller to check.
    pub nonce: Option<String>,
    /// The proof's `alg`.
    pub alg: &'static str,
}

/// The `ath` of an access token: base64url of the SHA-256 of its ASCII bytes.
pub fn access_token_hash(token: &str) -> String {
    b64::encode(TokenHash::of(token.as_bytes()).as_bytes())
}

/// Length of an `ath`: base64url of 32 bytes, unpadded.
const ATH_LEN: usize = 43;

/// Verifies a DPoP proof: header (`typ`, `alg`, public `jwk`), the key's thumbprint when
/// [`ProofCheck::jkt`] is set, claims (`jti`, `htm`, `htu`, `iat`, optional `nonce`, and
/// `ath` when an access token is presented), and last (being the expensive check) the
/// signature by that key. Every refusal is an [`Error::InvalidDpopProof`] naming the
/// reason, or a JWS error for a proof that is not a well-formed JWS (or whose signature
/// fails). Nothing unverified leaves this function: a proof failing a cheap check is
/// refused without its signature being checked, one passing them all is returned only
/// once its signature verified.
pub fn verify_proof(proof: &str, check: &ProofCheck<'_>) -> Result<VerifiedProof, Error> {
    verify(proof, check, None)
}

/// [`verify_proof`], with the proof's header looked up in `cache` by its exact bytes:
/// found, its decode, parse, key build and thumbprint are skipped (the signature is
/// still checked, with the key those bytes name); not found, it is read as
/// [`verify_proof`] reads it and cached once the proof's signature verified. The answer
/// is [`verify_proof`]'s for every proof.
pub fn verify_proof_cached(
    proof: &str,
    check: &ProofCheck<'_>,
    cache: &ProofKeyCache,
) -> Result<VerifiedProof, Error> {
    verify(proof, check, Some(cache))
}

fn verify(
    proof: &str,
    check: &ProofCheck<'_>,
    cache: Option<&ProofKeyCache>,
) -> Result<VerifiedProof, Error> {
    let mut fresh = false;
    let jws = Compact::parse_with(proof, MAX_PROOF_LEN, |segment| {
        if let Some(known) = cache.and_then(|c| c.get(segment)) {
            return Ok(known);
        }
        fresh = true;
        ProofHeader::from_object(&header_object(segment)?).map(Arc::new)
    })?;
    if let Some(expected) = check.jkt
        && constant_time::verify_slices_are_equal(jws.header.jkt.as_bytes(), expected.as_bytes())
            .is_err()
    {
        return Err(Error::InvalidDpopProof(
            "the proof key is not the key the token is bound to",
        ));
    }
    let payload = b64::decode(jws.payload_b64, "payload is not base64url")?;
    let claims = ProofClaims::parse(&payload)?;
    let jti = string_claim(claims.jti.as_ref(), "jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(Error::InvalidDpopProof("jti is empty or too long"));
    }
    if string_claim(claims.htm.as_ref(), "htm")? != check.method {
        return Err(Error::InvalidDpopProof(
            "htm does not match the request method",
        ));
    }
    let htu = string_claim(claims.htu.as_ref(), "htu")?;
    match (normalized(htu), normalized(check.url)) {
        (Some(claimed), Some(actual)) if claimed == actual => {}
        _ => {
            return Err(Error::InvalidDpopProof(
                "htu does not match the request URL",
            ));
        }
    }
    let iat = match &claims.iat {
        Some(Member::Other(Value::Number(n))) => n
            .as_i64()
            .ok_or(Error::InvalidDpopProof("iat is not an integer"))?,
        Some(_) => return Err(Error::InvalidDpopProof("iat is not a number")),
        None => return Err(Error::InvalidDpopProof("missing iat")),
    };
    let allowed =
        i64::try_from(check.window.saturating_add(check.leeway).as_secs()).unwrap_or(i64::MAX);
    if iat.abs_diff(check.now.secs()) > allowed.unsigned_abs() {
        return Err(Error::InvalidDpopProof(
            "iat is outside the accepted window",
        ));
    }
    let nonce = match &claims.nonce {
        None => None,
        Some(Member::Str(n)) if !n.is_empty() && n.len() <= MAX_NONCE_LEN => Some(n.to_string()),
        Some(_) => return Err(Error::InvalidDpopProof("nonce is not a short string")),
    };
    if let Some(hash) = &check.access_token_hash {
        let ath = match &claims.ath {
            Some(Member::Str(ath)) => ath,
            Some(_) => return Err(Error::InvalidDpopProof("ath is not a string")),
            None => return Err(Error::InvalidDpopProof("missing ath")),
        };
        let mut expected = [0u8; ATH_LEN];
        b64::encode_slice(hash.as_bytes(), &mut expected);
        if constant_time::verify_slices_are_equal(ath.as_bytes(), &expected).is_err() {
            return Err(Error::InvalidDpopProof(
                "ath does not match the access token",
            ));
        }
    }
    let header = &jws.header;
    header
        .key
        .verify(jws.signing_input.as_bytes(), &jws.signature)?;
    if fresh && let Some(cache) = cache {
        cache.insert(jws.header_b64, Arc::clone(header));
    }
    Ok(VerifiedProof {
        jkt: header.jkt.clone(),
        jti: jti.to_owned(),
        iat: UnixTime::from_secs(iat),
        nonce,
        alg: header.alg,
    })
}

/// Signs a DPoP proof with `key` (the client side, for tests, benches and tools): header
/// `{"typ": "dpop+jwt", "alg", "jwk"}` with the key's public JWK (no `kid`), payload
/// `claims` as given (`jti`, `htm`, `htu`, `iat`, and `ath`/`nonce` when needed). An HMAC
/// key has no public JWK and is refused with [`Error::Unsupported`].
pub fn sign_proof(key: &SigningKey, claims: &Value) -> Result<String, Error> {
    let mut jwk = key.public_jwk().ok_or(Error::Unsupported)?;
    jwk.kid = None;
    let header = serde_json::json!({
        "typ": PROOF_TYP,
        "alg": key.algorithm().name(),
        "jwk": jwk,
    });
    let header = serde_json::to_vec(&header).map_err(|_| Error::Crypto)?;
    let payload = serde_json::to_vec(claims).map_err(|_| Error::InvalidClaim("claims"))?;
    key.sign_raw(&header, &payload)
}

/// Normalises an `htu` or request URL for comparison (RFC 9449 section 4.3, RFC 3986
/// section 6.2.2 and 6.2.3): scheme and host lower-cased, the default port removed, an
/// empty path made `/`, percent-encodings upper-cased and unreserved characters decoded,
/// query and fragment dropped. `None` for anything but an absolute `http`/`https` URL
/// with a host and no user information.
pub fn normalize_htu(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    // The port follows the last colon outside an IPv6 literal's brackets.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority.as_str(), None),
    };
    if host.is_empty() || host.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return None;
    }
    let mut out = format!("{scheme}://{host}");
    match port {
        None => {}
        Some(p) if p.is_empty() || p == default_port => {}
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            out.push(':');
            out.push_str(p);
        }
        Some(_) => return None,
    }
    if path.is_empty() {
        out.push('/');
    } else {
        normalize_percent(path, &mut out)?;
    }
    Some(out)
}

/// [`normalize_htu`], without a copy when `url` is already in normal form (what a
/// client usually sends, and what a server builds from its own base URL).
fn normalized(url: &str) -> Option<Cow<'_, str>> {
    if is_normal(url) {
        Some(Cow::Borrowed(url))
    } else {
        normalize_htu(url).map(Cow::Owned)
    }
}

/// True only when [`normalize_htu`] returns `url` unchanged: a lower-case `http` or
/// `https` scheme; a lower-case authority without user information and with a port, if
/// any, of digits other than the scheme's default; a non-empty path; no query, fragment,
/// percent sign, space or control character. (False for some normal URLs, which then
/// take the copying path: the answer is the same.)
pub(crate) fn is_normal(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return false,
    };
    if rest
        .bytes()
        .any(|b| matches!(b, b'?' | b'#' | b'%' | b' ') || b.is_ascii_control())
    {
        return false;
    }
    let Some(slash) = rest.find('/') else {
        return false;
    };
    let authority = &rest[..slash];
    if authority.is_empty()
        || authority
            .bytes()
            .any(|b| b == b'@' || b.is_ascii_uppercase())
    {
        return false;
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    !host.is_empty()
        && port.is_none_or(|p| {
            !p.is_empty() && p != default_port && p.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Appends `path` with percent-encodings upper-cased and unreserved characters decoded;
/// `None` for a malformed encoding or a control character.
fn normalize_percent(path: &str, out: &mut String) -> Option<()> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(v));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else if b.is_ascii_control() || b == b' ' {
            return None;
        } else {
            // Multi-byte UTF-8 is copied whole: only ASCII bytes are inspected above.
            let ch = path[i..].chars().next()?;
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    Some(())
}

/// The checked protected header of a proof (what [`ProofKeyCache`] holds).
struct ProofHeader {
    alg: &'static str,
    key: ProofKey,
    jkt: String,
}

impl ProofHeader {
    fn from_object(map: &Map<String, Value>) -> Result<Self, Error> {
        let alg = match map.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            Some(_) => return Err(Error::Malformed("header alg is not a string")),
            None => return Err(Error::Malformed("header has no alg")),
        };
        if alg.eq_ignore_ascii_case("none") {
            return Err(Error::AlgNone);
        }
        match map.get("typ") {
            Some(Value::String(typ)) if typ.eq_ignore_ascii_case(PROOF_TYP) => {}
            _ => return Err(Error::InvalidDpopProof("typ is not dpop+jwt")),
        }
        if let Some(name) = ["jku", "x5u", "x5c"]
            .into_iter()
            .find(|h| map.contains_key(*h))
        {
            return Err(Error::ForbiddenHeader(name));
        }
        if map.contains_key("crit") {
            return Err(Error::UnknownCrit);
        }
        let jwk = match map.get("jwk") {
            Some(Value::Object(jwk)) => jwk,
            Some(_) => return Err(Error::InvalidDpopProof("jwk is not an object")),
            None => return Err(Error::InvalidDpopProof("missing jwk")),
        };
        // Read in place, accepting exactly what deserializing a `Jwk` accepts.
        let jwk =
            JwkRef::from_object(jwk).ok_or(Error::InvalidDpopProof("jwk is not a JSON Web Key"))?;
        if jwk.is_private() || jwk.kty == "oct" {
            return Err(Error::InvalidDpopProof("jwk is not a public key"));
        }
        let alg = PROOF_ALGS
            .into_iter()
            .find(|a| *a == alg)
            .ok_or(Error::InvalidDpopProof("alg is not supported for proofs"))?;
        let key = ProofKey::new(&jwk, alg)?;
        let jkt = jwk.thumbprint()?;
        Ok(ProofHeader { alg, key, jkt })
    }
}

/// The key of a proof, able to verify exactly the proof's `alg`.
enum ProofKey {
    /// EdDSA, ES256, RS256: the key type implies the algorithm.
    Jws(VerifyingKey),
    /// PS256 over an RSA key.
    RsaPss(ParsedPublicKey),
}

impl ProofKey {
    fn new(jwk: &JwkRef<'_>, alg: &'static str) -> Result<Self, Error> {
        if jwk.kty == "RSA"
            && bit_len(strip_leading_zeros(&b64_member(&jwk.n, "n")?)) > MAX_PROOF_RSA_BITS
        {
            return Err(Error::InvalidDpopProof(
                "RSA keys in DPoP proofs must be at most 4096 bits",
            ));
        }
        if alg == "PS256" {
            if jwk.kty != "RSA" || jwk.alg.is_some_and(|a| a != "PS256") {
                return Err(Error::AlgMismatch);
            }
            let n = b64_member(&jwk.n, "n")?;
            let e = b64_member(&jwk.e, "e")?;
            let n = strip_leading_zeros(&n);
            if bit_len(n) < MIN_RSA_BITS {
                return Err(Error::WeakKey("RSA keys must be at least 2048 bits"));
            }
            let e = strip_leading_zeros(&e);
            let key = RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(&signature::RSA_PSS_2048_8192_SHA256)
                .map_err(|_| Error::InvalidKey("RSA n and e do not form a public key"))?;
            return Ok(ProofKey::RsaPss(key));
        }
        // An RSA key with `alg: PS256` would be refused by the RS256 key's own check.
        let key = VerifyingKey::from_jwk_ref(jwk)?;
        if key.algorithm().name() != alg {
            return Err(Error::AlgMismatch);
        }
        Ok(ProofKey::Jws(key))
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), Error> {
        match self {
            ProofKey::Jws(key) => key.verify_bytes(message, sig),
            ProofKey::RsaPss(key) => key
                .verify_sig(message, sig)
                .map_err(|_| Error::BadSignature),
        }
    }
}

fn string_claim<'m>(claim: Option<&'m Member<'_>>, name: &'static str) -> Result<&'m str, Error> {
    match claim {
        Some(Member::Str(s)) => Ok(s),
        Some(Member::Other(_)) => Err(Error::InvalidDpopProof(match name {
            "jti" => "jti is not a string",
            "htm" => "htm is not a string",
            _ => "htu is not a string",
        })),
        None => Err(Error::InvalidDpopProof(match name {
            "jti" => "missing jti",
            "htm" => "missing htm",
            _ => "missing htu",
        })),
    }
}
