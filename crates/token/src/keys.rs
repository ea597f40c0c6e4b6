//! Signing and verifying keys: generation, PKCS#8/PEM, JWK import and public export.
//!
//! Keys are parsed once, when built; signing and verifying never re-parse key material.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair,
    RsaPublicKeyComponents,
};
use aws_lc_rs::{hmac, rsa};
use zeroize::Zeroizing;

use crate::jwk::JwkRef;
use crate::{Algorithm, Error, Jwk, b64};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Smallest HMAC secret accepted, in bytes.
pub const MIN_HMAC_SECRET: usize = 32;

const PEM_LABEL: &str = "PRIVATE KEY";

/// A private key that signs JWS, with its algorithm and optional `kid`.
///
/// `Debug` shows only the algorithm and `kid`. The private key lives inside aws-lc,
/// which wipes it when the key is dropped; an HMAC secret is kept zeroized-on-drop.
pub struct SigningKey {
    kid: Option<String>,
    inner: Signer,
}

enum Signer {
    EdDsa(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    Hs256(Box<hmac::Key>, Zeroizing<Vec<u8>>),
}

impl SigningKey {
    /// Generates a new key pair (or a 32-byte random secret for HS256).
    pub fn generate(alg: Algorithm) -> Result<Self, Error> {
        let inner = match alg {
            Algorithm::EdDsa => {
                Signer::EdDsa(Ed25519KeyPair::generate().map_err(|_| Error::Crypto)?)
            }
            Algorithm::Es256 => Signer::Es256(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| Error::Crypto)?,
            ),
            Algorithm::Rs256 => Signer::Rs256(
                RsaKeyPair::generate(rsa::KeySize::Rsa2048).map_err(|_| Error::Crypto)?,
            ),
            Algorithm::Hs256 => {
                let mut secret = Zeroizing::new(vec![0u8; MIN_HMAC_SECRET]);
                SystemRandom::new()
                    .fill(&mut secret)
                    .map_err(|_| Error::Crypto)?;
                return Self::from_hmac_secret(&secret);
            }
        };
        Ok(SigningKey { kid: None, inner })
    }

