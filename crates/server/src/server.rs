//! Start-up: data directory, master key, store, keys, password pool, listening socket;
//! then serve until shut down.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::keys::{self, Keys};
use crate::password::Passwords;
use crate::secrets::MasterKey;
use crate::state::AppState;
use crate::store::sqlite::SqliteStore;
use crate::{Error, http};

/// A bound, ready server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<AppState>,
    store: SqliteStore,
}

impl Server {
    /// Prepares everything and binds the socket (so the address is known before serving).
    pub async fn bind(config: ServerConfig) -> Result<Self, Error> {
        prepare_data_dir(&config.data_dir)?;
        let master = MasterKey::load(&config.data_dir)?;
        let store = SqliteStore::open(&config.data_dir).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ring = keys::load_or_create(&store, &master.sealer()?, clock.now()).await?;
        let passwords = Passwords::new(config.password_hash_concurrency).await?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            Error::Io(format!(
                "cannot listen on {}: {e}; pick another address with --listen",
                config.listen
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Io(format!("cannot read the bound address: {e}")))?;
        let issuer = config.issuer_for(addr);
        let state = Arc::new(AppState::new(
            issuer,
            config,
            Arc::new(store.clone()),
            Arc::new(Keys::new(ring)),
            clock,
            passwords,
            master.refresh_key(),
        ));
        Ok(Server {
            listener,
            addr,
            state,
            store,
        })
    }

    /// The bound address (the real port when `--listen` used port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer URL in use.
    pub fn issuer(&self) -> &str {
        self.state.issuer()
    }

    /// Serves until `shutdown` completes, then drains connections and closes the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let app = http::router(Arc::clone(&self.state));
        let served = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        self.store.close().await;
        served.map_err(|e| Error::Io(format!("server failed: {e}")))
    }
}

/// Creates the data directory (mode 0700) if it does not exist.
pub fn prepare_data_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
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
    })
}
