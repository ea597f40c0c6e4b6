//! `tessera token`: decode (no checks), verify (against the store's keys) and mint access
//! tokens. A TOKEN argument of `-` reads the token from standard input, which keeps it out
//! of the shell history and the process list.

use std::io::Read;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;
use tessera_server::admin::MintRequest;
use zeroize::Zeroizing;

use crate::cmd::Global;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Show a JWT's header and claims WITHOUT verifying anything.
    Decode {
        /// The token, or `-` for standard input.
        token: String,
    },
    /// Verify an access token with the keys in the store (signature, typ at+jwt, iss, aud,
    /// exp); exit 6 when it does not verify.
    Verify {
        /// The token, or `-` for standard input.
        token: String,
        /// Expected issuer; default: this data directory's issuer.
        #[arg(long, env = "TESSERA_ISSUER")]
        issuer: Option<String>,
        /// Expected audience; default: the token's first audience.
        #[arg(long)]
        audience: Option<String>,
    },
    /// Mint an access token for a client from the local store (for tests and operations).
    Mint {
        /// client_id or name (a client_id may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        client: String,
        /// Subject; default: the client id.
        #[arg(long)]
        sub: Option<String>,
        /// Scope; default: everything the client may have.
        #[arg(long)]
        scope: Option<String>,
        /// One of the client's audiences; default: all.
        #[arg(long)]
        audience: Option<String>,
        /// Lifetime in seconds; default: the configured access-token lifetime.
        #[arg(long)]
        ttl: Option<u64>,
        /// Issuer (`iss`); default: this data directory's issuer.
        #[arg(long, env = "TESSERA_ISSUER")]
        issuer: Option<String>,
        /// Bind the token to a DPoP key: its RFC 7638 thumbprint, put in `cnf.jkt`.
        #[arg(long)]
        cnf_jkt: Option<String>,
    },
}

fn read_token(arg: String) -> Result<Zeroizing<String>, CliError> {
    if arg != "-" {
        return Ok(Zeroizing::new(arg));
    }
    let mut s = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| CliError::runtime(format!("cannot read the token from stdin: {e}")))?;
    Ok(Zeroizing::new(s.trim().to_owned()))
}

fn claims_json(c: &tessera_token::Claims) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or(serde_json::Value::Null)
}

pub(crate) async fn run(global: &Global, cmd: TokenCommand) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Decode { token } => {
            let token = read_token(token)?;
            let t = tessera_token::decode_unverified(&token)
                .map_err(|e| CliError::usage(format!("not a JWT: {e}")))?;
            let out = json!({
                "header": { "alg": t.header.alg, "kid": t.header.kid, "typ": t.header.typ },
                "claims": claims_json(&t.claims),
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            eprintln!("(decoded only: nothing was verified)");
        }
        TokenCommand::Verify {
            token,
            issuer,
            audience,
        } => {
            let token = read_token(token)?;
            let admin = global.admin().await?;
            let v = admin
                .verify(&token, issuer.as_deref(), audience.as_deref())
                .await?;
            let out = json!({ "kid": v.kid(), "alg": v.algorithm().name(), "claims": claims_json(v.claims()) });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        TokenCommand::Mint {
            client,
            sub,
            scope,
            audience,
            ttl,
            issuer,
            cnf_jkt,
        } => {
            let admin = global.admin().await?;
            let token = admin
                .mint(MintRequest {
                    client,
                    sub,
                    scope,
                    audience,
                    ttl: ttl.map(Duration::from_secs),
                    issuer,
                    cnf_jkt,
                })
                .await?;
            println!("{token}");
        }
    }
    Ok(())
}
