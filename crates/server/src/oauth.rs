//! The one protocol error enum of the token, revocation and introspection endpoints, in
//! the order of RFC 6749 section 5.2. `http::error` maps it to the wire in one place.

use std::fmt;

/// An OAuth error as the client will see it. `description` is for the client and never
/// holds a secret; `Server` keeps its detail for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthError {
    /// `invalid_request`: missing, repeated or malformed parameter.
    InvalidRequest(String),
    /// `invalid_client`: client authentication failed (401, always with the
    /// `WWW-Authenticate: Basic` challenge of RFC 9110 section 11.6.1).
    InvalidClient,
    /// `invalid_grant`: bad, expired or revoked grant or credentials.
    InvalidGrant(&'static str),
    /// `unauthorized_client`: this client may not use this grant type.
    UnauthorizedClient(&'static str),
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`: unknown scope or more than allowed.
    InvalidScope(&'static str),
    /// `invalid_target` (RFC 8707): the `resource` is not one of the client's audiences.
    InvalidTarget,
    /// `invalid_dpop_proof` (RFC 9449 section 5): the `DPoP` proof is missing where it is
    /// required, malformed, replayed, or by a key other than the one the grant is bound
    /// to.
    InvalidDpopProof(&'static str),
    /// `use_dpop_nonce` (RFC 9449 section 8): the proof must carry the server nonce sent
    /// in the `DPoP-Nonce` header of this answer.
    UseDpopNonce {
        /// The nonce to retry with.
        nonce: String,
    },
    /// Too many failed attempts: 429 with `Retry-After`.
    TooManyRequests {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Too many requests from one client (`/revoke`): 429 with `Retry-After`.
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// `server_error` (500); the detail is logged, never sent.
    Server(String),
    /// `temporarily_unavailable` (503 with `Retry-After`): no signing key of the client's
    /// algorithm is active (a rotated key not yet published, or none imported); the
    /// detail is logged, never sent.
    NoSigningKey {
        /// What is missing, for the log.
        detail: String,
        /// Seconds until the next key refresh may have picked one up.
        retry_after: u64,
    },
    /// `temporarily_unavailable` (503 with `Retry-After`): the store cannot be reached
    /// (database down, pool exhausted); the detail is logged, never sent.
    Unavailable(String),
    /// `temporarily_unavailable` (503 with `Retry-After`): more password checks are
    /// waiting than `password_hash_queue` allows; refused at once instead of queued.
    Busy {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// `temporarily_unavailable` (503 with `Retry-After`): this server's DPoP replay cache
    /// is full of live proofs; new proofs wait for entries to end rather than a live one
    /// being forgotten.
    ProofsBusy {
        /// Seconds until the first entry ends.
        retry_after: u64,
    },
    /// `temporarily_unavailable` (429 with `Retry-After`): the client holds
    /// `feed_subscriptions_per_client` push subscriptions already.
    TooManySubscriptions {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// `temporarily_unavailable` (503 with `Retry-After`): the server is draining and
    /// opens no push subscription (pulling still works).
    Draining,
    /// `temporarily_unavailable` (503 with `Retry-After`): the node holds
    /// `feed_subscriptions_max` push subscriptions already (pulling still works).
    SubscriptionsFull,
}

impl OAuthError {
    /// Shorthand for an `invalid_request` with a description.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        OAuthError::InvalidRequest(d.into())
    }

    /// The RFC 6749 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget => "invalid_target",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::UseDpopNonce { .. } => "use_dpop_nonce",
            OAuthError::TooManyRequests { .. }
            | OAuthError::RateLimited { .. }
            | OAuthError::TooManySubscriptions { .. } => "temporarily_unavailable",
            OAuthError::Server(_) => "server_error",
            OAuthError::Unavailable(_)
            | OAuthError::NoSigningKey { .. }
            | OAuthError::Busy { .. }
            | OAuthError::ProofsBusy { .. }
            | OAuthError::Draining
            | OAuthError::SubscriptionsFull => "temporarily_unavailable",
        }
    }

    /// The `error_description`, safe to send.
    pub fn description(&self) -> Option<&str> {
        match self {
            OAuthError::InvalidRequest(d) => Some(d),
            OAuthError::InvalidClient => Some("client authentication failed"),
            OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidDpopProof(d) => Some(d),
            OAuthError::UseDpopNonce { .. } => {
                Some("the DPoP proof must carry the nonce in the DPoP-Nonce header")
            }
            OAuthError::UnsupportedGrantType => Some(
                "grant_type must be client_credentials, password, refresh_token or authorization_code",
            ),
            OAuthError::InvalidTarget => Some("resource is not an audience of this client"),
            OAuthError::TooManyRequests { .. } => Some("too many failed attempts; retry later"),
            OAuthError::RateLimited { .. } => {
                Some("too many requests from this client; retry later")
            }
            OAuthError::NoSigningKey { .. } => {
                Some("no signing key is active for this client's algorithm yet; retry later")
            }
            OAuthError::Busy { .. } => Some("too many sign-ins in progress; retry later"),
            OAuthError::ProofsBusy { .. } => Some("too many DPoP proofs in flight; retry later"),
            OAuthError::TooManySubscriptions { .. } => {
                Some("this client holds as many feed subscriptions as it may; retry later")
            }
            OAuthError::Draining => {
                Some("this server is shutting down; subscribe again, or poll meanwhile")
            }
            OAuthError::SubscriptionsFull => {
                Some("this server holds as many feed subscriptions as it may; poll meanwhile")
            }
            OAuthError::Server(_) | OAuthError::Unavailable(_) => None,
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())?;
        if let Some(d) = self.description() {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl OAuthError {
    /// [`OAuthError::NoSigningKey`] for `alg`, retried after `retry_after` seconds (the next key refresh).
    pub(crate) fn no_signing_key(alg: &str, retry_after: u64) -> Self {
        OAuthError::NoSigningKey {
            detail: format!("no active key for {alg}; run `tessera keys rotate --alg {alg}`"),
            retry_after,
        }
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Backend(_) => OAuthError::Unavailable(e.to_string()),
            _ => OAuthError::Server(e.to_string()),
        }
    }
}

impl From<crate::Error> for OAuthError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Store(_) => OAuthError::Unavailable(e.to_string()),
            _ => OAuthError::Server(e.to_string()),
        }
    }
}
