//! Signing keys: created, rotated and moved through their lifecycle in the store, and
//! loaded (private halves opened with the [`Sealer`]) into the ring this node signs with,
//! shared behind an `Arc` for every request (`ring`; which key signs: `signers`).

mod lifecycle;
#[cfg(test)]
mod refresh_tests;
mod ring;
mod signers;
mod unlock;

use std::time::Duration;

use tessera_token::{Algorithm, Clock, SigningKey, UnixTime};

pub use lifecycle::plan;
use ring::build_ring;
pub use ring::{KeyRing, Keys};
pub use signers::{Published, Timings};
pub use unlock::{Check, Claim, Unlocked, unlock};

use crate::Error;
use crate::secrets::Sealer;
use crate::store::{KeyState, SigningKeyRecord, Store};

/// The algorithm of the ID tokens of clients that registered none: RS256, which OpenID
/// Connect Discovery section 3 requires and relying parties assume (OpenID Connect
/// Registration section 2, `id_token_signed_response_alg`).
pub const ID_TOKEN_ALG: Algorithm = Algorithm::Rs256;

/// The algorithms the server always keeps an active key of (created at first start,
/// rotated together): the configured access-token algorithm and [`ID_TOKEN_ALG`].
pub fn required_algs(default_alg: Algorithm) -> Vec<Algorithm> {
    let mut algs = vec![default_alg];
    if default_alg != ID_TOKEN_ALG {
        algs.push(ID_TOKEN_ALG);
    }
    algs
}

/// The algorithms in use: the required ones, then that of every other active key (a
/// client's `--signing-alg` or `--id-token-alg`). Rotation and the key-age check cover
/// them all.
pub fn algs_in_use(default_alg: Algorithm, records: &[SigningKeyRecord]) -> Vec<Algorithm> {
    let mut algs = required_algs(default_alg);
    for r in records.iter().filter(|r| r.state == KeyState::Active) {
        if let Ok(a) = r.alg.parse::<Algorithm>()
            && !algs.contains(&a)
        {
            algs.push(a);
        }
    }
    algs
}

/// Generates a key off the async workers (RSA key generation takes a while).
pub async fn generate(alg: Algorithm) -> Result<SigningKey, Error> {
    tokio::task::spawn_blocking(move || SigningKey::generate(alg))
        .await
        .map_err(|e| Error::Key(format!("key generation did not finish: {e}")))?
        .map_err(Error::from)
}

/// Where a new key starts.
#[derive(Debug, Clone, Copy)]
pub struct NewKey<'a> {
    /// Its `kid`; default: the RFC 7638 thumbprint of its public JWK.
    pub kid: Option<&'a str>,
    /// Initial state.
    pub state: KeyState,
    /// When a published key may start signing.
    pub activate_after: UnixTime,
}

/// Seals and stores a key (generated or imported); returns the stored record.
pub async fn store_key(
    store: &dyn Store,
    sealer: &Sealer,
    key: SigningKey,
    new: NewKey<'_>,
    now: UnixTime,
) -> Result<SigningKeyRecord, Error> {
    let record = seal_key(sealer, key, new, now)?;
    if store.keys().await?.iter().any(|r| r.kid == record.kid) {
        return Err(Error::Conflict(format!(
            "a key with kid {} already exists",
            record.kid
        )));
    }
    store.insert_key(&record).await?;
    Ok(record)
}

/// The record of a new key: its kid chosen and checked, its private half sealed.
fn seal_key(
    sealer: &Sealer,
    key: SigningKey,
    new: NewKey<'_>,
    now: UnixTime,
) -> Result<SigningKeyRecord, Error> {
    if !key.algorithm().is_asymmetric() {
        return Err(Error::Invalid(
            "only asymmetric keys (EdDSA, ES256, RS256) can sign access tokens".into(),
        ));
    }
    let public = key
        .public_jwk()
        .ok_or_else(|| Error::Key("key has no public half".into()))?;
    let kid = match new.kid {
        Some(k) if !k.is_empty() && k.len() <= 128 && k.chars().all(|c| c.is_ascii_graphic()) => {
            k.to_owned()
        }
        Some(k) => {
            return Err(Error::Invalid(format!(
                "kid {k:?} must be 1-128 printable ASCII characters"
            )));
        }
        None => public.thumbprint()?,
    };
    let key = key.with_kid(kid.clone());
    let public = key
        .public_jwk()
        .ok_or_else(|| Error::Key("key has no public half".into()))?;
    let der = key.to_pkcs8_der()?;
    let record = SigningKeyRecord {
        kid: kid.clone(),
        alg: key.algorithm().name().to_owned(),
        state: new.state,
        public_jwk: public.to_json(),
        sealed_private: sealer.seal(&kid, &der)?,
        created_at: now,
        activate_after: new.activate_after,
        retired_at: None,
    };
    Ok(record)
}

