//! Tessera's token core: what a token is, with no I/O.
//!
//! JWS compact signing and verification (EdDSA, ES256, RS256, HS256) where the algorithm
//! always comes from the key; JWK and JWK Sets with RFC 7638 thumbprints; claims and the
//! [`Validation`] policy yielding [`VerifiedClaims`]; opaque tokens with kind prefixes and
//! checksums; the RFC 6750 `Authorization` header grammar; PKCE (RFC 7636); DPoP proofs
//! (RFC 9449, [`dpop`]).
//!
//! Time is always passed in as a [`UnixTime`]; the one [`Clock`] trait that the server and
//! the guard inject lives here, and only its [`SystemClock`] reads the wall clock.
//!
//! ```
//! use tessera_token::{Algorithm, Claims, KeySet, SigningKey, UnixTime, Validation, Audience};
//!
//! let key = SigningKey::generate(Algorithm::EdDsa)?.with_kid("k1");
//! let now = UnixTime::from_secs(1_800_000_000);
//! let claims = Claims {
//!     iss: Some("https://auth.example".into()),
//!     sub: Some("alice".into()),
//!     aud: Audience::new(["notes-api"]),
//!     exp: Some(UnixTime::from_secs(now.secs() + 600)),
//!     ..Claims::default()
//! };
//! let token = key.sign(&claims, Some("at+jwt"))?;
//!
//! let keys = KeySet::new(vec![key.verifying_key()?])?;
//! let policy = Validation::new("https://auth.example", "notes-api");
//! let verified = keys.verify(&token, &policy, now)?;
//! assert_eq!(verified.sub.as_deref(), Some("alice"));
//! # Ok::<(), tessera_token::Error>(())
//! ```

mod alg;
mod b64;
mod bearer;
mod claims;
mod clock;
pub mod dpop;
mod error;
mod json;
mod jwk;
mod jws;
mod keys;
mod opaque;
pub mod pkce;
mod secret;
mod validation;

#[cfg(test)]
mod rfc_vectors;
#[cfg(test)]
mod tests;

pub use alg::Algorithm;
pub use bearer::{BearerToken, parse_authorization};
pub use claims::{Audience, Claims, Confirmation, Scope, UnixTime};
pub use clock::{Clock, ClockStep, ManualClock, SystemClock};
pub use error::Error;
pub use jwk::{Jwk, JwkSet};
pub use jws::{Header, KeySet, Unverified, decode_unverified};
pub use keys::{MIN_HMAC_SECRET, MIN_RSA_BITS, SigningKey, VerifyingKey};
pub use opaque::{OpaqueToken, TokenHash, TokenKind};
pub use secret::SecretString;
pub use validation::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, RequiredClaim, Validation, VerifiedClaims,
};
