//! The `tessera` command: the authorization server (`tessera serve`) and the operator
//! commands (users, clients, sessions), all working on one data directory.
//!
//! Exit codes: 0 success; 1 runtime failure (storage, I/O); 2 usage error or invalid
//! input; 3 configuration or master-key problem (a wrong master key, a missing data
//! directory, a data directory another server holds); 4 not found; 5 already exists; 6
//! the token given to `tessera token verify` is not valid.

mod cmd;
mod exit;
mod logging;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::CliError;

/// Tessera: an OAuth 2 authorization server and its operator tools.
///
/// Every command works on one store: the SQLite database in the data directory (default
/// ./tessera-data), or the PostgreSQL database given with --database. The data directory
/// also holds master.key unless TESSERA_MASTER_KEY is set (replicas sharing a PostgreSQL
/// database must share the master key). Only `serve` and `init` create a data directory;
/// the other commands refuse a missing one. Every command checks the master key against
/// the database before it changes anything. Operator commands talk to the store directly
/// and can run while the server runs.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, propagate_version = true, after_help = EXIT_CODES)]
struct Cli {
    /// Data directory (created only by `serve` and `init`) [env: TESSERA_DATA_DIR].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL database URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE) instead
    /// of SQLite in the data directory; migrated automatically [env: TESSERA_DATABASE_URL].
    // The brackets are `--help` text, not links.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// TOML configuration file (see docs/server.md); flags and variables override it.
    #[arg(long, global = true, env = "TESSERA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set any configuration key, over the file and TESSERA_* variables (repeatable);
    /// `tessera config example` lists the keys.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    sets: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "\
Exit codes: 0 ok, 1 runtime failure, 2 usage or invalid input, 3 configuration, master key \
or data directory, 4 not found, 5 already exists, 6 token not valid (token verify).";

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the authorization server.
    Serve(cmd::serve::ServeArgs),
    /// Create the data directory, database and master key (if they do not exist) and
    /// print where they are.
    Init,
    /// Print a documented example configuration, or check one.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
    /// Check a configuration, its data directory and a running deployment against
    /// docs/security.md; exits 1 when a check fails.
    Doctor(cmd::doctor::DoctorArgs),
    /// Manage users (resource owners for the password grant).
    #[command(subcommand)]
    User(cmd::user::UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(cmd::client::ClientCommand),
    /// List or revoke a user's sessions (grants and their refresh tokens).
    #[command(subcommand)]
    Sessions(cmd::sessions::SessionsCommand),
    /// Manage signing keys: list, rotate, import, remove.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Decode, verify or mint access tokens (local store, no HTTP).
    #[command(subcommand)]
    Token(cmd::token::TokenCommand),
    /// Show the audit log (logins, issuance, refresh reuse, revocations, key changes).
    Audit(cmd::audit::AuditArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line per problem (`config check` reports every one).
            for line in e.message.lines() {
                eprintln!("tessera: {line}");
            }
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::runtime(format!("cannot start the async runtime: {e}")))?;
    let global = cmd::Global {
        data_dir: cli.data_dir,
        database: cli.database,
        config: cli.config,
        sets: cli.sets,
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => cmd::serve::run(&global, args).await,
            Command::Init => cmd::init::run(&global).await,
            Command::Config(c) => cmd::config::run(&global, c),
            Command::Doctor(a) => cmd::doctor::run(&global, a).await,
            Command::User(c) => cmd::user::run(&global, c).await,
            Command::Client(c) => cmd::client::run(&global, c).await,
            Command::Sessions(c) => cmd::sessions::run(&global, c).await,
            Command::Audit(c) => cmd::audit::run(&global, c).await,
            Command::Keys(c) => cmd::keys::run(&global, c).await,
            Command::Token(c) => cmd::token::run(&global, c).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    /// A client_id is base64url and starts with `-` once in 64: it is still a value
    /// (`client remove -OYZc...` was refused as an unknown flag), and flags after it
    /// still parse.
    #[test]
    fn client_ids_starting_with_a_hyphen_are_values() {
        for args in [
            &["tessera", "client", "remove", "-OYZc8OJzj2YfPtHj3cuWw"][..],
            &[
                "tessera",
                "client",
                "rotate-secret",
                "-OYZc8OJzj2YfPtHj3cuWw",
                "--json",
            ],
            &[
                "tessera",
                "token",
                "mint",
                "--client",
                "-OYZc8OJzj2YfPtHj3cuWw",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let shown = format!("{:?}", cli.command);
            assert!(shown.contains("-OYZc8OJzj2YfPtHj3cuWw"), "{shown}");
            if args.contains(&"--json") {
                assert!(shown.contains("json: true"), "{shown}");
            }
            assert!(matches!(
                cli.command,
                Command::Client(_) | Command::Token(_)
            ));
        }
    }
}
