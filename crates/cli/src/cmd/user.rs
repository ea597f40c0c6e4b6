//! `tessera user`: add, list, disable, enable and remove users, set their passwords, and
//! list or reset their second factors.

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
    /// Disable a user: no more logins; their sessions, tokens and unredeemed codes are revoked.
    Disable {
        /// Login name.
        name: String,
    },
    /// Enable a disabled user: they may sign in again (what was revoked stays revoked).
    Enable {
        /// Login name.
        name: String,
    },
    /// Remove a user: revokes everything they hold, then deletes them (a new user of the
    /// same name gets a new sub).
    Remove {
        /// Login name.
        name: String,
    },
    /// Set a user's password; also ends their sessions and revokes their tokens unless
    /// --keep-sessions.
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Keep the user's sessions and tokens (by default a password change ends them).
        #[arg(long)]
        keep_sessions: bool,
    },
    /// List a user's second factors (never a secret).
    Mfa {
        /// Login name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user's second factors and recovery codes; also ends their sessions and
    /// revokes their tokens. With mfa = "required" they enrol again at their next sign-in.
    MfaReset {
        /// Login name.
        name: String,
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
        UserCommand::Enable { name } => {
            global.admin().await?.enable_user(&name).await?;
            println!("enabled user {name}");
        }
        UserCommand::Remove { name } => {
            let sub = global.admin().await?.remove_user(&name).await?;
            println!("removed user {name} (sub {sub}) and revoked their sessions");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            keep_sessions,
        } => {
            let password = read_password(password_stdin)?;
            global
                .admin()
                .await?
                .set_password(&name, password, keep_sessions)
                .await?;
            if keep_sessions {
                println!("password of {name} changed; their sessions were kept");
            } else {
                println!("password of {name} changed and their sessions revoked");
            }
        }
        UserCommand::Mfa { name, json } => {
            let f = global.admin().await?.user_factors(&name).await?;
            let (totp, since) = match f.totp {
                None => ("none", None),
                Some((_, None)) => ("pending", None),
                Some((_, Some(at))) => ("enrolled", Some(at.secs())),
            };
            if json {
                let out = json!({
                    "name": name,
                    "totp": totp,
                    "totp_confirmed_at": since,
                    "recovery_codes_left": f.recovery_codes_left,
                    "passkeys": f.passkeys.iter().map(|p| json!({
                        "label": p.label,
                        "created_at": p.created_at.secs(),
                        "last_used_at": p.last_used_at.map(|u| u.secs()),
                        "suspect_at": p.suspect_at.map(|u| u.secs()),
                    })).collect::<Vec<_>>(),
                });
                println!("{out}");
            } else {
                println!("totp: {totp}");
                println!("recovery codes left: {}", f.recovery_codes_left);
                println!("passkeys: {}", f.passkeys.len());
                for p in &f.passkeys {
                    let used = p
                        .last_used_at
                        .map_or("never".to_owned(), |u| u.secs().to_string());
                    let suspect = p.suspect_at.map_or(String::new(), |u| {
                        format!(
                            "; SUSPECT since {}: its counter went back, refused until mfa-reset",
                            u.secs()
                        )
                    });
                    println!(
                        "  {} (registered {}, last used {used}{suspect})",
                        p.label,
                        p.created_at.secs()
                    );
                }
            }
        }
        UserCommand::MfaReset { name } => {
            let had = global.admin().await?.reset_mfa(&name).await?;
            if had {
                println!("removed the second factors of {name} and revoked their sessions");
            } else {
                println!("{name} had no second factor; their sessions were revoked");
            }
        }
    }
    Ok(())
}
