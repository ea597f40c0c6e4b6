//! HTTPS with rustls (aws-lc-rs, the workspace's one crypto provider): the certificate
//! and key come from PEM files and can be swapped while the server runs (SIGHUP, or a
//! change of either file), without touching the listening socket or open connections.
//! Handshakes run in each connection's task, so a slow client never holds up `accept`,
//! and are bounded by `HANDSHAKE_TIMEOUT`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::Error;
use crate::config::TlsFiles;

/// How often the certificate and key files are checked for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);
/// Longest TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The served certificate, swappable at run time.
#[derive(Debug)]
pub struct TlsCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of (cert, key) when last loaded successfully.
    loaded: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl TlsCert {
    /// Loads the certificate chain and key; refuses a key that does not match the
    /// certificate.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let stamps = mtimes(&files);
        let key = read(&files, &provider)?;
        Ok(Arc::new(TlsCert {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
            loaded: Mutex::new(stamps),
        }))
    }

    /// Re-reads both files. On error the current certificate stays in force.
    pub fn reload(&self) -> Result<(), Error> {
        let stamps = mtimes(&self.files);
        let key = read(&self.files, &self.provider)?;
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(key),
            Err(p) => *p.into_inner() = Arc::new(key),
        }
        match self.loaded.lock() {
            Ok(mut g) => *g = stamps,
            Err(p) => *p.into_inner() = stamps,
        }
        Ok(())
    }

    /// Whether either file changed since the last successful load.
    pub fn changed(&self) -> bool {
        let now = mtimes(&self.files);
        match self.loaded.lock() {
            Ok(g) => *g != now,
            Err(p) => *p.into_inner() != now,
        }
    }

    /// The rustls server configuration resolving to this certificate (HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Internal(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Checks the files every [`WATCH_INTERVAL`] and reloads when one changed. Runs
    /// until aborted.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.changed() {
                self.reload_logged("file change");
            }
        }
    }

    /// Reloads and logs the outcome (`why`: what triggered it).
    pub fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => {
                tracing::info!(trigger = why, cert = %self.files.cert.display(), "TLS certificate reloaded")
            }
            Err(e) => {
                tracing::error!(trigger = why, error = %e, "cannot reload the TLS certificate; keeping the current one")
            }
        }
    }
}

impl ResolvesServerCert for TlsCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        })
    }
}

fn mtimes(files: &TlsFiles) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(&files.cert), m(&files.key))
}

fn read(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, Error> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Config(format!(
                "config: tls_cert = {cert_path:?} cannot be read as a PEM certificate chain: {e}"
            ))
        })?;
    if chain.is_empty() {
        return Err(Error::Config(format!(
            "config: tls_cert = {cert_path:?} holds no certificate; give the PEM chain, leaf first"
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        Error::Config(format!(
            "config: tls_key = {key_path:?} cannot be read as a PEM private key: {e}"
        ))
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        Error::Config(format!(
            "config: tls_key = {key_path:?} does not fit tls_cert = {cert_path:?}: {e}"
        ))
    })
}

/// Shakes hands on an accepted connection, within [`HANDSHAKE_TIMEOUT`]; `None` (logged
/// at debug level) when the client fails or is too slow.
pub(crate) async fn handshake<S>(
    acceptor: &TlsAcceptor,
    stream: S,
    peer: SocketAddr,
) -> Option<TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            None
        }
    }
}
