//! The JWS algorithms Tessera signs and verifies with (RFC 7518 section 3, RFC 8037).

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A JWS signature algorithm. There is deliberately no variant for `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 (RFC 8037), Tessera's default.
    EdDsa,
    /// ECDSA over P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 bits or more.
    Rs256,
    /// HMAC with SHA-256, secrets of 32 bytes or more; for a single service sharing a secret.
    Hs256,
}

impl Algorithm {
    /// Every supported algorithm, strongest default first.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::EdDsa,
        Algorithm::Es256,
        Algorithm::Rs256,
        Algorithm::Hs256,
    ];

    /// The JOSE name (`alg` value) of this algorithm.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
            Algorithm::Hs256 => "HS256",
        }
    }

    /// True for the asymmetric algorithms, whose public key may be published.
    pub fn is_asymmetric(self) -> bool {
        !matches!(self, Algorithm::Hs256)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses a JOSE `alg` name exactly (JOSE names are case-sensitive).
    fn from_str(s: &str) -> Result<Self, Error> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or(Error::Unsupported)
    }
}
