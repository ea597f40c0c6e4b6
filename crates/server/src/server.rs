//! Start-up: data directory, master key, store, keys, password pool, listening socket;
//! then serve until shut down.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::http::AppState;
use crate::keys::{self, Check, Claim, Keys};
use crate::lockfile::DirLock;
use crate::password::Passwords;
use crate::secrets::Sealer;
use crate::serving::{self, Endpoint, Limits, Phase};
use crate::store::{self, Store};
use crate::tls::TlsCert;
use crate::{Error, http, upkeep};

/// Connections the `metrics_listen` listener serves at once.
const METRICS_MAX_CONNECTIONS: usize = 16;

/// How a shutdown was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: the lame-duck phase (`shutdown_delay_secs`), then a graceful stop.
    LameDuck,
    /// Ctrl-C: a graceful stop at once.
    Now,
}

/// A bound, ready server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    state: Arc<AppState>,
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    tls: Option<Arc<TlsCert>>,
    /// The data directory's lock (SQLite), held until the server is dropped.
    _lock: Option<DirLock>,
}

impl Server {
    /// Prepares everything and binds the socket (so the address is known before serving).
    pub async fn bind(config: ServerConfig) -> Result<Self, Error> {
        if config.serving.check_transport()? {
            tracing::warn!(
                listen = %config.serving.listen,
                "DANGEROUS: serving plain HTTP on a non-loopback address (--dangerous-allow-http); passwords and tokens cross the network in clear unless a TLS-terminating proxy is in front"
            );
        }
        let tls = config.serving.tls.clone().map(TlsCert::load).transpose()?;
        // One server per SQLite directory; replicas share PostgreSQL (where the directory
        // holds only master.key, created with it when the database has no key yet).
        let lock = match config.store.database {
            None => {
                if prepare_data_dir(&config.store.data_dir)? {
                    tracing::warn!(
                        data_dir = %config.store.data_dir.display(),
                        "created a new, empty data directory: this is a new deployment (if one exists elsewhere, stop and pass its directory with --data-dir)"
                    );
                }
                Some(DirLock::acquire(&config.store.data_dir)?)
            }
            Some(_) => None,
        };
        let store = store::open(
            config.store.database.as_ref().map(|d| d.expose()),
            &config.store.data_dir,
        )
        .await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let unlocked = keys::unlock(&*store, &config.store.data_dir, clock.now(), Claim::Record);
        let master = match unlocked.await {
            Ok(unlocked) => {
                let source = &unlocked.source;
                match unlocked.check {
                    Check::Matched(at) => {
                        tracing::info!(source = %source, recorded_at = at.secs(), "master key matches the database's key check")
                    }
                    Check::Recorded | Check::Unrecorded => {
                        tracing::info!(source = %source, "no master key check in the database yet: recorded this key's")
                    }
                }
                unlocked.key
            }
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        let sealer = Arc::new(master.sealer()?);
        let ring = keys::load_or_create(
            &*store,
            &sealer,
            config.signing.signing_alg,
            keys::Timings::of(&config),
            clock.now(),
        )
        .await?;
        let passwords = Passwords::new(
            config.login.password_hash_concurrency,
            config.login.password_hash_priority,
        )
        .await?
        .with_queue(config.login.password_hash_queue);
        let metrics_token = config
            .metrics
            .metrics_token_file
            .as_deref()
            .map(http::MetricsToken::load)
            .transpose()?;
        let listener = TcpListener::bind(config.serving.listen)
            .await
            .map_err(|e| {
                Error::Io(format!(
                    "cannot listen on {}: {e}; pick another address with --listen",
                    config.serving.listen
                ))
            })?;
        let metrics_listener = match config.metrics.metrics_listen {
            None => None,
            Some(at) => Some(TcpListener::bind(at).await.map_err(|e| {
                Error::Io(format!(
                    "cannot listen on {at} (metrics_listen): {e}; pick another address"
                ))
            })?),
        };
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Io(format!("cannot read the bound address: {e}")))?;
        let issuer = config.serving.issuer_for(addr);
        // An inconsistent `passkey_rp_id` would make every passkey ceremony fail: refuse.
        crate::passkeys::relying_party(&issuer, config.login.passkey_rp_id.as_deref())
            .map_err(Error::Config)?;
        let state = Arc::new(
            AppState::new(
                issuer,
                config,
                Arc::clone(&store),
                Arc::new(Keys::new(ring)),
                clock,
                passwords,
                master.refresh_key(),
            )
            .with_metrics_token(metrics_token),
        );
        Ok(Server {
            listener,
            addr,
            metrics_listener,
            state,
            store,
            sealer,
            tls,
            _lock: lock,
        })
    }

