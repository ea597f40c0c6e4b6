//! `tessera user`: add, list, disable users and set their passwords.

use clap::Subcommand;
use serde_json::json;

use crate::cmd::{Global, read_password};
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; asks for the password on the terminal unless --password-stdin.
    Add {
        /// Login name (letters, digits, '.', '_', '-', '@').
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: no more logins, and all their sessions are revoked.
    Disable {
        /// Login name.
        name: String,
    },
    /// Set a user's password.
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

pub(crate) async fn run(global: &Global, cmd: UserCommand) -> Result<(), CliError> {
    match cmd {
        UserCommand::Add {
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let admin = global.admin().await?;
            let user = admin.add_user(&name, password).await?;
            println!("added user {} (sub {})", user.name, user.id);
        }
        UserCommand::List { json } => {
            let users = global.admin().await?.users().await?;
            if json {
                let list: Vec<_> = users
                    .iter()
                    .map(|u| json!({ "name": u.name, "id": u.id, "disabled": u.disabled, "created_at": u.created_at.secs() }))
                    .collect();
                println!("{}", serde_json::Value::from(list));
            } else {
                println!("{:<24} {:<26} status", "NAME", "SUB");
                for u in users {
                    let status = if u.disabled { "disabled" } else { "active" };
                    println!("{:<24} {:<26} {status}", u.name, u.id);
                }
            }
        }
        UserCommand::Disable { name } => {
            global.admin().await?.disable_user(&name).await?;
            println!("disabled user {name} and revoked their sessions");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            global.admin().await?.set_password(&name, password).await?;
            println!("password of {name} changed");
        }
    }
    Ok(())
}
