//! The guard's errors: [`GuardError`] for a refused request (and [`AuthRejection`], the
//! extractors' typed refusal carrying one), [`FetchError`] for a failed call to the
//! authorization server, [`BuildError`] for a bad configuration.

use std::borrow::Cow;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};

use crate::challenge::{self, Challenges, Scheme};

/// Why a request was refused, in the order the guard's pipeline checks. The mapping to
/// HTTP (status, `WWW-Authenticate`, body) is [`crate::Guard::error_response`], and only there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// No bearer token came (RFC 6750 section 3.1: 401, challenge without error code).
    #[error("no bearer token")]
    MissingToken,
    /// The request is malformed: two `Authorization` headers, a token in the URL, a bad
    /// header, a failed CSRF check (400 `invalid_request`).
    #[error("invalid request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// The token does not verify or its claims are not accepted (401 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(tessera_token::Error),
    /// The authorization server says the token is not active (introspection).
    #[error("token is not active")]
    Inactive,
    /// The token, or its grant, was revoked.
    #[error("token revoked")]
    Revoked,
    /// The token's binding does not fit how it was presented (401 `invalid_token`): a
    /// DPoP-bound token sent as `Bearer`, an unbound token sent as `DPoP`, a confirmation
    /// method the guard does not understand, or a bearer token on a route requiring DPoP.
    #[error("token binding: {0}")]
    TokenBinding(&'static str),
    /// The DPoP proof is missing, malformed, replayed, or does not match the request or the
    /// token (RFC 9449 section 7.1: 401 `invalid_dpop_proof`).
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(Cow<'static, str>),
    /// The proof lacks the guard's current nonce, or carries a stale one (RFC 9449 section
    /// 9: 401 `use_dpop_nonce` with this nonce in the `DPoP-Nonce` header).
    #[error("a fresh DPoP nonce is required")]
    UseDpopNonce(String),
    /// The token lacks the scope the route needs (403 `insufficient_scope`).
    #[error("insufficient scope, needs {scope}")]
    InsufficientScope {
        /// The scope the route needs, space-delimited (the challenge's `scope` attribute).
        scope: String,
    },
    /// The token's authentication is too weak or too old for the route (RFC 9470 section
    /// 3: 401 `insufficient_user_authentication`, with `acr_values` and `max_age`).
    #[error("insufficient user authentication")]
    InsufficientUserAuthentication {
        /// The minimum `acr` the route needs (the challenge's `acr_values`).
        acr_values: Option<String>,
        /// The maximum age of the authentication, in seconds (the challenge's `max_age`).
        max_age: Option<u64>,
    },
    /// Keys or introspection are unreachable and nothing usable is cached (503).
    #[error("token verification unavailable: {0}")]
    Unavailable(&'static str),
    /// An extractor ran on a route no guard layer covers and no guard is installed (500).
    #[error("no tessera guard installed for this route")]
    NotConfigured,
}

impl GuardError {
    /// True for the refusals only the DPoP scheme can fix: their error goes on the `DPoP`
    /// challenge whichever scheme the request used.
    pub fn concerns_dpop(&self) -> bool {
        matches!(
            self,
            GuardError::TokenBinding(_)
                | GuardError::InvalidDpopProof(_)
                | GuardError::UseDpopNonce(_)
        )
    }

    /// The RFC 6750 (or RFC 9449) error code, if the response carries one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            GuardError::MissingToken | GuardError::Unavailable(_) | GuardError::NotConfigured => {
                None
            }
            GuardError::InvalidRequest(_) => Some("invalid_request"),
            GuardError::InvalidToken(_)
            | GuardError::Inactive
            | GuardError::Revoked
            | GuardError::TokenBinding(_) => Some("invalid_token"),
            GuardError::InvalidDpopProof(_) => Some("invalid_dpop_proof"),
            GuardError::UseDpopNonce(_) => Some("use_dpop_nonce"),
            GuardError::InsufficientScope { .. } => Some("insufficient_scope"),
            GuardError::InsufficientUserAuthentication { .. } => {
                Some("insufficient_user_authentication")
            }
        }
    }

    /// A short, fixed name for the refusal: the `reason` label of
    /// [`crate::REFUSALS_METRIC`]. `invalid_token` is split by the rule that failed.
    pub fn reason(&self) -> &'static str {
        use tessera_token::Error as E;
        match self {
            GuardError::MissingToken => "missing_token",
            GuardError::InvalidRequest(_) => "invalid_request",
            GuardError::InvalidToken(E::Expired) => "expired",
            GuardError::InvalidToken(E::BadSignature | E::AlgMismatch) => "bad_signature",
            GuardError::InvalidToken(E::UnknownKid | E::AmbiguousKey) => "unknown_key",
            GuardError::InvalidToken(E::WrongIssuer | E::WrongAudience | E::WrongType) => {
                "claims_not_accepted"
            }
            GuardError::InvalidToken(_) => "invalid_token",
            GuardError::Inactive => "inactive",
            GuardError::Revoked => "revoked",
            GuardError::TokenBinding(_) => "token_binding",
            GuardError::InvalidDpopProof(_) => "invalid_dpop_proof",
            GuardError::UseDpopNonce(_) => "use_dpop_nonce",
            GuardError::InsufficientScope { .. } => "insufficient_scope",
            GuardError::InsufficientUserAuthentication { .. } => "insufficient_user_authentication",
            GuardError::Unavailable(_) => "unavailable",
            GuardError::NotConfigured => "not_configured",
        }
    }

    /// The short `error_description` shown to the client. It names the rule, never the
    /// token, a key or internal state.
    pub fn description(&self) -> Option<Cow<'static, str>> {
        use tessera_token::Error as E;
        Some(match self {
            GuardError::MissingToken | GuardError::NotConfigured => return None,
            GuardError::InvalidRequest(why) => why.clone(),
            GuardError::Inactive => "token is not active".into(),
            GuardError::Revoked => "token revoked".into(),
            GuardError::TokenBinding(why) => Cow::Borrowed(why),
            GuardError::InvalidDpopProof(why) => why.clone(),
            GuardError::UseDpopNonce(_) => {
                "the DPoP proof must carry the nonce this server sent".into()
            }
            GuardError::InsufficientScope { .. } => "the token lacks the required scope".into(),
            GuardError::InsufficientUserAuthentication {
                acr_values,
                max_age,
            } => match (acr_values, max_age) {
                (Some(_), Some(_)) => "a stronger and more recent authentication is required",
                (Some(_), None) => "a stronger authentication is required",
                _ => "a more recent authentication is required",
            }
            .into(),
            GuardError::Unavailable(_) => "token verification is temporarily unavailable".into(),
            GuardError::InvalidToken(e) => match e {
                E::Expired => "token expired",
                E::NotYetValid | E::IssuedInFuture => "token not valid yet",
                E::TooLarge { .. } => "token too large",
                E::UnknownKid | E::AmbiguousKey => "unknown signing key",
                E::BadSignature | E::AlgMismatch => "invalid signature",
                E::WrongIssuer => "issuer not accepted",
                E::WrongAudience => "audience not accepted",
                E::WrongType => "token type not accepted",
                E::MissingClaim(_) | E::InvalidClaim(_) => "token claims not accepted",
                E::AlgNone | E::ForbiddenHeader(_) | E::UnknownCrit | E::Unsupported => {
                    "token header not accepted"
                }
                _ => "malformed token",
            }
            .into(),
        })
    }
}