    /// The TLS certificate, when serving HTTPS (to reload it on SIGHUP).
    pub fn tls(&self) -> Option<Arc<TlsCert>> {
        self.tls.clone()
    }

    /// The bound address (the real port when `--listen` used port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the `metrics_listen` listener, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The issuer URL in use.
    pub fn issuer(&self) -> &str {
        self.state.issuer()
    }

    /// Serves until a stop arrives on `signals` (or its sender is dropped: [`Stop::Now`]):
    /// after [`Stop::LameDuck`], `/readyz` answers 503 and every answer closes its
    /// connection while the server keeps serving for `shutdown_delay_secs` (cut short by
    /// the next stop on `signals`); then the listeners stop accepting, serve what the
    /// kernel already accepted, let requests in flight finish (at most
    /// `shutdown_timeout_secs`), and the store closes.
    pub async fn run(self, signals: mpsc::UnboundedReceiver<Stop>) -> Result<(), Error> {
        let refresher = tokio::spawn(upkeep::refresh_keys(
            Arc::clone(&self.state.core),
            Arc::clone(&self.sealer),
        ));
        let janitor = tokio::spawn(upkeep::janitor(Arc::clone(&self.state.core)));
        let upkeep = tokio::spawn(crate::metrics::upkeep());
        let watcher = self
            .tls
            .as_ref()
            .map(|t| tokio::spawn(Arc::clone(t).watch()));
        let config = &self.state.config;
        let mut app = http::router(Arc::clone(&self.state));
        if let Some(value) = hsts(config, self.state.issuer()) {
            app = app.layer(SetResponseHeaderLayer::if_not_present(
                header::STRICT_TRANSPORT_SECURITY,
                value,
            ));
        }
        let tls = match &self.tls {
            Some(cert) => Some(TlsAcceptor::from(cert.server_config()?)),
            None => None,
        };
        let metrics_connections = match self.metrics_listener {
            Some(_) => METRICS_MAX_CONNECTIONS,
            None => 0,
        };
        let max_connections = open_files_allow(
            config.serving.max_connections,
            metrics_connections,
            serving::raise_open_files(),
        );
        let main = Endpoint {
            listener: self.listener,
            app,
            tls,
            limits: Limits {
                header_read: config.serving.header_read_timeout,
                request_body: config.serving.request_timeout,
                max_connections,
                reserve: serving::PROBE_RESERVE,
                per_source: config.serving.max_connections_per_ip,
            },
            exempt: config.serving.trusted_proxies.clone(),
        };
        let metrics = self.metrics_listener.map(|listener| Endpoint {
            listener,
            app: http::metrics_router(Arc::clone(&self.state)),
            tls: None,
            limits: Limits {
                header_read: config.serving.header_read_timeout,
                request_body: config.serving.request_timeout,
                max_connections: METRICS_MAX_CONNECTIONS,
                reserve: 0,
                per_source: METRICS_MAX_CONNECTIONS,
            },
            exempt: Vec::new(),
        });
        let drain = config.serving.shutdown_timeout;
        let (phase, stop) = watch::channel(Phase::Serving);
        let signal = lame_duck(Arc::clone(&self.state), signals, phase);
        let serve_metrics = async {
            if let Some(m) = metrics {
                serving::serve(m, stop.clone(), drain).await;
            }
        };
        tokio::join!(
            signal,
            serving::serve(main, stop.clone(), drain),
            serve_metrics
        );
        refresher.abort();
        janitor.abort();
        upkeep.abort();
        if let Some(w) = watcher {
            w.abort();
        }
        self.store.close().await;
        tracing::info!("store closed");
        Ok(())
    }
}

