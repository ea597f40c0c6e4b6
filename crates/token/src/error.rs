//! The one error type of `tessera-token`, in the order a token is processed.

/// Why a token, key, header or PKCE value was refused.
///
/// Messages are short and never contain the token, key material or any other secret,
/// so they are safe to log and to hand to a client as an `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `Authorization` header is not valid RFC 6750 section 2.1 syntax.
    #[error("malformed Authorization header: {0}")]
    MalformedAuthorization(&'static str),
    /// The token is longer than the configured limit.
    #[error("token is {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// Configured limit.
        limit: usize,
    },
    /// Five segments: an encrypted JWT (JWE), which is not accepted.
    #[error("encrypted tokens (JWE) are not accepted")]
    Encrypted,
    /// Not a well-formed JWS compact serialization (segments, base64url, JSON).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A JSON object in the header, claims or a JWK repeats a member name.
    #[error("duplicate JSON member name")]
    DuplicateMember,
    /// The header names `alg: none` (in any casing).
    #[error("unsigned tokens (alg none) are not accepted")]
    AlgNone,
    /// The header's `alg` is not the algorithm of the key that must verify it.
    #[error("token algorithm does not match the key")]
    AlgMismatch,
    /// The header carries a member that is refused (`jwk`, `jku`, `x5u`, `x5c`).
    #[error("header member {0} is not accepted")]
    ForbiddenHeader(&'static str),
    /// The header lists a `crit` extension this library does not implement.
    #[error("unsupported critical header extension")]
    UnknownCrit,
    /// No key in the set has the token's `kid`.
    #[error("unknown key id")]
    UnknownKid,
    /// No `kid` and more than one key could verify the token.
    #[error("token has no key id and several keys match")]
    AmbiguousKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// A claim the policy requires is absent.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type or an invalid value.
    #[error("invalid claim {0}")]
    InvalidClaim(&'static str),
    /// `iss` is not one of the accepted issuers.
    #[error("issuer not accepted")]
    WrongIssuer,
    /// No `aud` value is one of the accepted audiences.
    #[error("audience not accepted")]
    WrongAudience,
    /// The header `typ` is not the one the policy requires.
    #[error("token type not accepted")]
    WrongType,
    /// A key is malformed, inconsistent or unusable.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A key is too weak for its algorithm (RSA under 2048 bits, HMAC secret under 32 bytes).
    #[error("key too weak: {0}")]
    WeakKey(&'static str),
    /// The algorithm or key type is not supported.
    #[error("unsupported algorithm or key type")]
    Unsupported,
    /// An opaque token has the wrong prefix, length, alphabet or checksum.
    #[error("malformed opaque token: {0}")]
    MalformedOpaque(&'static str),
    /// A PKCE verifier or challenge is malformed, or the method is not allowed.
    #[error("invalid PKCE value: {0}")]
    InvalidPkce(&'static str),
    /// The PKCE verifier does not match the challenge.
    #[error("PKCE verifier does not match the challenge")]
    PkceMismatch,
    /// A DPoP proof (RFC 9449) is well-formed JWS but fails a proof rule.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(&'static str),
    /// The crypto backend failed (key generation, signing).
    #[error("crypto backend failure")]
    Crypto,
}
