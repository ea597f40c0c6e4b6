//! What a running server does in the background: refreshes and rotates its signing keys
//! every `key_refresh_interval`, and purges expired rows every hour.

use std::sync::Arc;

use crate::keys;
use crate::secrets::Sealer;
use crate::state::Core;
use crate::store;

/// Every `key_refresh_interval`: applies the key lifecycle and picks up keys rotated or
/// imported by the CLI. Failures are logged; the current ring stays in force.
pub(crate) async fn refresh_keys(core: Arc<Core>, sealer: Arc<Sealer>) {
    let mut tick = tokio::time::interval(core.config.signing.key_refresh_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Some(period) = core.config.signing.key_rotation_period {
            // Every algorithm with an active key rotates alike: the access-token key,
            // the ID-token (RS256) key and those clients chose.
            let rotated = keys::rotate_all_due(
                &*core.store,
                &sealer,
                core.config.signing.signing_alg,
                period,
                keys::Timings::of(&core.config).activation_lead(),
                core.clock.now(),
            )
            .await;
            match rotated {
                Ok(results) => {
                    for (alg, r) in results {
                        match r {
                            Ok(Some(kid)) => {
                                tracing::info!(kid = %kid, alg = alg.name(), "signing key rotation period reached; published a new key")
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::error!(error = %e, alg = alg.name(), "cannot publish the next signing key; will retry")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the signing keys to rotate them; will retry")
                }
            }
        }
        let result = keys::refresh(
            &*core.store,
            &sealer,
            &core.keys,
            core.config.signing.signing_alg,
            keys::Timings::of(&core.config),
            &*core.clock,
        )
        .await;
        match result {
            Ok(true) => tracing::info!("signing keys reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot reload signing keys; keeping the current ones")
            }
        }
    }
}

/// How often the janitor runs.
const JANITOR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
/// How long revoked grants are kept (for `sessions list` and audits) before purging.
const KEEP_REVOKED: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Hourly (and once at start): purges expired feed entries, refresh tokens, grants, codes,
/// sessions and throttle counters, and audit events past `audit_retention_days`, so tables
/// do not grow without bound. The deletes go in batches of [`store::PURGE_BATCH`] rows.
pub(crate) async fn janitor(core: Arc<Core>) {
    let mut tick = tokio::time::interval(JANITOR_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = core.clock.now();
        let purge = store::Purge {
            now,
            revoked_before: now.saturating_sub(KEEP_REVOKED),
            audit_before: now.saturating_sub(core.config.store.audit_retention),
            batch: store::PURGE_BATCH,
        };
        match core.store.purge_expired(&purge).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "janitor purged expired rows"),
            Err(e) => tracing::warn!(error = %e, "janitor failed; will retry"),
        }
    }
}