    /// An HS256 key from a shared secret of at least 32 bytes.
    pub fn from_hmac_secret(secret: &[u8]) -> Result<Self, Error> {
        if secret.len() < MIN_HMAC_SECRET {
            return Err(Error::WeakKey("HMAC secret must be at least 32 bytes"));
        }
        Ok(SigningKey {
            kid: None,
            inner: Signer::Hs256(
                Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret)),
                Zeroizing::new(secret.to_vec()),
            ),
        })
    }

    /// Reads a PKCS#8 private key (Ed25519, P-256 or RSA of 2048 bits or more) from DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let inner = if let Ok(k) = Ed25519KeyPair::from_pkcs8(der) {
            Signer::EdDsa(k)
        } else if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        {
            Signer::Es256(k)
        } else if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            if k.public_modulus_len() * 8 < MIN_RSA_BITS {
                return Err(Error::WeakKey("RSA keys must be at least 2048 bits"));
            }
            Signer::Rs256(k)
        } else {
            return Err(Error::InvalidKey(
                "not a PKCS#8 Ed25519, P-256 or RSA private key",
            ));
        };
        Ok(SigningKey { kid: None, inner })
    }

    /// Reads a PEM `PRIVATE KEY` (PKCS#8) block.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes())
            .map_err(|_| Error::InvalidKey("not a PEM document"))?;
        let der = Zeroizing::new(der);
        if label != PEM_LABEL {
            return Err(Error::InvalidKey(
                "PEM label must be PRIVATE KEY (PKCS#8); convert with `openssl pkcs8 -topk8 -nocrypt`",
            ));
        }
        Self::from_pkcs8_der(&der)
    }

    /// Builds a signing key from a private JWK (`OKP` Ed25519, `EC` P-256 or `oct`).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, Error> {
        let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => {
                let d = Zeroizing::new(b64_member(&jwk.d, "d")?);
                let x = b64_member(&jwk.x, "x")?;
                let pair = Ed25519KeyPair::from_seed_and_public_key(&d, &x)
                    .map_err(|_| Error::InvalidKey("Ed25519 d and x do not form a key pair"))?;
                SigningKey {
                    kid: None,
                    inner: Signer::EdDsa(pair),
                }
            }
            ("EC", Some("P-256")) => {
                let d = Zeroizing::new(b64_member(&jwk.d, "d")?);
                let point = ec_point(&jwk.x, &jwk.y)?;
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &d,
                    &point,
                )
                .map_err(|_| Error::InvalidKey("EC d, x and y do not form a key pair"))?;
                SigningKey {
                    kid: None,
                    inner: Signer::Es256(pair),
                }
            }
            ("oct", _) => Self::from_hmac_secret(&Zeroizing::new(b64_member(&jwk.k, "k")?))?,
            ("RSA", _) => {
                return Err(Error::InvalidKey(
                    "import RSA private keys as PKCS#8 PEM, not as JWK",
                ));
            }
            _ => return Err(Error::Unsupported),
        };
        check_jwk_alg(jwk.alg.as_deref(), key.algorithm())?;
        Ok(key.with_kid_opt(jwk.kid.clone()))
    }

    /// Sets the key id that goes into the `kid` header of every token this key signs.
    pub fn with_kid(self, kid: impl Into<String>) -> Self {
        self.with_kid_opt(Some(kid.into()))
    }

    fn with_kid_opt(mut self, kid: Option<String>) -> Self {
        self.kid = kid;
        self
    }

    /// The key id, if set.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Signer::EdDsa(_) => Algorithm::EdDsa,
            Signer::Es256(_) => Algorithm::Es256,
            Signer::Rs256(_) => Algorithm::Rs256,
            Signer::Hs256(..) => Algorithm::Hs256,
        }
    }

    /// The private key as PKCS#8 v1 DER. HS256 secrets have no PKCS#8 form.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let der = match &self.inner {
            Signer::EdDsa(k) => k.to_pkcs8v1().map_err(|_| Error::Crypto)?.as_ref().to_vec(),
            Signer::Es256(k) => k.to_pkcs8v1().map_err(|_| Error::Crypto)?.as_ref().to_vec(),
            Signer::Rs256(k) => {
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    k.as_der().map_err(|_| Error::Crypto)?;
                der.as_ref().to_vec()
            }
            Signer::Hs256(..) => return Err(Error::Unsupported),
        };
        Ok(Zeroizing::new(der))
    }

    /// The private key as a PEM `PRIVATE KEY` (PKCS#8) document.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        let der = self.to_pkcs8_der()?;
        pem_rfc7468::encode_string(PEM_LABEL, pem_rfc7468::LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(|_| Error::Crypto)
    }

    /// The public key as a JWK (with `kid`, `alg` and `use: sig`); `None` for HS256,
    /// whose key is a shared secret and is never published.
    pub fn public_jwk(&self) -> Option<Jwk> {
        let mut jwk = match &self.inner {
            Signer::EdDsa(k) => Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(b64::encode(k.public_key().as_ref())),
                ..Jwk::default()
            },
            Signer::Es256(k) => {
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = k.public_key().as_ref();
                Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(b64::encode(point.get(1..33)?)),
                    y: Some(b64::encode(point.get(33..65)?)),
                    ..Jwk::default()
                }
            }
            Signer::Rs256(k) => {
                let public = k.public_key();
                Jwk {
                    kty: "RSA".into(),
                    n: Some(b64::encode(
                        public.modulus().big_endian_without_leading_zero(),
                    )),
                    e: Some(b64::encode(
                        public.exponent().big_endian_without_leading_zero(),
                    )),
                    ..Jwk::default()
                }
            }
            Signer::Hs256(..) => return None,
        };
        jwk.use_ = Some("sig".into());
        jwk.alg = Some(self.algorithm().name().into());
        jwk.kid = self.kid.clone();
        Some(jwk)
    }

    /// The key that verifies this key's signatures.
    pub fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        match &self.inner {
            Signer::Hs256(_, secret) => Ok(VerifyingKey {
                kid: self.kid.clone(),
                alg: Algorithm::Hs256,
                inner: Verifier::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
            }),
            _ => {
                let jwk = self.public_jwk().ok_or(Error::Crypto)?;
                VerifyingKey::from_jwk(&jwk)
            }
        }
    }

    /// Signs `message` (the JWS signing input) and returns the raw signature.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(match &self.inner {
            Signer::EdDsa(k) => k.sign(message).as_ref().to_vec(),
            Signer::Es256(k) => k
                .sign(&SystemRandom::new(), message)
                .map_err(|_| Error::Crypto)?
                .as_ref()
                .to_vec(),
            Signer::Rs256(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| Error::Crypto)?;
                sig
            }
            Signer::Hs256(k, _) => hmac::sign(k, message).as_ref().to_vec(),
        })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A key that verifies JWS signatures with exactly one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    inner: Verifier,
}

