//! PKCE (RFC 7636): code verifiers, challenges and the `S256` check.

use std::str::FromStr;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::{Error, b64};

/// `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeMethod {
    /// `S256`: the challenge is base64url(SHA-256(verifier)).
    S256,
    /// `plain`: the challenge is the verifier. Refused unless explicitly allowed.
    Plain,
}

impl FromStr for ChallengeMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "S256" => Ok(ChallengeMethod::S256),
            "plain" => Ok(ChallengeMethod::Plain),
            _ => Err(Error::InvalidPkce("unknown code_challenge_method")),
        }
    }
}

/// Checks a `code_verifier`: 43 to 128 characters of `[A-Za-z0-9-._~]` (section 4.1).
pub fn check_verifier(verifier: &str) -> Result<(), Error> {
    let len_ok = (43..=128).contains(&verifier.len());
    let chars_ok = verifier
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if len_ok && chars_ok {
        Ok(())
    } else {
        Err(Error::InvalidPkce(
            "code_verifier must be 43-128 unreserved characters",
        ))
    }
}

/// Checks a `code_challenge` as it arrives at the authorization endpoint.
pub fn check_challenge(method: ChallengeMethod, challenge: &str) -> Result<(), Error> {
    match method {
        ChallengeMethod::S256 => {
            let ok = challenge.len() == 43
                && b64::decode(challenge, "challenge").is_ok_and(|d| d.len() == 32);
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidPkce(
                    "S256 code_challenge must be 43 base64url characters",
                ))
            }
        }
        ChallengeMethod::Plain => check_verifier(challenge),
    }
}

/// The `S256` challenge of a verifier.
pub fn s256_challenge(verifier: &str) -> String {
    b64::encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// A fresh random verifier (32 random bytes, 43 characters), for clients and tests.
pub fn generate_verifier() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Crypto)?;
    Ok(b64::encode(bytes))
}

/// Verifies `verifier` against the stored `challenge` (section 4.6), in constant time.
/// `plain` is accepted only when `allow_plain` is true.
pub fn verify(
    method: ChallengeMethod,
    challenge: &str,
    verifier: &str,
    allow_plain: bool,
) -> Result<(), Error> {
    check_verifier(verifier)?;
    let expected = match method {
        ChallengeMethod::S256 => s256_challenge(verifier),
        ChallengeMethod::Plain if allow_plain => verifier.to_owned(),
        ChallengeMethod::Plain => return Err(Error::InvalidPkce("plain method is not allowed")),
    };
    verify_slices_are_equal(expected.as_bytes(), challenge.as_bytes())
        .map_err(|_| Error::PkceMismatch)
}
