//! One error type for the CLI: a one-line message and the exit code it maps to.

use tessera_server::Error;

/// A failed command: what to print and how to exit.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl CliError {
    pub(crate) fn runtime(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 1,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 2,
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Invalid(_) => 2,
            Error::Config(_) | Error::MasterKey(_) => 3,
            Error::NotFound(_) => 4,
            Error::Conflict(_) => 5,
            Error::InvalidToken(_) => 6,
            _ => 1,
        };
        CliError {
            message: e.to_string(),
            code,
        }
    }
}
