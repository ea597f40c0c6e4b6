//! `tessera sessions`: list or revoke a user's sessions.

use clap::Subcommand;
use serde_json::json;

use crate::cmd::Global;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// List a user's live sessions.
    List {
        /// Login name.
        #[arg(long)]
        user: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke all of a user's sessions ("log out everywhere"); resource servers learn it
    /// from the revocation feed.
    Revoke {
        /// Login name.
        #[arg(long)]
        user: String,
    },
}

pub(crate) async fn run(global: &Global, cmd: SessionsCommand) -> Result<(), CliError> {
    let admin = global.admin().await?;
    match cmd {
        SessionsCommand::List { user, json } => {
            let grants = admin.sessions(&user).await?;
            if json {
                let list: Vec<_> = grants
                    .iter()
                    .map(|g| json!({ "sid": g.id, "client_id": g.client_id, "scope": g.scope.to_string(), "created_at": g.created_at.secs(), "expires_at": g.expires_at.secs() }))
                    .collect();
                println!("{}", serde_json::Value::from(list));
            } else {
                println!("{:<26} {:<24} {:<12} scope", "SID", "CLIENT", "CREATED");
                for g in grants {
                    println!(
                        "{:<26} {:<24} {:<12} {}",
                        g.id,
                        g.client_id,
                        g.created_at.secs(),
                        g.scope
                    );
                }
            }
        }
        SessionsCommand::Revoke { user } => {
            let n = admin.revoke_sessions(&user).await?;
            println!("revoked {n} session(s) of {user}");
        }
    }
    Ok(())
}
