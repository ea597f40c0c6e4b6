//! The signing-key lifecycle as a pure function of the stored keys and the time:
//! published → active (once `activate_after` has passed: at least one JWKS cache lifetime
//! after publication) → retired (when a newer key of its algorithm activates) → deleted
//! (when the last token it signed has expired, counting the grace in which a node that
//! has not yet published the new key long enough still signs with it).

use std::time::Duration;

use tessera_token::UnixTime;

use crate::store::{KeyChange, KeyState, SigningKeyRecord};

/// The changes due at `now`. A retired key is deleted `keep_retired` after it retired:
/// [`Timings::keep_retired`](super::Timings::keep_retired), the grace in which a node may
/// still sign with it plus the longest a signed token stays valid.
pub fn plan(records: &[SigningKeyRecord], now: UnixTime, keep_retired: Duration) -> Vec<KeyChange> {
    let mut changes = Vec::new();
    let mut algs: Vec<&str> = records.iter().map(|r| r.alg.as_str()).collect();
    algs.sort_unstable();
    algs.dedup();
    for alg in algs {
        let due = records
            .iter()
            .filter(|r| r.alg == alg && r.state == KeyState::Published && r.activate_after <= now)
            .max_by_key(|r| (r.activate_after, r.created_at));
        let Some(newest) = due else { continue };
        changes.push(KeyChange::Activate(newest.kid.clone()));
        for r in records
            .iter()
            .filter(|r| r.alg == alg && r.kid != newest.kid)
        {
            let older_due = r.state == KeyState::Published && r.activate_after <= now;
            if r.state == KeyState::Active || older_due {
                changes.push(KeyChange::Retire(r.kid.clone()));
            }
        }
    }
    for r in records.iter().filter(|r| r.state == KeyState::Retired) {
        if let Some(at) = r.retired_at
            && at.saturating_add(keep_retired) <= now
        {
            changes.push(KeyChange::Delete(r.kid.clone()));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(
        kid: &str,
        alg: &str,
        state: KeyState,
        activate_after: i64,
        retired_at: Option<i64>,
    ) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            alg: alg.into(),
            state,
            public_jwk: String::new(),
            sealed_private: Vec::new(),
            created_at: UnixTime::from_secs(activate_after),
            activate_after: UnixTime::from_secs(activate_after),
            retired_at: retired_at.map(UnixTime::from_secs),
        }
    }

    const LIFE: Duration = Duration::from_secs(630);

    #[test]
    fn published_key_activates_after_its_time_and_retires_the_old_one() {
        let keys = [
            key("old", "EdDSA", KeyState::Active, 0, None),
            key("new", "EdDSA", KeyState::Published, 300, None),
        ];
        assert!(plan(&keys, UnixTime::from_secs(299), LIFE).is_empty());
        assert_eq!(
            plan(&keys, UnixTime::from_secs(300), LIFE),
            vec![
                KeyChange::Activate("new".into()),
                KeyChange::Retire("old".into())
            ]
        );
    }

    #[test]
    fn the_id_token_key_rotates_on_its_own_schedule_and_publishes_first() {
        // EdDSA signs access tokens, RS256 ID tokens; a new RS256 key waits its lead time.
        let keys = [
            key("ed", "EdDSA", KeyState::Active, 0, None),
            key("rs-old", "RS256", KeyState::Active, 0, None),
            key("rs-new", "RS256", KeyState::Published, 300, None),
        ];
        assert!(plan(&keys, UnixTime::from_secs(299), LIFE).is_empty());
        assert_eq!(
            plan(&keys, UnixTime::from_secs(300), LIFE),
            vec![
                KeyChange::Activate("rs-new".into()),
                KeyChange::Retire("rs-old".into())
            ]
        );
        // Rotating both at once moves each pair, never one algorithm's key for another's.
        let both = [
            key("ed", "EdDSA", KeyState::Active, 0, None),
            key("ed-new", "EdDSA", KeyState::Published, 300, None),
            key("rs", "RS256", KeyState::Active, 0, None),
            key("rs-new", "RS256", KeyState::Published, 300, None),
        ];
        let changes = plan(&both, UnixTime::from_secs(300), LIFE);
        assert_eq!(changes.len(), 4, "{changes:?}");
        for c in [
            KeyChange::Activate("ed-new".into()),
            KeyChange::Retire("ed".into()),
            KeyChange::Activate("rs-new".into()),
            KeyChange::Retire("rs".into()),
        ] {
            assert!(changes.contains(&c), "{changes:?}");
        }
    }

    #[test]
    fn other_algorithms_are_independent_and_retired_keys_expire() {
        let keys = [
            key("ed", "EdDSA", KeyState::Active, 0, None),
            key("es", "ES256", KeyState::Published, 10, None),
            key("gone", "EdDSA", KeyState::Retired, 0, Some(100)),
        ];
        assert_eq!(
            plan(&keys, UnixTime::from_secs(20), LIFE),
            vec![KeyChange::Activate("es".into())]
        );
        let later = plan(&keys, UnixTime::from_secs(730), LIFE);
        assert!(later.contains(&KeyChange::Delete("gone".into())));
        assert!(!later.contains(&KeyChange::Retire("ed".into())));
    }
}
