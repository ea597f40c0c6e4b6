//! `tessera serve`: run the authorization server until Ctrl-C or SIGTERM (graceful:
//! requests in flight finish; SIGTERM first answers /readyz with 503 for
//! `shutdown_delay_secs` while still serving, which Ctrl-C or a second SIGTERM cuts
//! short); SIGHUP reloads the TLS certificate.

use clap::Args;
use tessera_server::{Overrides, Server, Stop};
use tokio::sync::mpsc;

use crate::cmd::Global;
use crate::exit::CliError;
use crate::logging::{self, LogFormat};

/// Options of `tessera serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed)
    /// [env: TESSERA_LISTEN].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Issuer URL (`iss` of every token); default http://LISTEN-ADDRESS. Must be https
    /// unless the host is loopback [env: TESSERA_ISSUER].
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key the server speaks HTTPS.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<std::path::PathBuf>,
    /// DANGEROUS: serve plain HTTP on a non-loopback address (only behind a
    /// TLS-terminating proxy on a trusted network).
    #[arg(long)]
    dangerous_allow_http: bool,
    /// Log line format on stderr: text, or json (one object per line). The level comes
    /// from TESSERA_LOG (e.g. info, debug, trace).
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

pub(crate) async fn run(global: &Global, args: ServeArgs) -> Result<(), CliError> {
    logging::init(args.log_format);
    for warning in crate::cmd::env_warnings() {
        tracing::warn!("{warning}");
    }
    let config = global.config_unwarned(Overrides {
        data_dir: None,
        database: None,
        listen: args.listen,
        issuer: args.issuer,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        dangerous_allow_http: args.dangerous_allow_http,
    })?;
    let data_dir = config.store.data_dir.clone();
    let store = match &config.store.database {
        Some(url) => format!("postgres {url}"),
        None => "sqlite".to_owned(),
    };
    let scheme = if config.serving.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let server = Server::bind(config).await?;
    // Installed before the address is announced: a signal sent as soon as the server
    // is up must stop it gracefully, not kill it.
    let signals = shutdown_signals();
    eprintln!("listening on {scheme}://{}", server.local_addr());
    eprintln!("issuer {}", server.issuer());
    if let Some(addr) = server.metrics_addr() {
        eprintln!("metrics on http://{addr}/metrics");
    }
    tracing::info!(addr = %server.local_addr(), issuer = server.issuer(), data_dir = %data_dir.display(), store = %store, "tessera started");
    let reloader = tokio::spawn(reload_on_hangup(server.tls()));
    server.run(signals).await?;
    reloader.abort();
    tracing::info!("tessera stopped");
    Ok(())
}

/// SIGHUP re-reads the TLS certificate and key (and otherwise only logs, instead of the
/// default action of terminating the process).
async fn reload_on_hangup(tls: Option<std::sync::Arc<tessera_server::tls::TlsCert>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match &tls {
                Some(cert) => cert.reload_logged("SIGHUP"),
                None => tracing::info!("SIGHUP: no TLS certificate to reload"),
            }
        }
    }
    #[cfg(not(unix))]
    drop(tls);
}

/// Ctrl-C ([`Stop::Now`]) and SIGTERM ([`Stop::LameDuck`]), each as it arrives, for as
/// long as the server runs: a later one ends the shutdown delay.
fn shutdown_signals() -> mpsc::UnboundedReceiver<Stop> {
    let (tx, rx) = mpsc::unbounded_channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt()).ok();
        let term = signal(SignalKind::terminate()).ok();
        tokio::spawn(forward_signals(tx, int, term));
    }
    #[cfg(not(unix))]
    tokio::spawn(forward_signals(tx));
    rx
}

#[cfg(unix)]
async fn forward_signals(
    tx: mpsc::UnboundedSender<Stop>,
    mut int: Option<tokio::signal::unix::Signal>,
    mut term: Option<tokio::signal::unix::Signal>,
) {
    use tokio::signal::unix::Signal;
    /// The next delivery of `s`; never, if it could not be installed.
    async fn next(s: &mut Option<Signal>) {
        let delivered = match s {
            Some(s) => s.recv().await.is_some(),
            None => false,
        };
        if !delivered {
            std::future::pending::<()>().await;
        }
    }
    loop {
        let stop = tokio::select! {
            () = next(&mut int) => Stop::Now,
            () = next(&mut term) => Stop::LameDuck,
        };
        if tx.send(stop).is_err() {
            return;
        }
    }
}

#[cfg(not(unix))]
async fn forward_signals(tx: mpsc::UnboundedSender<Stop>) {
    while tokio::signal::ctrl_c().await.is_ok() {
        if tx.send(Stop::Now).is_err() {
            return;
        }
    }
    // Ctrl-C cannot be watched: never stop by signal (keep the sender).
    std::future::pending::<()>().await;
}
