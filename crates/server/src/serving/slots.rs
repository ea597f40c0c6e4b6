//! Connection slots: `max_connections` full ones, the probe reserve, the per-source and
//! per-prefix caps, and how many connections fit in the open-file limit.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

use super::sources::{Held, Over, Sources};
use super::{Limits, WARN_EVERY};

/// File descriptors kept for everything but connections: the store's pool, the
/// listeners, the lock and key files, logs.
const FD_MARGIN: u64 = 64;

/// The connection slots: `max_connections` full ones and the probe reserve, and the
/// count by source. A connection holds its permit until it closes.
pub(super) struct Slots {
    pub(super) full: Arc<Semaphore>,
    pub(super) probe: Arc<Semaphore>,
    pub(super) sources: Sources,
    pub(super) limits: Limits,
    pub(super) refused_warning: Warning,
}

/// An admitted connection's place, given back when it closes.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    _source: Held,
    /// A reserve slot: the health probes only.
    pub(super) probe_only: bool,
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// `max_connections` and the probe reserve are all taken.
    Full,
    /// Its source already holds `max_connections_per_ip`.
    PerSource,
    /// Its prefix (IPv4 /24, IPv6 /48) already holds four times `max_connections_per_ip`.
    PerPrefix,
}

impl Refused {
    pub(super) fn label(self) -> &'static str {
        match self {
            Refused::Full => "max_connections",
            Refused::PerSource | Refused::PerPrefix => "max_connections_per_ip",
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Refused::Full => "max_connections and the probe reserve are all in use",
            Refused::PerSource => {
                "a source holds max_connections_per_ip connections (if a proxy is in front, set trusted_proxies)"
            }
            Refused::PerPrefix => {
                "a /24 or /48 prefix holds 4 x max_connections_per_ip connections (if a proxy is in front, set trusted_proxies)"
            }
        }
    }
}

impl Slots {
    pub(super) fn new(limits: Limits, exempt: Vec<IpNet>) -> Self {
        Slots {
            full: Arc::new(Semaphore::new(limits.max_connections)),
            probe: Arc::new(Semaphore::new(limits.reserve)),
            sources: Sources::new(limits.per_source, exempt),
            limits,
            refused_warning: Warning::default(),
        }
    }

    pub(super) fn take(&self, peer: SocketAddr) -> Result<Slot, Refused> {
        let source = self.sources.take(peer.ip()).map_err(|over| match over {
            Over::Source => Refused::PerSource,
            Over::Prefix => Refused::PerPrefix,
        })?;
        match Arc::clone(&self.full).try_acquire_owned() {
            Ok(p) => Ok(Slot {
                _permit: p,
                _source: source,
                probe_only: false,
            }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Arc::clone(&self.probe)
                .try_acquire_owned()
                .map(|p| Slot {
                    _permit: p,
                    _source: source,
                    probe_only: true,
                })
                .map_err(|_| Refused::Full),
        }
    }

    /// Waits (at most `within`) until every connection has closed.
    pub(super) async fn all_closed(&self, within: Duration) -> bool {
        // The limits are at most `config::MAX_MAX_CONNECTIONS` plus the reserve.
        let full = u32::try_from(self.limits.max_connections).unwrap_or(u32::MAX);
        let probe = u32::try_from(self.limits.reserve).unwrap_or(u32::MAX);
        tokio::time::timeout(within, async {
            let _a = self.full.acquire_many(full).await;
            let _b = self.probe.acquire_many(probe).await;
        })
        .await
        .is_ok()
    }
}

/// A WARN logged at most once per [`WARN_EVERY`].
#[derive(Default)]
pub(super) struct Warning {
    last: Mutex<Option<Instant>>,
}

impl Warning {
    /// Whether to log now (and if so, not again for [`WARN_EVERY`]).
    pub(super) fn due(&self) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match *last {
            Some(at) if now.duration_since(at) < WARN_EVERY => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

/// Raises the soft limit on open files to the hard limit and returns the result (`None`:
/// unlimited or unknown).
pub(crate) fn raise_open_files() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = raised,
            Err(e) => tracing::debug!(error = %e, "cannot raise the open-file limit"),
        }
    }
    limit.current
}

/// The `max_connections` that fits in `open_files` descriptors besides the probe reserve,
/// `other` connections (the metrics listener's) and [`FD_MARGIN`]; at least 1.
pub(crate) fn fitting_connections(
    max_connections: usize,
    reserve: usize,
    other: usize,
    open_files: Option<u64>,
) -> usize {
    let Some(files) = open_files else {
        return max_connections;
    };
    let taken = FD_MARGIN
        .saturating_add(reserve as u64)
        .saturating_add(other as u64);
    let room = usize::try_from(files.saturating_sub(taken)).unwrap_or(usize::MAX);
    max_connections.min(room).max(1)
}
