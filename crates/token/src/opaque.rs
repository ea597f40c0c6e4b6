//! Opaque tokens: 256 random bits with a readable kind prefix and a checksum, and the
//! SHA-256 hash under which the store keeps them.

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::{Error, b64};

const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 4;
/// base64url length of 36 bytes.
const BODY_LEN: usize = (RANDOM_LEN + CHECKSUM_LEN) * 4 / 3;
const PREFIX_LEN: usize = 7;

/// What an opaque token is for; each kind has its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// `tsr_at_`: opaque access token.
    AccessToken,
    /// `tsr_rt_`: refresh token.
    RefreshToken,
    /// `tsr_ac_`: authorization code.
    AuthorizationCode,
    /// `tsr_cs_`: client secret.
    ClientSecret,
}

impl TokenKind {
    const ALL: [TokenKind; 4] = [
        TokenKind::AccessToken,
        TokenKind::RefreshToken,
        TokenKind::AuthorizationCode,
        TokenKind::ClientSecret,
    ];

    /// The prefix, e.g. `tsr_rt_`.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::AccessToken => "tsr_at_",
            TokenKind::RefreshToken => "tsr_rt_",
            TokenKind::AuthorizationCode => "tsr_ac_",
            TokenKind::ClientSecret => "tsr_cs_",
        }
    }
}

/// An opaque token (`tsr_<kind>_<base64url of 32 random bytes and a 4-byte checksum>`).
///
/// The checksum is the first 4 bytes of SHA-256 over the prefix and the random bytes, so
/// a mistyped, truncated or re-prefixed token is refused without a store lookup. It is
/// not a secret check: the store lookup by [`TokenHash`] is what authenticates.
/// `Debug` shows only the kind; the string is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken {
    kind: TokenKind,
    value: Zeroizing<String>,
}

impl OpaqueToken {
    /// A fresh token of `kind` from the system's secure random generator.
    pub fn generate(kind: TokenKind) -> Result<Self, Error> {
        let mut random = Zeroizing::new([0u8; RANDOM_LEN]);
        SystemRandom::new()
            .fill(&mut random[..])
            .map_err(|_| Error::Crypto)?;
        Ok(Self::from_secret_bytes(kind, &random))
    }

    /// The token of `kind` whose 256 secret bits are `random`. The bytes must be
    /// unpredictable: from a secure random generator or a keyed PRF (a refresh token's
    /// successor is HMAC(server key, parent hash), so every replica derives the same one).
    pub fn from_secret_bytes(kind: TokenKind, random: &[u8; RANDOM_LEN]) -> Self {
        let mut bytes = Zeroizing::new([0u8; RANDOM_LEN + CHECKSUM_LEN]);
        bytes[..RANDOM_LEN].copy_from_slice(random);
        bytes[RANDOM_LEN..].copy_from_slice(&checksum(kind, random));
        let mut value = Zeroizing::new(String::with_capacity(PREFIX_LEN + BODY_LEN));
        value.push_str(kind.prefix());
        b64::encode_into(&bytes[..], &mut value);
        OpaqueToken { kind, value }
    }

    /// Parses a token of any kind, checking prefix, length, alphabet and checksum.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let kind = TokenKind::ALL
            .into_iter()
            .find(|k| s.starts_with(k.prefix()))
            .ok_or(Error::MalformedOpaque("unknown prefix"))?;
        let body = &s[PREFIX_LEN..];
        if body.len() != BODY_LEN {
            return Err(Error::MalformedOpaque("wrong length"));
        }
        let bytes = Zeroizing::new(
            b64::decode(body, "body").map_err(|_| Error::MalformedOpaque("not base64url"))?,
        );
        let (random, sum) = bytes.split_at(RANDOM_LEN);
        if checksum(kind, random) != sum {
            return Err(Error::MalformedOpaque("checksum mismatch"));
        }
        Ok(OpaqueToken {
            kind,
            value: Zeroizing::new(s.to_owned()),
        })
    }

    /// Parses a token and requires it to be of `kind`.
    pub fn parse_kind(s: &str, kind: TokenKind) -> Result<Self, Error> {
        let token = Self::parse(s)?;
        if token.kind != kind {
            return Err(Error::MalformedOpaque("wrong kind of token"));
        }
        Ok(token)
    }

    /// The token's kind.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The token itself, to hand to its holder exactly once. Never log it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The hash to store and look up by.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.value.as_bytes())
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpaqueToken({}<redacted>)", self.kind.prefix())
    }
}

fn checksum(kind: TokenKind, random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(kind.prefix().as_bytes());
    ctx.update(random);
    let d = ctx.finish();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&d.as_ref()[..CHECKSUM_LEN]);
    out
}

/// SHA-256 of a token or secret: what the store keeps instead of the secret itself.
/// Equality is constant-time.
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let d = digest::digest(&digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        TokenHash(out)
    }

    /// A hash read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenHash(bytes)
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Hex encoding, for text columns and logs (a hash is not a secret).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.to_hex())
    }
}
