//! `tessera keys`: list, rotate, import and remove signing keys.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use tessera_server::admin::KeyInfo;
use tessera_token::Algorithm;

use crate::cmd::Global;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List keys with their state: published (in the JWKS, not signing yet), active
    /// (signing), retired (in the JWKS until its last token expires).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish a new key now; it starts signing once every server has loaded it and
    /// published it for the JWKS cache lifetime (jwks_cache_ttl_secs +
    /// key_refresh_interval_secs + 1 s), and the key it replaces retires then.
    Rotate {
        /// Algorithm (EdDSA, ES256, RS256); default: one new key of each algorithm in use
        /// (the configured signing_alg, RS256 for ID tokens, and any other with an active
        /// key).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<Algorithm>,
    },
    /// Import a PKCS#8 PEM private key (Ed25519, P-256, RSA >= 2048 bits).
    Import {
        /// The PEM file (`-----BEGIN PRIVATE KEY-----`).
        file: PathBuf,
        /// Key id; default: the RFC 7638 thumbprint.
        #[arg(long)]
        kid: Option<String>,
        /// Let it sign (after the JWKS cache lifetime); without this it is only published.
        #[arg(long)]
        activate: bool,
    },
    /// Remove a published key that never signed (rotated or imported by mistake); an
    /// active or retired key is refused.
    Remove {
        /// Key id (see `tessera keys list`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    match s.parse::<Algorithm>() {
        Ok(a) if a.is_asymmetric() => Ok(a),
        _ => Err("use EdDSA, ES256 or RS256".into()),
    }
}

fn describe(k: &KeyInfo) -> serde_json::Value {
    json!({
        "kid": k.kid,
        "alg": k.alg,
        "state": k.state.as_str(),
        "created_at": k.created_at.secs(),
        "activate_after": k.activate_after.map(|t| t.secs()),
        "retired_at": k.retired_at.map(|t| t.secs()),
    })
}

pub(crate) async fn run(global: &Global, cmd: KeysCommand) -> Result<(), CliError> {
    // Only the commands that seal keys may record the master key's check in a store
    // that has none; listing and removing only verify it.
    let admin = match cmd {
        KeysCommand::Rotate { .. } | KeysCommand::Import { .. } => global.admin_to_seal().await?,
        KeysCommand::List { .. } | KeysCommand::Remove { .. } => global.admin().await?,
    };
    match cmd {
        KeysCommand::List { json } => {
            let keys = admin.keys().await?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::from(keys.iter().map(describe).collect::<Vec<_>>())
                );
            } else {
                println!(
                    "{:<44} {:<6} {:<9} {:<12} signs from",
                    "KID", "ALG", "STATE", "CREATED"
                );
                for k in keys {
                    let from = k
                        .activate_after
                        .map_or("-".to_owned(), |t| t.secs().to_string());
                    println!(
                        "{:<44} {:<6} {:<9} {:<12} {from}",
                        k.kid,
                        k.alg,
                        k.state.as_str(),
                        k.created_at.secs()
                    );
                }
            }
        }
        KeysCommand::Rotate { alg } => {
            // One line per key as soon as it is stored: if a later one fails, the
            // operator still learns what was published.
            admin
                .rotate_key(alg, |k| {
                    let from = k.activate_after.map_or(0, |t| t.secs());
                    println!(
                        "published {} ({}); it signs from {from} (Unix time)",
                        k.kid, k.alg
                    );
                })
                .await?;
        }
        KeysCommand::Import {
            file,
            kid,
            activate,
        } => {
            let pem =
                zeroize::Zeroizing::new(std::fs::read_to_string(&file).map_err(|e| {
                    CliError::usage(format!("cannot read {}: {e}", file.display()))
                })?);
            let k = admin.import_key(&pem, kid.as_deref(), activate).await?;
            match k.activate_after {
                Some(t) => println!(
                    "imported {} ({}); it signs from {} (Unix time)",
                    k.kid,
                    k.alg,
                    t.secs()
                ),
                None => println!(
                    "imported {} ({}); published only (add --activate to sign with it)",
                    k.kid, k.alg
                ),
            }
        }
        KeysCommand::Remove { kid } => {
            let k = admin.remove_key(&kid).await?;
            println!("removed {} ({}); it never signed", k.kid, k.alg);
        }
    }
    Ok(())
}
