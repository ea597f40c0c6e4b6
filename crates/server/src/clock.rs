//! Time, injected: the server uses the one [`Clock`] of `tessera-token` (shared with the
//! guard); only [`SystemClock`] reads the wall clock, so tests control time.

pub use tessera_token::{Clock, ManualClock, SystemClock};