/// `max_connections` clamped to what the open-file limit allows (with a WARN naming
/// both numbers).
fn open_files_allow(max_connections: usize, other: usize, open_files: Option<u64>) -> usize {
    let fits =
        serving::fitting_connections(max_connections, serving::PROBE_RESERVE, other, open_files);
    if fits < max_connections {
        tracing::warn!(
            max_connections,
            open_file_limit = open_files.unwrap_or(0),
            serving = fits,
            "max_connections does not fit in the open-file limit (RLIMIT_NOFILE, less the probe reserve and room for the store and files); serving {fits} connections at once. Raise the limit (ulimit -n, LimitNOFILE=) or lower max_connections"
        );
    }
    fits
}

/// Waits for a stop on `signals`; on [`Stop::LameDuck`] marks the server not ready and
/// draining and keeps serving for `shutdown_delay_secs` (or until Ctrl-C; another SIGTERM is ignored); then
/// tells the listeners to stop accepting.
async fn lame_duck(
    state: Arc<AppState>,
    mut signals: mpsc::UnboundedReceiver<Stop>,
    phase: watch::Sender<Phase>,
) {
    let how = signals.recv().await.unwrap_or(Stop::Now);
    state.start_draining();
    let delay = state.config.serving.shutdown_delay;
    if how == Stop::LameDuck && !delay.is_zero() {
        let _ = phase.send(Phase::Draining);
        tracing::info!(
            delay_secs = delay.as_secs(),
            "shutting down: /readyz answers 503; still serving for shutdown_delay_secs (Ctrl-C stops at once)"
        );
        // Only Ctrl-C ends the delay early: a second SIGTERM is usually a duplicate (a
        // preStop hook's kill and the kubelet's own), and must not cut the delay short.
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                again = signals.recv() => match again {
                    Some(Stop::LameDuck) => {
                        tracing::info!("another SIGTERM during the shutdown delay: ignored (Ctrl-C ends the delay)");
                    }
                    Some(Stop::Now) => {
                        tracing::info!("SIGINT: ending the shutdown delay now");
                        break;
                    }
                    // Every sender gone: no signal can end the delay early any more.
                    None => {
                        sleep.as_mut().await;
                        break;
                    }
                },
            }
        }
    }
    tracing::info!(
        drain_secs = state.config.serving.shutdown_timeout.as_secs(),
        "shutting down: not accepting connections; finishing requests in flight"
    );
    let _ = phase.send(Phase::Stopped);
}

/// The `Strict-Transport-Security` value, when the server is reached over HTTPS (its own
/// TLS, or an https issuer behind a TLS-terminating proxy) and `hsts_max_age_secs` > 0.
fn hsts(config: &ServerConfig, issuer: &str) -> Option<HeaderValue> {
    let https = config.serving.tls.is_some() || issuer.starts_with("https://");
    let age = config.browser.hsts_max_age.as_secs();
    if !https || age == 0 {
        return None;
    }
    HeaderValue::from_str(&format!("max-age={age}")).ok()
}

/// Creates the data directory (mode 0700) if it does not exist; true when it was created.
pub fn prepare_data_dir(dir: &Path) -> Result<bool, Error> {
    if dir.is_dir() {
        return Ok(false);
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        Error::Io(format!(
            "cannot create data directory {}: {e}; choose another with --data-dir",
            dir.display()
        ))
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides};

    fn config(text: &str) -> ServerConfig {
        ServerConfig::resolve(
            toml::from_str::<FileConfig>(text).unwrap(),
            Overrides::default(),
        )
        .unwrap()
    }

    #[test]
    fn hsts_only_when_clients_reach_the_server_over_https() {
        let plain = config("");
        assert_eq!(hsts(&plain, "http://127.0.0.1:8080"), None);
        // TLS terminated by a proxy in front: the https issuer says browsers use https.
        let sent = hsts(&plain, "https://auth.example.com").unwrap();
        assert_eq!(sent, "max-age=31536000");
        let tls = config("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nhsts_max_age_secs = 600");
        assert_eq!(hsts(&tls, "https://127.0.0.1:8443").unwrap(), "max-age=600");
        let off = config("hsts_max_age_secs = 0");
        assert_eq!(hsts(&off, "https://auth.example.com"), None);
    }
}
