//! The server crate's operational error: start-up, configuration, storage and operator
//! commands. Protocol errors on the wire are [`crate::OAuthError`].

use crate::store::StoreError;

/// Why starting the server or an operator command failed. Messages name the fix and
/// never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad configuration (names the field and the fix).
    #[error("{0}")]
    Config(String),
    /// The master key is missing, malformed, unreadable or wrong.
    #[error("{0}")]
    MasterKey(String),
    /// Bad operator input (names, passwords, scopes).
    #[error("{0}")]
    Invalid(String),
    /// A token given to `tessera token verify` does not verify.
    #[error("{0}")]
    InvalidToken(String),
    /// The named record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The named record already exists.
    #[error("{0}")]
    Conflict(String),
    /// The storage backend failed.
    #[error("storage: {0}")]
    Store(String),
    /// A key could not be built, sealed or opened.
    #[error("signing key: {0}")]
    Key(String),
    /// I/O (data directory, listening socket).
    #[error("{0}")]
    Io(String),
    /// Anything else that is not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Error::Conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => Error::NotFound(format!("{what} not found")),
            StoreError::Backend(m) => Error::Store(m),
        }
    }
}

impl From<tessera_token::Error> for Error {
    fn from(e: tessera_token::Error) -> Self {
        Error::Key(e.to_string())
    }
}