/// Applies due lifecycle changes, makes sure an active key of each of
/// [`required_algs`]`(alg)` exists (generating it on first start), and loads the ring. Of
/// several processes starting at once, one creates each missing key; the others load it.
pub async fn load_or_create(
    store: &dyn Store,
    sealer: &Sealer,
    alg: Algorithm,
    timings: Timings,
    now: UnixTime,
) -> Result<KeyRing, Error> {
    let mut records = advance(store, sealer, now, timings).await?;
    for required in required_algs(alg) {
        if records
            .iter()
            .any(|r| r.state == KeyState::Active && r.alg == required.name())
        {
            continue;
        }
        let new = NewKey {
            kid: None,
            state: KeyState::Active,
            activate_after: now,
        };
        let record = seal_key(sealer, generate(required).await?, new, now)?;
        if store.insert_first_key(&record).await? {
            tracing::info!(kid = %record.kid, alg = required.name(), "created the first signing key of its algorithm");
        } else {
            tracing::info!(
                alg = required.name(),
                "another process created the first signing key of its algorithm"
            );
        }
        records = store.keys().await?;
    }
    // A retired key this process cannot open (sealed under another master key) cannot
    // go on signing here: the newest active key does.
    let mut previous = signers::previous_at_start(&records, &timings, now);
    previous.retain(|kid| {
        records
            .iter()
            .any(|r| r.kid == *kid && sealer.open(&r.kid, &r.sealed_private).is_ok())
    });
    let signers = signers::choose(&records, &Published::new(), &previous, &timings, now);
    build_ring(&records, &signers, sealer, alg, now)
}

/// Applies the lifecycle changes due at `now`; returns the keys afterwards. A published
/// key that `sealer` cannot open (sealed under another master key) is never activated:
/// it would retire the key that signs and leave none; it stays published, with a warning,
/// until `tessera keys remove` removes it.
pub async fn advance(
    store: &dyn Store,
    sealer: &Sealer,
    now: UnixTime,
    timings: Timings,
) -> Result<Vec<SigningKeyRecord>, Error> {
    let records = store.keys().await?;
    let (signable, sealed_elsewhere): (Vec<SigningKeyRecord>, Vec<SigningKeyRecord>) =
        records.iter().cloned().partition(|r| {
            r.state != KeyState::Published
                || r.activate_after > now
                || sealer.open(&r.kid, &r.sealed_private).is_ok()
        });
    for r in &sealed_elsewhere {
        tracing::warn!(
            kid = %r.kid,
            "published signing key cannot be opened with this master key, so it will not sign; remove it with `tessera keys remove {}`",
            r.kid
        );
    }
    let changes = lifecycle::plan(&signable, now, timings.keep_retired());
    if changes.is_empty() {
        return Ok(records);
    }
    for c in &changes {
        tracing::info!(change = ?c, "signing key lifecycle");
    }
    store.apply_key_changes(&changes, now).await?;
    Ok(store.keys().await?)
}

/// Publishes a new key of `alg` when the newest key of `alg` (active or published) was
/// created at least `period` ago; it starts signing `lead` ([`Timings::activation_lead`])
/// later. Returns the new key's `kid`. Replicas racing here may publish two keys; the
/// lifecycle activates the newest and retires the other, so that is harmless.
pub async fn rotate_if_due(
    store: &dyn Store,
    sealer: &Sealer,
    alg: Algorithm,
    period: Duration,
    lead: Duration,
    now: UnixTime,
) -> Result<Option<String>, Error> {
    let records = store.keys().await?;
    let newest = records
        .iter()
        .filter(|r| {
            r.alg == alg.name() && matches!(r.state, KeyState::Active | KeyState::Published)
        })
        .map(|r| r.created_at)
        .max();
    let due = newest.is_none_or(|created| created.saturating_add(period) <= now);
    if !due {
        return Ok(None);
    }
    let new = NewKey {
        kid: None,
        state: KeyState::Published,
        activate_after: now.saturating_add(lead),
    };
    let record = store_key(store, sealer, generate(alg).await?, new, now).await?;
    Ok(Some(record.kid))
}