#[derive(Clone)]
enum Verifier {
    Public(ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

impl VerifyingKey {
    /// Builds a verifying key from a JWK. The algorithm comes from the key: its `kty`
    /// and `crv`, checked against its `alg` member when that is present. Keys marked
    /// `use: enc`, or whose `key_ops` lack `verify`, are refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, Error> {
        Self::from_jwk_ref(&JwkRef::of(jwk))
    }

    /// [`VerifyingKey::from_jwk`] over borrowed members (a proof's header read in place).
    pub(crate) fn from_jwk_ref(jwk: &JwkRef<'_>) -> Result<Self, Error> {
        if jwk.use_.is_some_and(|u| u != "sig") {
            return Err(Error::InvalidKey("key is not for signatures (use)"));
        }
        if !jwk.ops_allow_verify {
            return Err(Error::InvalidKey("key_ops does not allow verify"));
        }
        let (alg, inner) = match (jwk.kty, jwk.crv) {
            ("OKP", Some("Ed25519")) => {
                let x = b64_member(&jwk.x, "x")?;
                if x.len() != 32 {
                    return Err(Error::InvalidKey("Ed25519 x must be 32 bytes"));
                }
                (Algorithm::EdDsa, parse_public(&signature::ED25519, &x)?)
            }
            ("EC", Some("P-256")) => {
                let point = ec_point(&jwk.x, &jwk.y)?;
                (
                    Algorithm::Es256,
                    parse_public(&signature::ECDSA_P256_SHA256_FIXED, &point)?,
                )
            }
            ("RSA", _) => {
                let n = b64_member(&jwk.n, "n")?;
                let e = b64_member(&jwk.e, "e")?;
                let n = strip_leading_zeros(&n);
                let e = strip_leading_zeros(&e);
                if bit_len(n) < MIN_RSA_BITS {
                    return Err(Error::WeakKey("RSA keys must be at least 2048 bits"));
                }
                let parsed = RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                    .map_err(|_| Error::InvalidKey("RSA n and e do not form a public key"))?;
                (Algorithm::Rs256, Verifier::Public(parsed))
            }
            ("oct", _) => {
                let k = Zeroizing::new(b64_member(&jwk.k(), "k")?);
                if k.len() < MIN_HMAC_SECRET {
                    return Err(Error::WeakKey("HMAC secret must be at least 32 bytes"));
                }
                (
                    Algorithm::Hs256,
                    Verifier::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, &k))),
                )
            }
            _ => return Err(Error::Unsupported),
        };
        check_jwk_alg(jwk.alg, alg)?;
        Ok(VerifyingKey {
            kid: jwk.kid.map(str::to_owned),
            alg,
            inner,
        })
    }

    /// An HS256 verifying key from a shared secret of at least 32 bytes.
    pub fn from_hmac_secret(secret: &[u8]) -> Result<Self, Error> {
        SigningKey::from_hmac_secret(secret)?.verifying_key()
    }

    /// Sets the key id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Checks `signature` over `message`.
    pub(crate) fn verify_bytes(&self, message: &[u8], sig: &[u8]) -> Result<(), Error> {
        match &self.inner {
            Verifier::Public(key) => key.verify_sig(message, sig),
            Verifier::Hmac(key) => hmac::verify(key, message, sig),
        }
        .map_err(|_| Error::BadSignature)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn parse_public(
    alg: &'static dyn signature::VerificationAlgorithm,
    bytes: &[u8],
) -> Result<Verifier, Error> {
    ParsedPublicKey::new(alg, bytes)
        .map(Verifier::Public)
        .map_err(|_| Error::InvalidKey("public key is not a valid point"))
}

pub(crate) fn b64_member<S: AsRef<str>>(
    member: &Option<S>,
    name: &'static str,
) -> Result<Vec<u8>, Error> {
    let value = member
        .as_ref()
        .map(AsRef::as_ref)
        .ok_or(Error::InvalidKey(missing_member(name)))?;
    b64::decode(value, "JWK member").map_err(|_| Error::InvalidKey("JWK member is not base64url"))
}

fn missing_member(name: &'static str) -> &'static str {
    match name {
        "x" => "JWK lacks x",
        "y" => "JWK lacks y",
        "n" => "JWK lacks n",
        "e" => "JWK lacks e",
        "d" => "JWK lacks d (not a private key)",
        "k" => "JWK lacks k",
        _ => "JWK lacks a required member",
    }
}

/// The uncompressed P-256 point `0x04 || x || y` from a JWK; coordinates must be 32 bytes.
fn ec_point<S: AsRef<str>>(x: &Option<S>, y: &Option<S>) -> Result<Vec<u8>, Error> {
    let x = b64_member(x, "x")?;
    let y = b64_member(y, "y")?;
    if x.len() != 32 || y.len() != 32 {
        return Err(Error::InvalidKey("P-256 coordinates must be 32 bytes"));
    }
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

/// Bit length of a big-endian unsigned integer without leading zero bytes.
pub(crate) fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// A JWK's `alg`, when present, must name the algorithm its key type implies.
fn check_jwk_alg(named: Option<&str>, alg: Algorithm) -> Result<(), Error> {
    match named {
        None => Ok(()),
        Some(named) if named == alg.name() => Ok(()),
        Some(_) => Err(Error::Unsupported),
    }
}
