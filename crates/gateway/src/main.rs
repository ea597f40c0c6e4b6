//! `tessera-gateway`: reads its TOML file, builds the gateway and serves it in the
//! configured mode. (The serving half is being built: see issue 18, sections 2 and 3.)

use std::path::PathBuf;

use clap::Parser;
use tessera_gateway::GatewayConfig;

/// Tessera's guard in front of any HTTP API: forward-auth for nginx, Traefik and Envoy, or
/// a reverse proxy.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The gateway's configuration file (TOML; see docs/gateway.md).
    #[arg(long, short, env = "TESSERA_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Check the configuration file and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match GatewayConfig::load(&args.config) {
        Ok(config) if args.check => {
            println!(
                "{}: ok ({} routes, mode {:?})",
                args.config.display(),
                config.routes.len(),
                config.mode
            );
            std::process::ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("serving is not built yet");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tessera-gateway: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