/// [`rotate_if_due`] for every algorithm in use ([`algs_in_use`]); one result per
/// algorithm, so one failing does not stop the others.
pub async fn rotate_all_due(
    store: &dyn Store,
    sealer: &Sealer,
    default_alg: Algorithm,
    period: Duration,
    lead: Duration,
    now: UnixTime,
) -> Result<Vec<(Algorithm, Result<Option<String>, Error>)>, Error> {
    let algs = algs_in_use(default_alg, &store.keys().await?);
    let mut results = Vec::with_capacity(algs.len());
    for alg in algs {
        let r = rotate_if_due(store, sealer, alg, period, lead, now).await;
        results.push((alg, r));
    }
    Ok(results)
}

/// Reloads the ring when the stored keys changed (another process rotated, or the
/// lifecycle moved) or another key became this node's signer (`signers::choose`: a key
/// signs once this node has published it for a JWKS cache lifetime, whenever the store
/// activated it); returns true when it swapped.
pub async fn refresh(
    store: &dyn Store,
    sealer: &Sealer,
    keys: &Keys,
    alg: Algorithm,
    timings: Timings,
    clock: &dyn Clock,
) -> Result<bool, Error> {
    let records = advance(store, sealer, clock.now(), timings).await?;
    // Read after the store answered, so however long that took, nothing signs early.
    let now = clock.now();
    let current = keys.current();
    let published = keys.published_for(&records);
    let signers = signers::choose(&records, &published, &current.signing_kids(), &timings, now);
    let same_signers = signers
        .iter()
        .map(|r| r.kid.as_str())
        .eq(current.signing_kids());
    if same_signers && current.was_built_from(&records) {
        return Ok(false);
    }
    keys.install(build_ring(&records, &signers, sealer, alg, now)?, clock);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::max_token_life;
    use crate::store::KeyStore;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn keys_rotate_when_the_newest_reaches_the_rotation_period() {
        let store = SqliteStore::in_memory().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sealer = crate::secrets::MasterKey::load(dir.path())
            .unwrap()
            .sealer()
            .unwrap();
        let t0 = UnixTime::from_secs(1_800_000_000);
        let ttl = timings();
        let period = Duration::from_secs(86_400);
        let lead = Duration::from_secs(300);
        let first = load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, t0)
            .await
            .unwrap();
        let first = first.active().unwrap().kid().unwrap().to_owned();
        let early = t0.saturating_add(period - Duration::from_secs(1));
        let none = rotate_if_due(&store, &sealer, Algorithm::EdDsa, period, lead, early);
        assert_eq!(none.await.unwrap(), None);
        let due = t0.saturating_add(period);
        let new = rotate_if_due(&store, &sealer, Algorithm::EdDsa, period, lead, due)
            .await
            .unwrap()
            .unwrap();
        // The pending key counts as the newest: no second key while it waits.
        let again = rotate_if_due(&store, &sealer, Algorithm::EdDsa, period, lead, due);
        assert_eq!(again.await.unwrap(), None);
        // It signs after the lead time; the first key retires.
        let records = advance(&store, &sealer, due.saturating_add(lead), ttl)
            .await
            .unwrap();
        let state = |kid: &str| records.iter().find(|r| r.kid == kid).unwrap().state;
        assert_eq!(state(&new), KeyState::Active);
        assert_eq!(state(&first), KeyState::Retired);
    }

    fn sealer() -> (Sealer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let sealer = crate::secrets::MasterKey::load(dir.path())
            .unwrap()
            .sealer()
            .unwrap();
        (sealer, dir)
    }

    /// The timings of the default configuration: 300 s JWKS cache lifetime, reloads every
    /// 10 s, 600 s access tokens (660 s with the leeway).
    fn timings() -> Timings {
        Timings {
            lead: Duration::from_secs(300),
            refresh: Duration::from_secs(10),
            max_token_life: max_token_life(Duration::from_secs(600)),
        }
    }

    fn clock_at(now: UnixTime) -> tessera_token::ManualClock {
        tessera_token::ManualClock::new(now)
    }

    fn kid_of(key: Option<&SigningKey>) -> String {
        key.unwrap().kid().unwrap().to_owned()
    }

    /// Issue 14, item 10: a key published under another master key (a wrong
    /// `TESSERA_MASTER_KEY` before the key check existed) used to activate and retire the
    /// good key, leaving a server that could not sign or restart.
    #[tokio::test]
    async fn a_key_the_master_key_cannot_open_never_activates() {
        let store = SqliteStore::in_memory().await.unwrap();
        let master = |b: u8| {
            use base64::Engine;
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([b; 32]);
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("master.key"), text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let p = std::fs::Permissions::from_mode(0o600);
                std::fs::set_permissions(dir.path().join("master.key"), p).unwrap();
            }
            crate::secrets::MasterKey::load(dir.path())
                .unwrap()
                .sealer()
                .unwrap()
        };
        let (good, other) = (master(1), master(2));
        let t0 = UnixTime::from_secs(1_800_000_000);
        let ttl = timings();
        let ring = load_or_create(&store, &good, Algorithm::EdDsa, ttl, t0)
            .await
            .unwrap();
        let first = ring.active().unwrap().kid().unwrap().to_owned();
        let new = NewKey {
            kid: Some("elsewhere"),
            state: KeyState::Published,
            activate_after: t0.saturating_add(Duration::from_secs(60)),
        };
        let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
        store_key(&store, &other, key, new, t0).await.unwrap();
        let later = t0.saturating_add(Duration::from_secs(120));
        let records = advance(&store, &good, later, ttl).await.unwrap();
        let state = |kid: &str| records.iter().find(|r| r.kid == kid).unwrap().state;
        assert_eq!(state("elsewhere"), KeyState::Published);
        assert_eq!(state(&first), KeyState::Active);
        // The server keeps signing with the good key after a reload.
        let keys = Keys::new(ring);
        refresh(
            &store,
            &good,
            &keys,
            Algorithm::EdDsa,
            ttl,
            &clock_at(later),
        )
        .await
        .unwrap();
        assert_eq!(keys.current().active().unwrap().kid(), Some(first.as_str()));
    }

    #[tokio::test]
    async fn id_tokens_get_an_rs256_key_beside_the_access_token_key() {
        let store = SqliteStore::in_memory().await.unwrap();
        let (sealer, _dir) = sealer();
        let now = UnixTime::from_secs(1_800_000_000);
        let ttl = timings();
        let ring = load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, now)
            .await
            .unwrap();
        // Access tokens keep the configured algorithm; ID tokens default to RS256.
        assert_eq!(ring.active().unwrap().algorithm(), Algorithm::EdDsa);
        let id = ring.id_token_signer(None).unwrap();
        assert_eq!(id.algorithm(), Algorithm::Rs256);
        assert_eq!(ring.id_token_algorithms(), vec!["RS256", "EdDSA"]);
        // A client that registered EdDSA ID tokens gets the EdDSA key; ES256 has none.
        let ed = ring.id_token_signer(Some(Algorithm::EdDsa)).unwrap();
        assert_eq!(ed.algorithm(), Algorithm::EdDsa);
        assert!(ring.id_token_signer(Some(Algorithm::Es256)).is_none());
        // The RS256 key is in the JWKS under the kid it signs with.
        let kid = kid_of(Some(id));
        assert!(
            ring.jwks()
                .keys
                .iter()
                .any(|k| k.kid.as_deref() == Some(&kid))
        );
        // With RS256 configured for access tokens, one key serves both.
        let rs = SqliteStore::in_memory().await.unwrap();
        let ring = load_or_create(&rs, &sealer, Algorithm::Rs256, ttl, now)
            .await
            .unwrap();
        assert_eq!(rs.keys().await.unwrap().len(), 1);
        assert_eq!(kid_of(ring.active()), kid_of(ring.id_token_signer(None)));
    }

    #[tokio::test]
    async fn every_algorithm_with_an_active_key_rotates_when_due() {
        let store = SqliteStore::in_memory().await.unwrap();
        let (sealer, _dir) = sealer();
        let t0 = UnixTime::from_secs(1_800_000_000);
        let (ttl, lead) = (timings(), Duration::from_secs(300));
        let period = Duration::from_secs(86_400);
        load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, t0)
            .await
            .unwrap();
        // A client chose ES256 (access or ID tokens): the operator made it a key.
        let es = seal_key(
            &sealer,
            SigningKey::generate(Algorithm::Es256).unwrap(),
            NewKey {
                kid: Some("es-1"),
                state: KeyState::Active,
                activate_after: t0,
            },
            t0,
        )
        .unwrap();
        store.insert_key(&es).await.unwrap();
        let used = algs_in_use(Algorithm::EdDsa, &store.keys().await.unwrap());
        assert_eq!(used, [Algorithm::EdDsa, Algorithm::Rs256, Algorithm::Es256]);
        // Not yet due: nothing.
        let early = rotate_all_due(&store, &sealer, Algorithm::EdDsa, period, lead, t0)
            .await
            .unwrap();
        assert!(early.iter().all(|(_, r)| matches!(r, Ok(None))));
        // Due: one new key of each, ES256 included.
        let due = t0.saturating_add(period);
        let rotated = rotate_all_due(&store, &sealer, Algorithm::EdDsa, period, lead, due)
            .await
            .unwrap();
        let algs: Vec<Algorithm> = rotated
            .iter()
            .filter(|(_, r)| matches!(r, Ok(Some(_))))
            .map(|(a, _)| *a)
            .collect();
        assert_eq!(algs, [Algorithm::EdDsa, Algorithm::Rs256, Algorithm::Es256]);
        let es_keys = store
            .keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.alg == "ES256")
            .count();
        assert_eq!(es_keys, 2);
    }

    #[tokio::test]
    async fn a_store_from_before_rs256_id_tokens_gains_the_key_at_start() {
        let store = SqliteStore::in_memory().await.unwrap();
        let (sealer, _dir) = sealer();
        let now = UnixTime::from_secs(1_800_000_000);
        let ttl = timings();
        // Yesterday's store: one EdDSA key, nothing else.
        let old = seal_key(
            &sealer,
            SigningKey::generate(Algorithm::EdDsa).unwrap(),
            NewKey {
                kid: Some("old-ed"),
                state: KeyState::Active,
                activate_after: now,
            },
            now,
        )
        .unwrap();
        store.insert_key(&old).await.unwrap();
        let ring = load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, now)
            .await
            .unwrap();
        assert_eq!(kid_of(ring.active()), "old-ed");
        assert_eq!(
            ring.id_token_signer(None).unwrap().algorithm(),
            Algorithm::Rs256
        );
        assert_eq!(store.keys().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_rotated_rs256_key_is_published_before_it_signs_id_tokens() {
        let store = SqliteStore::in_memory().await.unwrap();
        let (sealer, _dir) = sealer();
        let t0 = UnixTime::from_secs(1_800_000_000);
        let ttl = timings();
        let period = Duration::from_secs(86_400);
        let lead = Duration::from_secs(300);
        let ring = load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, t0)
            .await
            .unwrap();
        let old = kid_of(ring.id_token_signer(None));
        let due = t0.saturating_add(period);
        let new = rotate_if_due(&store, &sealer, Algorithm::Rs256, period, lead, due)
            .await
            .unwrap()
            .unwrap();
        // Published: in the JWKS, still not signing, until this node has published it
        // for more than the lead time (whole seconds: the store activates it at `lead`).
        let keys = Keys::new(ring);
        for at in [due, due.saturating_add(lead - Duration::from_secs(1))]
            .into_iter()
            .chain([due.saturating_add(lead)])
        {
            refresh(&store, &sealer, &keys, Algorithm::EdDsa, ttl, &clock_at(at))
                .await
                .unwrap();
            let ring = keys.current();
            assert!(
                ring.jwks()
                    .keys
                    .iter()
                    .any(|k| k.kid.as_deref() == Some(&new))
            );
            assert_eq!(kid_of(ring.id_token_signer(None)), old);
        }
        let at = due.saturating_add(lead + Duration::from_secs(1));
        refresh(&store, &sealer, &keys, Algorithm::EdDsa, ttl, &clock_at(at))
            .await
            .unwrap();
        let ring = keys.current();
        assert_eq!(kid_of(ring.id_token_signer(None)), new);
        // The old RS256 key retires but stays published; the EdDSA key is untouched.
        assert!(
            ring.jwks()
                .keys
                .iter()
                .any(|k| k.kid.as_deref() == Some(&old))
        );
        assert_eq!(ring.active().unwrap().algorithm(), Algorithm::EdDsa);
    }

    #[tokio::test]
    async fn first_start_creates_one_sealed_key_per_required_algorithm() {
        let store = SqliteStore::in_memory().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sealer = crate::secrets::MasterKey::load(dir.path())
            .unwrap()
            .sealer()
            .unwrap();
        let now = UnixTime::from_secs(1_800_000_000);
        let ttl = timings();
        let ring = load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, now)
            .await
            .unwrap();
        assert_eq!(ring.active().unwrap().algorithm(), Algorithm::EdDsa);
        // One EdDSA key for access tokens, one RS256 key for ID tokens; no private part.
        assert_eq!(ring.jwks().keys.len(), 2);
        assert!(!ring.jwks().to_json().contains("\"d\""));
        let again = load_or_create(&store, &sealer, Algorithm::EdDsa, ttl, now)
            .await
            .unwrap();
        assert_eq!(again.active().unwrap().kid(), ring.active().unwrap().kid());
        assert_eq!(store.keys().await.unwrap().len(), 2, "no key twice");
        let recs = store.keys().await.unwrap();
        let recs: Vec<_> = recs.iter().filter(|r| r.alg == "EdDSA").collect();
        let der = ring.active().unwrap().to_pkcs8_der().unwrap();
        assert!(
            !recs[0]
                .sealed_private
                .windows(16)
                .any(|w| der.windows(16).any(|d| d == w))
        );
    }
}
