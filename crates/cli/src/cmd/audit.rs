//! `tessera audit`: read the audit log. Events never hold a token, secret or password.

use clap::Subcommand;
use serde_json::json;

use crate::cmd::Global;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List the latest events, newest first.
    List {
        /// How many events.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON (one array).
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(global: &Global, cmd: AuditCommand) -> Result<(), CliError> {
    let AuditCommand::List { limit, json } = cmd;
    let events = global.admin().await?.audit_events(limit).await?;
    if json {
        let list: Vec<_> = events
            .iter()
            .map(|e| {
                let detail: serde_json::Value =
                    serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
                json!({ "at": e.at.secs(), "kind": e.kind, "client_id": e.client_id, "user_id": e.user_id, "detail": detail })
            })
            .collect();
        println!("{}", serde_json::Value::from(list));
    } else {
        for e in events {
            println!(
                "{} {:<22} client={} user={} {}",
                e.at.secs(),
                e.kind,
                e.client_id.as_deref().unwrap_or("-"),
                e.user_id.as_deref().unwrap_or("-"),
                e.detail
            );
        }
    }
    Ok(())
}
