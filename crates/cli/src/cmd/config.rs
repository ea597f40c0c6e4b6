//! `tessera config`: print the documented example file, or check a configuration.

use clap::Subcommand;
use tessera_server::Overrides;
use tessera_server::config::EXAMPLE;

use crate::cmd::Global;
use crate::exit::CliError;

/// `tessera config ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print a commented TOML file with every key and its default.
    Example,
    /// Load the configuration (file, TESSERA_* variables, --set) as `serve` would and
    /// report every problem, one line each, or `config ok`.
    Check,
}

pub(crate) fn run(global: &Global, cmd: ConfigCommand) -> Result<(), CliError> {
    match cmd {
        ConfigCommand::Example => {
            print!("{EXAMPLE}");
            Ok(())
        }
        ConfigCommand::Check => {
            // The transport rule needs a loaded configuration, so it comes on top of the
            // others only when they pass.
            let config = global.config(Overrides::default())?;
            config.serving.check_transport()?;
            // The metrics token file is read at start: report it missing, readable by
            // others or not a usable token now rather than at `serve`.
            if let Some(path) = &config.metrics.metrics_token_file {
                tessera_server::http::MetricsToken::load(path)?;
            }
            println!("config ok");
            Ok(())
        }
    }
}
