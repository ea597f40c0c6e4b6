//! The signing section: the algorithm of new signing keys, their rotation period, how
//! long the JWKS may be cached and how often keys are reloaded from the store.

use std::time::Duration;

use tessera_token::Algorithm;

use super::tokens::TokenConfig;
use super::{DAY, FileConfig, Problems, invalid};

/// Signing keys and their lifecycle: for `keys`, the key refresher in `server`, the JWKS
/// endpoint and `admin`.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// Algorithm of new signing keys.
    pub signing_alg: Algorithm,
    /// Automatic key rotation period; `None`: manual only.
    pub key_rotation_period: Option<Duration>,
    /// JWKS cache lifetime (and publication lead time of new keys).
    pub jwks_cache_ttl: Duration,
    /// Key reload interval.
    pub key_refresh_interval: Duration,
}

impl SigningConfig {
    /// The signing keys of `f`; the shortest rotation period depends on the lifetime of
    /// the access tokens in `tokens`.
    pub(super) fn resolve(f: &FileConfig, tokens: &TokenConfig, p: &mut Problems) -> Self {
        let signing_alg = match f.signing_alg.as_deref() {
            None => Algorithm::EdDsa,
            Some(name) => match name.parse::<Algorithm>() {
                Ok(a) if a.is_asymmetric() => a,
                _ => {
                    p.push(invalid(
                        "signing_alg",
                        format!("{name:?}"),
                        "not supported; use EdDSA, ES256 or RS256",
                    ));
                    Algorithm::EdDsa
                }
            },
        };
        let jwks_cache_ttl = p.secs("jwks_cache_ttl_secs", f.jwks_cache_ttl_secs, 300, 0, DAY);
        let key_refresh_interval = p.secs(
            "key_refresh_interval_secs",
            f.key_refresh_interval_secs,
            10,
            1,
            3600,
        );
        let rotation = f.key_rotation_period_secs.unwrap_or(90 * DAY);
        // A key activates `jwks_cache_ttl + key_refresh_interval + 1 s` after its creation
        // (`keys::Timings::activation_lead`); the next one may be due no sooner than that
        // plus the life of the tokens the previous key signed.
        let activation_lead = jwks_cache_ttl + key_refresh_interval + Duration::from_secs(1);
        let min_rotation = (activation_lead + max_token_life(tokens.access_token_ttl))
            .as_secs()
            .max(3600);
        let key_rotation_period = match rotation {
            0 => None,
            s if (min_rotation..=3650 * DAY).contains(&s) => Some(Duration::from_secs(s)),
            s => {
                p.push(invalid(
                    "key_rotation_period_secs",
                    s,
                    &format!(
                        "must be 0 (manual rotation only) or between {min_rotation} (an hour, and at least the JWKS cache lifetime plus the key refresh interval plus the token lifetime) and {}",
                        3650 * DAY
                    ),
                ));
                None
            }
        };
        SigningConfig {
            signing_alg,
            key_rotation_period,
            jwks_cache_ttl,
            key_refresh_interval,
        }
    }
}

/// The longest a token signed now stays acceptable: its lifetime plus verifier leeway
/// (a retired key stays published that long).
pub fn max_token_life(access_ttl: Duration) -> Duration {
    access_ttl + tessera_token::DEFAULT_LEEWAY
}
