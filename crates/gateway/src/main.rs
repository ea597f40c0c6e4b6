//! `tessera-gateway`: reads its TOML file, builds the gateway and serves it in the
//! configured mode until SIGTERM or Ctrl-C. Exit codes: 0 stopped cleanly (or `--check`
//! passed), 1 could not start or serve (a missing secret, a wrong issuer, the address
//! taken), 2 a bad command line or configuration file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tessera_gateway::config::{DefaultRoute, Mode};
use tessera_gateway::serve::{self, Limits};
use tessera_gateway::{GatewayConfig, forward_auth, proxy, startup};

/// Tessera's guard in front of any HTTP API: answers the authorization sub-requests of
/// nginx (auth_request), Traefik (ForwardAuth) or Envoy (ext_authz), or proxies to the
/// API itself. Every request is checked against the issuer's keys, the route table's
/// scopes and DPoP rules, and the issuer's revocation feed.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Configuration reference and proxy snippets: docs/gateway.md.\n\
                  Logs go to stderr; RUST_LOG sets the level (default info).\n\
                  Exit codes: 0 ok, 1 cannot start or serve, 2 bad arguments or configuration."
)]
struct Args {
    /// The gateway's configuration file (TOML; see docs/gateway.md).
    #[arg(long, short, env = "TESSERA_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Check the configuration file, print what it sets up (never a secret) and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match GatewayConfig::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tessera-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = startup::offline_parts(&config) {
        eprintln!("tessera-gateway: {}: {e}", args.config.display());
        return ExitCode::from(2);
    }
    if let Some(p) = &config.proxy
        && let Err(e) = proxy::check_upstream(&p.upstream)
    {
        eprintln!("tessera-gateway: {}: {e}", args.config.display());
        return ExitCode::from(2);
    }
    if args.check {
        print!("{}", summary(&args.config.display().to_string(), &config));
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tessera-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: GatewayConfig) -> Result<(), Box<dyn std::error::Error>> {
    let router = match (config.mode, &config.forward_auth) {
        (Mode::ForwardAuth, Some(fa)) => {
            let gateway = Arc::new(startup::gateway_from_config(&config).await?);
            forward_auth::router(gateway, fa)
        }
        (Mode::ForwardAuth, None) => return Err("[forward_auth] is missing".into()),
        (Mode::Proxy, _) => {
            let gateway = Arc::new(startup::gateway_from_config(&config).await?);
            proxy::router(gateway, &config)?
        }
    };
    let stop = stop_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(listen = %addr, mode = ?config.mode, issuer = %config.issuer, "tessera-gateway up");
    eprintln!("listening on http://{addr}");
    serve::run_with(router, listener, Limits::from_config(&config.serving), stop).await?;
    tracing::info!("tessera-gateway stopped");
    Ok(())
}

/// A future completing on SIGTERM or Ctrl-C (SIGINT). The handlers are installed now,
/// before the gateway says it is listening, so a signal sent right after that line stops
/// it cleanly instead of killing it.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping: finishing running requests");
    })
}

/// A future completing on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping: finishing running requests");
    })
}