/// The refusal of the extractors [`crate::Auth`], [`crate::MaybeAuth`] and [`crate::Scoped`]:
/// the [`GuardError`] and the guard's settings (realm, JSON body) that shape its response.
/// As a response it is exactly [`crate::Guard::error_response`]; a handler taking
/// `Result<Auth, AuthRejection>` can look at [`AuthRejection::error`] first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct AuthRejection {
    error: GuardError,
    challenges: Arc<Challenges>,
    scheme: Scheme,
}

impl AuthRejection {
    pub(crate) fn new(error: GuardError, challenges: Arc<Challenges>, scheme: Scheme) -> Self {
        AuthRejection {
            error,
            challenges,
            scheme,
        }
    }

    /// Why the request was refused.
    pub fn error(&self) -> &GuardError {
        &self.error
    }
}

impl IntoResponse for AuthRejection {
    /// The RFC 6750 response: status, `WWW-Authenticate`, optional JSON body.
    fn into_response(self) -> Response {
        challenge::response(&self.challenges, self.scheme, &self.error)
    }
}

/// A call to the authorization server (discovery, JWKS, introspection, revocation feed)
/// failed. Messages never contain credentials or tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connection, TLS or timeout failure.
    #[error("request failed: {0}")]
    Transport(String),
    /// The server answered with an unexpected status.
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// The response body is over the size limit.
    #[error("response too large")]
    TooLarge,
    /// The response is not the expected JSON document.
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    /// Discovery metadata names another issuer (RFC 8414 section 3.3).
    #[error("metadata issuer does not match the configured issuer")]
    IssuerMismatch,
    /// A URL is not https and not loopback.
    #[error("refusing non-https URL {0}")]
    InsecureUrl(String),
}

/// A guard configuration that cannot work. The message names the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A URL does not parse.
    #[error("{field}: not a valid absolute URL")]
    InvalidUrl {
        /// The option.
        field: &'static str,
    },
    /// A URL uses plain http on a non-loopback host.
    #[error("{field}: must be https (plain http is allowed only for loopback hosts)")]
    InsecureUrl {
        /// The option.
        field: &'static str,
    },
    /// A key set could not be used.
    #[error("keys: {0}")]
    Keys(tessera_token::Error),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    HttpClient(String),
    /// Another inconsistent option.
    #[error("{0}")]
    Invalid(&'static str),
}
