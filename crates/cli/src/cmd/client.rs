//! `tessera client`: register, list, update, rotate the secret of, and remove OAuth clients.

use clap::Subcommand;
use serde_json::json;
use tessera_server::Overrides;
use tessera_server::admin::{Admin, KeyInfo, NewClient};
use tessera_server::keys::ID_TOKEN_ALG;
use tessera_server::store::{ClientRecord, GrantType, KeyState};
use tessera_token::Algorithm;

use crate::cmd::Global;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Register a client and print its client_id and (once) its secret.
    Add {
        /// Unique name.
        name: String,
        /// Grant types it may use: client_credentials, password, refresh_token,
        /// authorization_code.
        #[arg(long, value_delimiter = ',', num_args = 1.., required = true, value_parser = parse_grant)]
        grant_types: Vec<GrantType>,
        /// Scope it may request, space- or comma-separated, e.g. "notes:read notes:write".
        #[arg(long, default_value = "")]
        scope: String,
        /// Audience of its access tokens (repeatable); default: the issuer.
        #[arg(long, value_delimiter = ',')]
        audience: Vec<String>,
        /// Redirect URI of the authorization code flow (repeatable; matched exactly).
        #[arg(long)]
        redirect_uri: Vec<String>,
        /// OpenID Connect post-logout redirect URI (repeatable; matched exactly).
        #[arg(long)]
        post_logout_redirect_uri: Vec<String>,
        /// A first-party client: users signing in to it see no consent page.
        #[arg(long)]
        first_party: bool,
        /// A public client (no secret), e.g. a single-page app using authorization_code
        /// with PKCE.
        #[arg(long)]
        public: bool,
        /// Algorithm of its access tokens (EdDSA, ES256, RS256); default: the server's.
        #[arg(long, value_parser = parse_alg)]
        signing_alg: Option<Algorithm>,
        /// Algorithm of its ID tokens (`id_token_signed_response_alg`: RS256, ES256,
        /// EdDSA); default: RS256, what relying parties expect unless configured otherwise.
        #[arg(long, value_parser = parse_alg)]
        id_token_alg: Option<Algorithm>,
        /// Every token request must carry a DPoP proof, so all its access tokens are bound
        /// to the client's key (RFC 9449 `dpop_bound_access_tokens`).
        #[arg(long)]
        dpop_bound_access_tokens: bool,
        /// Print JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// List clients (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret; the old one stops working at once.
    RotateSecret {
        /// client_id or name (a client_id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        client: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a client in place (same client_id, secret and sessions). Running servers
    /// apply it within client_cache_ttl_secs.
    Update {
        /// client_id or name (a client_id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        client: String,
        /// Algorithm of its ID tokens (`id_token_signed_response_alg`: RS256, ES256, EdDSA).
        #[arg(long, value_parser = parse_alg, required_unless_present = "dpop_bound_access_tokens")]
        id_token_alg: Option<Algorithm>,
        /// Whether every token request must carry a DPoP proof (RFC 9449
        /// `dpop_bound_access_tokens`): true or false.
        #[arg(long, value_name = "true|false")]
        dpop_bound_access_tokens: Option<bool>,
    },
    /// Remove a client and revoke everything issued to it.
    Remove {
        /// client_id or name (a client_id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        client: String,
    },
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    match s.parse::<Algorithm>() {
        Ok(a) if a.is_asymmetric() => Ok(a),
        _ => Err("use EdDSA, ES256 or RS256".into()),
    }
}

/// Notes each algorithm in `algs` that has no signing key yet (said once each).
async fn note_missing_keys(admin: &Admin, algs: &[Algorithm]) -> Result<(), CliError> {
    if algs.is_empty() {
        return Ok(());
    }
    let keys = admin.keys().await?;
    let mut noted = Vec::new();
    for &alg in algs {
        let signs = |k: &&KeyInfo| {
            k.alg == alg.name() && k.activate_after.is_some() && k.state != KeyState::Retired
        };
        if !noted.contains(&alg) && !keys.iter().any(|k| signs(&k)) {
            noted.push(alg);
            eprintln!(
                "note: there is no {alg} signing key yet; run `tessera keys rotate --alg {alg}`"
            );
        }
    }
    Ok(())
}

fn parse_grant(s: &str) -> Result<GrantType, String> {
    s.parse()
}

fn describe(c: &ClientRecord) -> serde_json::Value {
    json!({
        "client_id": c.id,
        "name": c.name,
        "public": c.is_public(),
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scope": c.scope.to_string(),
        "audience": c.audience,
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "first_party": c.first_party,
        "signing_alg": c.signing_alg.map(|a| a.name()),
        "id_token_alg": c.id_token_alg.unwrap_or(ID_TOKEN_ALG).name(),
        "dpop_bound_access_tokens": c.dpop_bound_access_tokens,
    })
}

pub(crate) async fn run(global: &Global, cmd: ClientCommand) -> Result<(), CliError> {
    let admin = global.admin().await?;
    match cmd {
        ClientCommand::Add {
            name,
            grant_types,
            scope,
            audience,
            redirect_uri,
            post_logout_redirect_uri,
            first_party,
            public,
            signing_alg,
            id_token_alg,
            dpop_bound_access_tokens,
            json,
        } => {
            let (client, secret) = admin
                .add_client(NewClient {
                    name,
                    grant_types,
                    scope,
                    audience,
                    redirect_uris: redirect_uri,
                    post_logout_redirect_uris: post_logout_redirect_uri,
                    first_party,
                    public,
                    signing_alg,
                    id_token_alg,
                    dpop_bound_access_tokens,
                })
                .await?;
            let chosen: Vec<Algorithm> = client
                .signing_alg
                .into_iter()
                .chain(client.id_token_alg)
                .collect();
            note_missing_keys(&admin, &chosen).await?;
            if json {
                let mut v = describe(&client);
                if let (Some(s), Some(obj)) = (&secret, v.as_object_mut()) {
                    obj.insert("client_secret".into(), s.expose().into());
                }
                println!("{v}");
            } else {
                println!("client_id:     {}", client.id);
                match &secret {
                    Some(s) => {
                        println!("client_secret: {}", s.expose());
                        eprintln!("The secret is shown only once: store it now.");
                    }
                    None => println!("(public client: no secret)"),
                }
            }
        }
        ClientCommand::List { json } => {
            let clients = admin.clients().await?;
            if json {
                let list: Vec<_> = clients.iter().map(describe).collect();
                println!("{}", serde_json::Value::from(list));
            } else {
                println!(
                    "{:<20} {:<24} {:<12} {:<8} {:<5} {:<40} scope",
                    "NAME", "CLIENT_ID", "TYPE", "ID_TOKEN", "DPOP", "GRANTS"
                );
                for c in clients {
                    let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                    let kind = if c.is_public() {
                        "public"
                    } else {
                        "confidential"
                    };
                    let dpop = if c.dpop_bound_access_tokens {
                        "yes"
                    } else {
                        "no"
                    };
                    println!(
                        "{:<20} {:<24} {:<12} {:<8} {:<5} {:<40} {}",
                        c.name,
                        c.id,
                        kind,
                        c.id_token_alg.unwrap_or(ID_TOKEN_ALG).name(),
                        dpop,
                        grants.join(","),
                        c.scope
                    );
                }
            }
        }
        ClientCommand::RotateSecret { client, json } => {
            let (c, secret) = admin.rotate_secret(&client).await?;
            if json {
                println!(
                    "{}",
                    json!({ "client_id": c.id, "client_secret": secret.expose() })
                );
            } else {
                println!("client_id:     {}", c.id);
                println!("client_secret: {}", secret.expose());
                eprintln!("The secret is shown only once: store it now.");
            }
        }
        ClientCommand::Update {
            client,
            id_token_alg,
            dpop_bound_access_tokens,
        } => {
            if let Some(alg) = id_token_alg {
                let c = admin.set_id_token_alg(&client, alg).await?;
                println!("client {} ({}): ID tokens signed with {alg}", c.name, c.id);
                note_missing_keys(&admin, &[alg]).await?;
            }
            if let Some(required) = dpop_bound_access_tokens {
                let c = admin.set_dpop_bound(&client, required).await?;
                let what = if required {
                    "every token request must carry a DPoP proof"
                } else {
                    "DPoP proofs are optional"
                };
                println!("client {} ({}): {what}", c.name, c.id);
            }
            let ttl = global.config(Overrides::default())?.store.client_cache_ttl;
            eprintln!(
                "Running servers apply it within client_cache_ttl_secs ({}s); \
                 nothing issued before changes.",
                ttl.as_secs()
            );
        }
        ClientCommand::Remove { client } => {
            let c = admin.remove_client(&client).await?;
            println!("removed client {} ({})", c.name, c.id);
        }
    }
    Ok(())
}
