//! A [`Core`] for unit tests of the domain: in-memory SQLite, a manual clock at a fixed
//! time, the default configuration, and fresh keys. No router, no sockets.

use std::sync::Arc;

use tessera_token::UnixTime;

use crate::clock::{Clock, ManualClock};
use crate::config::{FileConfig, Overrides, ServerConfig};
use crate::keys::{self, Keys};
use crate::password::{HashPriority, Passwords};
use crate::secrets::MasterKey;
use crate::state::Core;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// The time the test clock starts at.
pub(crate) const START: i64 = 1_800_000_000;

/// A core over an in-memory SQLite store; keep the directory (it holds the master key)
/// alive as long as the core.
pub(crate) async fn core() -> (Core, tempfile::TempDir, Arc<ManualClock>) {
    core_over(Arc::new(SqliteStore::in_memory().await.unwrap())).await
}

/// A core over `store`, with a manual clock and the default configuration.
pub(crate) async fn core_over(
    store: Arc<dyn Store>,
) -> (Core, tempfile::TempDir, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::load(dir.path()).unwrap();
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(START)));
    let config = ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
    let ring = keys::load_or_create(
        &*store,
        &master.sealer().unwrap(),
        config.signing.signing_alg,
        keys::Timings::of(&config),
        clock.now(),
    )
    .await
    .unwrap();
    let core = Core::new(
        "http://127.0.0.1:8080".into(),
        config,
        store,
        Arc::new(Keys::new(ring)),
        Arc::clone(&clock) as Arc<dyn Clock>,
        Passwords::new(1, HashPriority::Idle).await.unwrap(),
        master.refresh_key(),
    );
    (core, dir, clock)
}
