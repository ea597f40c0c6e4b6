//! The subcommands, one module each, and what they share: configuration and input.

pub(crate) mod audit;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod doctor;
pub(crate) mod init;
pub(crate) mod keys;
pub(crate) mod serve;
pub(crate) mod sessions;
pub(crate) mod token;
pub(crate) mod user;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use tessera_server::admin::Admin;
use tessera_server::{Overrides, ServerConfig};
use tessera_token::SecretString;
use zeroize::Zeroizing;

use crate::exit::CliError;

/// Options every command takes.
#[derive(Debug)]
pub(crate) struct Global {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) database: Option<String>,
    pub(crate) config: Option<PathBuf>,
    /// `--set KEY=VALUE` assignments, in order.
    pub(crate) sets: Vec<String>,
}

impl Global {
    /// The validated configuration from the file (if any) and `overrides`.
    /// Unknown `TESSERA_*` variables are warned about on stderr.
    pub(crate) fn config(&self, overrides: Overrides) -> Result<ServerConfig, CliError> {
        for warning in env_warnings() {
            eprintln!("tessera: warning: {warning}");
        }
        self.config_unwarned(overrides)
    }

    /// [`Global::config`] leaving the warnings to the caller ([`env_warnings`]): `serve`
    /// logs them, so they follow `--log-format`.
    pub(crate) fn config_unwarned(
        &self,
        mut overrides: Overrides,
    ) -> Result<ServerConfig, CliError> {
        overrides.data_dir = self.data_dir.clone();
        overrides.database = self.database.clone();
        Ok(ServerConfig::load(
            self.config.as_deref(),
            &self.sets,
            overrides,
        )?)
    }

    /// The operator handle on the local store.
    pub(crate) async fn admin(&self) -> Result<Admin, CliError> {
        let config = self.config(Overrides::default())?;
        Ok(Admin::open(&config).await?)
    }

    /// [`Global::admin`] for the commands that seal keys: records the master key's check
    /// in a store that has none.
    pub(crate) async fn admin_to_seal(&self) -> Result<Admin, CliError> {
        let config = self.config(Overrides::default())?;
        Ok(Admin::open_to_seal(&config).await?)
    }
}

/// One warning per `TESSERA_*` variable in the environment that nothing reads.
pub(crate) fn env_warnings() -> Vec<String> {
    let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    tessera_server::config::unknown_env_vars(names)
}

/// Reads a password: one line from standard input with `--password-stdin`, else a
/// prompt (twice, not echoed) on the terminal.
pub(crate) fn read_password(from_stdin: bool) -> Result<SecretString, CliError> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::runtime(format!("cannot read the password from stdin: {e}")))?;
        let pw = line.trim_end_matches(['\n', '\r']);
        return Ok(SecretString::new(pw));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "no terminal to ask for the password; pipe it in with --password-stdin",
        ));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("Password: ")
            .map_err(|e| CliError::runtime(format!("cannot read the password: {e}")))?,
    );
    let second = Zeroizing::new(
        rpassword::prompt_password("Repeat password: ")
            .map_err(|e| CliError::runtime(format!("cannot read the password: {e}")))?,
    );
    if *first != *second {
        return Err(CliError::usage("the passwords do not match; try again"));
    }
    Ok(SecretString::new(first.as_str()))
}
