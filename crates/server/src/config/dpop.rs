//! The dpop section: what the token endpoint asks of a DPoP proof (RFC 9449): how far its
//! `iat` may be from now, the clock leeway, and whether it must carry a server nonce.

use std::time::Duration;

use super::{FileConfig, Problems};

/// DPoP proofs at the token endpoint: for the `dpop` domain module.
#[derive(Debug, Clone)]
pub struct DpopConfig {
    /// How far a proof's `iat` may be from now, on either side (before the leeway).
    pub proof_window: Duration,
    /// Allowance for the client's clock, added to the window.
    pub leeway: Duration,
    /// Every proof must carry a nonce this server (or a replica) handed out
    /// (RFC 9449 section 8); otherwise `use_dpop_nonce` with a fresh `DPoP-Nonce`.
    pub require_nonce: bool,
}

impl DpopConfig {
    /// The DPoP keys of `f`.
    pub(super) fn resolve(f: &FileConfig, p: &mut Problems) -> Self {
        DpopConfig {
            proof_window: p.secs(
                "dpop_proof_window_secs",
                f.dpop_proof_window_secs,
                60,
                1,
                300,
            ),
            leeway: p.secs("dpop_leeway_secs", f.dpop_leeway_secs, 5, 0, 60),
            require_nonce: f.dpop_require_nonce.unwrap_or(false),
        }
    }
}