/// What `--check` prints: the settings that decide who gets in, never a secret (the
/// revocation secret is only named by its variable, with whether it is set).
fn summary(path: &str, c: &GatewayConfig) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{path}: ok");
    let _ = writeln!(out, "  listen          {}", c.listen);
    let mode = match (&c.mode, &c.forward_auth) {
        (Mode::ForwardAuth, Some(fa)) => {
            format!("forward_auth behind {:?}", fa.proxy).to_lowercase()
        }
        (Mode::ForwardAuth, None) => "forward_auth".into(),
        (Mode::Proxy, _) => format!(
            "proxy to {}",
            c.proxy.as_ref().map_or("?", |p| p.upstream.as_str())
        ),
    };
    let _ = writeln!(out, "  mode            {mode}");
    if let (Mode::Proxy, Some(p)) = (&c.mode, &c.proxy) {
        let body = p.max_body_bytes.map_or("no body limit".to_owned(), |n| {
            format!("bodies over {n} bytes 413")
        });
        let forwarded = if p.trust_forwarded {
            "X-Forwarded-* from the client kept (trust_forwarded)"
        } else {
            "X-Forwarded-* from the client replaced"
        };
        let _ = writeln!(
            out,
            "  upstream        connect timeout {} s, response timeout {} s, {body}; {forwarded}",
            p.connect_timeout_secs, p.response_timeout_secs
        );
        let upgrades = if p.upgrades.is_empty() {
            "none passed".to_owned()
        } else {
            format!(
                "{} (GET only); at most {} tunnels, closed after {} s idle or {} s (or the token's exp)",
                p.upgrades.join(", "),
                p.max_tunnels,
                p.tunnel_idle_timeout_secs,
                p.tunnel_max_lifetime_secs
            )
        };
        let _ = writeln!(out, "  upgrades        {upgrades}");
        let _ = writeln!(
            out,
            "  own paths       {}, {}{}",
            proxy::HEALTHZ_PATH,
            proxy::READYZ_PATH,
            if c.identity.jwt {
                format!(", {}", tessera_gateway::identity_jwt::JWKS_PATH)
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(out, "  issuer          {}", c.issuer);
    let _ = writeln!(out, "  audience        {}", c.audience);
    let _ = writeln!(
        out,
        "  public URL      {}",
        c.public_base_url
            .as_deref()
            .unwrap_or("(not set: DPoP htu from the forwarded Host; no RFC 9728 metadata)")
    );
    match &c.revocation {
        Some(r) => {
            let set = if std::env::var_os(&r.client_secret_env).is_some() {
                "set"
            } else {
                "NOT SET"
            };
            let _ = writeln!(
                out,
                "  revocation      feed as client {}, secret from ${} ({set}); {}",
                r.client_id,
                r.client_secret_env,
                match r.max_staleness() {
                    Some(d) => format!("503 if out of reach over {} s", d.as_secs()),
                    None => "no staleness limit (max_staleness_secs = 0)".to_owned(),
                }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  revocation      none: revoked tokens pass until they expire"
            );
        }
    }
    let _ = writeln!(out, "  routes (first match wins):");
    for r in &c.routes {
        let methods = if r.methods.is_empty() {
            "*".to_owned()
        } else {
            r.methods.join(",")
        };
        let needs = if r.public {
            "public".to_owned()
        } else {
            let scopes = if r.scopes.is_empty() {
                "any valid token".to_owned()
            } else {
                format!("scopes {}", r.scopes.join(" "))
            };
            match r.dpop {
                tessera_gateway::config::DpopRule::Require => format!("{scopes}, DPoP required"),
                tessera_gateway::config::DpopRule::Allow => scopes,
            }
        };
        let _ = writeln!(out, "    {methods:<12} {:<24} {needs}", r.path);
    }
    let default = match c.default {
        DefaultRoute::Deny => "deny (403)",
        DefaultRoute::Authenticated => "any valid token",
    };
    let _ = writeln!(out, "    {:<12} {:<24} {default}", "*", "(no match)");
    let claims = if c.identity.claims.is_empty() {
        String::new()
    } else {
        format!(", claims {}", c.identity.claims.join(" "))
    };
    let _ = writeln!(
        out,
        "  identity        headers {}Subject/-Scope/-Client-Id{claims}; token forwarded: {}",
        c.identity.header_prefix, c.identity.forward_token
    );
    if c.identity.jwt {
        let key = match &c.identity.jwt_key_file {
            Some(path) => format!("key {}", path.display()),
            None => "ES256 key generated at start".to_owned(),
        };
        let _ = writeln!(
            out,
            "  identity JWT    {}Identity, {} s, {key}",
            c.identity.header_prefix, c.identity.jwt_ttl_secs
        );
    }
    out
}
