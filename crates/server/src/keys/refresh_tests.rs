//! A node signs with a new key only after it has itself published the key for a JWKS
//! cache lifetime, however late it learnt of it; the store keeps a retired key as long
//! as a node may still sign with it, plus the life of its tokens. A manual clock, no
//! sleeping.

use std::time::Duration;

use tessera_token::{Algorithm, ManualClock, SigningKey, UnixTime};

use super::*;
use crate::store::KeyStore;
use crate::store::sqlite::SqliteStore;

const T0: UnixTime = UnixTime::from_secs(1_800_000_000);
const PERIOD: Duration = Duration::from_secs(86_400);
const LEAD: Duration = Duration::from_secs(300);

fn timings() -> Timings {
    Timings {
        lead: LEAD,
        refresh: Duration::from_secs(10),
        max_token_life: Duration::from_secs(660),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A node: its keys, and the clock its reloads read.
struct Node {
    keys: Keys,
    clock: ManualClock,
}

impl Node {
    async fn start(store: &SqliteStore, sealer: &Sealer, at: UnixTime) -> Node {
        let ring = load_or_create(store, sealer, Algorithm::EdDsa, timings(), at)
            .await
            .unwrap();
        Node {
            keys: Keys::new(ring),
            clock: ManualClock::new(at),
        }
    }

    /// Reloads at `at`; true when the ring was swapped.
    async fn refresh_at(&self, store: &SqliteStore, sealer: &Sealer, at: UnixTime) -> bool {
        self.clock.set(at);
        let alg = Algorithm::EdDsa;
        refresh(store, sealer, &self.keys, alg, timings(), &self.clock)
            .await
            .unwrap()
    }

    /// The kids signing access tokens (EdDSA) and ID tokens (RS256).
    fn signers(&self) -> (String, String) {
        let ring = self.keys.current();
        (kid(ring.active()), kid(ring.id_token_signer(None)))
    }

    fn publishes(&self, kid: &str) -> bool {
        let ring = self.keys.current();
        ring.jwks()
            .keys
            .iter()
            .any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn kid(key: Option<&SigningKey>) -> String {
    key.unwrap().kid().unwrap().to_owned()
}

fn sealer() -> (Sealer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sealer = crate::secrets::MasterKey::load(dir.path())
        .unwrap()
        .sealer()
        .unwrap();
    (sealer, dir)
}

/// Publishes a new EdDSA and a new RS256 key at `at` (as `tessera keys rotate` does);
/// returns their kids.
async fn rotate_both(store: &SqliteStore, sealer: &Sealer, at: UnixTime) -> (String, String) {
    let mut new = Vec::new();
    for alg in [Algorithm::EdDsa, Algorithm::Rs256] {
        let kid = rotate_if_due(store, sealer, alg, PERIOD, LEAD, at).await;
        new.push(kid.unwrap().unwrap());
    }
    (new[0].clone(), new[1].clone())
}

async fn state_of(store: &SqliteStore, kid: &str) -> Option<KeyState> {
    let records = store.keys().await.unwrap();
    records.iter().find(|r| r.kid == kid).map(|r| r.state)
}

#[tokio::test]
async fn a_node_that_first_sees_a_key_already_active_signs_with_it_only_a_lead_later() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (sealer, _dir) = sealer();
    let node = Node::start(&store, &sealer, T0).await;
    let old = node.signers();
    let due = T0.saturating_add(PERIOD);
    let new = rotate_both(&store, &sealer, due).await;
    // Its reloads stalled: it first reloads when both new keys are active and the old
    // ones retired (it applies that change itself).
    let late = due.saturating_add(LEAD + secs(5));
    assert!(node.refresh_at(&store, &sealer, late).await);
    assert_eq!(state_of(&store, &new.0).await, Some(KeyState::Active));
    assert_eq!(state_of(&store, &old.0).await, Some(KeyState::Retired));
    assert!(node.publishes(&new.0) && node.publishes(&new.1));
    // A relying party that fetched this node's JWKS just before knows neither new kid:
    // the node keeps signing with the retired keys while such a JWKS may be cached.
    assert_eq!(node.signers(), old);
    for at in [late.saturating_add(secs(1)), late.saturating_add(LEAD)] {
        assert!(!node.refresh_at(&store, &sealer, at).await, "nothing moved");
        assert_eq!(node.signers(), old);
    }
    // The store did not change, yet the ring is rebuilt: the new keys sign now.
    let after = late.saturating_add(LEAD + secs(1));
    assert!(node.refresh_at(&store, &sealer, after).await);
    assert_eq!(node.signers(), new);
    assert!(node.publishes(&old.0) && node.publishes(&old.1));
}

#[tokio::test]
async fn a_fresh_start_signs_with_its_only_keys_and_a_restart_keeps_a_just_retired_signer() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (sealer, _dir) = sealer();
    // First start: one key per algorithm, signing at once (nothing else could).
    let first = Node::start(&store, &sealer, T0).await;
    let (ed, rs) = first.signers();
    assert!(!first.refresh_at(&store, &sealer, T0).await);
    assert_eq!(first.signers(), (ed.clone(), rs.clone()));
    // A rotation publishes new keys; a node starts one second before they activate.
    let due = T0.saturating_add(PERIOD);
    let new = rotate_both(&store, &sealer, due).await;
    let start = due.saturating_add(LEAD - secs(1));
    let node = Node::start(&store, &sealer, start).await;
    assert_eq!(node.signers(), (ed.clone(), rs.clone()));
    // The store activates them; this node served its first JWKS only at its start (a
    // JWKS cached from before came from elsewhere), so it waits a lead from there.
    let activated = due.saturating_add(LEAD);
    node.refresh_at(&store, &sealer, activated).await;
    assert_eq!(state_of(&store, &new.0).await, Some(KeyState::Active));
    assert_eq!(node.signers(), (ed.clone(), rs.clone()));
    node.refresh_at(&store, &sealer, start.saturating_add(LEAD + secs(1)))
        .await;
    assert_eq!(node.signers(), new);
    // A node (re)starting just after the activation keeps the keys just retired, as a
    // running node would, for as long as their grace lets it (a lead is not over yet).
    let restarted = activated.saturating_add(secs(20));
    let later = Node::start(&store, &sealer, restarted).await;
    assert_eq!(later.signers(), (ed.clone(), rs.clone()));
    let grace_end = activated.saturating_add(timings().signing_grace());
    later
        .refresh_at(&store, &sealer, grace_end.saturating_sub(secs(1)))
        .await;
    assert_eq!(later.signers(), (ed, rs));
    // Past the grace the store may delete them soon: the new keys sign.
    later.refresh_at(&store, &sealer, grace_end).await;
    assert_eq!(later.signers(), new);
    // A node starting once the old keys' grace is over has no earlier signer to keep.
    let after_grace = activated.saturating_add(timings().signing_grace());
    let last = Node::start(&store, &sealer, after_grace).await;
    assert_eq!(last.signers(), new);
}

#[tokio::test]
async fn each_algorithm_switches_when_its_own_key_has_been_published_a_lead() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (sealer, _dir) = sealer();
    let node = Node::start(&store, &sealer, T0).await;
    let (old_ed, old_rs) = node.signers();
    let due = T0.saturating_add(PERIOD);
    // The EdDSA key is published at `due` and the node sees it at once.
    let ed = rotate_if_due(&store, &sealer, Algorithm::EdDsa, PERIOD, LEAD, due);
    let new_ed = ed.await.unwrap().unwrap();
    node.refresh_at(&store, &sealer, due).await;
    // The RS256 key a minute later; the node next reloads when it is already active.
    let rs_at = due.saturating_add(secs(60));
    let rs = rotate_if_due(&store, &sealer, Algorithm::Rs256, PERIOD, LEAD, rs_at);
    let new_rs = rs.await.unwrap().unwrap();
    let late = rs_at.saturating_add(LEAD + secs(2));
    node.refresh_at(&store, &sealer, late).await;
    assert_eq!(node.signers(), (new_ed.clone(), old_rs.clone()));
    node.refresh_at(&store, &sealer, late.saturating_add(LEAD))
        .await;
    assert_eq!(node.signers(), (new_ed.clone(), old_rs));
    node.refresh_at(&store, &sealer, late.saturating_add(LEAD + secs(1)))
        .await;
    assert_eq!(node.signers(), (new_ed, new_rs));
    assert!(node.publishes(&old_ed));
}

#[tokio::test]
async fn a_retired_key_stays_published_as_long_as_a_late_node_may_sign_with_it() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (sealer, _dir) = sealer();
    let t = timings();
    let node = Node::start(&store, &sealer, T0).await;
    let old = node.signers();
    let due = T0.saturating_add(PERIOD);
    let new = rotate_both(&store, &sealer, due).await;
    // Another process (`tessera keys list`) applies the lifecycle on time.
    let retired = due.saturating_add(LEAD);
    advance(&store, &sealer, retired, t).await.unwrap();
    assert_eq!(state_of(&store, &old.0).await, Some(KeyState::Retired));
    // This node learns of it 200 s late: waiting a full lead from now would sign past
    // the grace the store keeps the old keys for, so it signs with them until the grace
    // ends, then with the new keys.
    node.refresh_at(&store, &sealer, retired.saturating_add(secs(200)))
        .await;
    assert_eq!(node.signers(), old);
    let grace_end = retired.saturating_add(t.signing_grace());
    let last = grace_end.saturating_sub(secs(1));
    node.refresh_at(&store, &sealer, last).await;
    assert_eq!(node.signers(), old);
    node.refresh_at(&store, &sealer, grace_end).await;
    assert_eq!(node.signers(), new);
    // The last token signed with an old key (at `last`) expires before the key goes.
    let last_token_ends = last.saturating_add(t.max_token_life);
    advance(&store, &sealer, last_token_ends, t).await.unwrap();
    assert_eq!(state_of(&store, &old.0).await, Some(KeyState::Retired));
    assert_eq!(state_of(&store, &old.1).await, Some(KeyState::Retired));
    let gone = retired.saturating_add(t.keep_retired());
    assert!(gone > last_token_ends);
    advance(&store, &sealer, gone, t).await.unwrap();
    assert_eq!(state_of(&store, &old.0).await, None);
    assert_eq!(state_of(&store, &old.1).await, None);
}

#[tokio::test]
async fn a_key_removed_and_published_again_counts_from_its_return() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (sealer, _dir) = sealer();
    let node = Node::start(&store, &sealer, T0).await;
    let (old, _) = node.signers();
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    let publish = |activate_after: UnixTime| NewKey {
        kid: Some("again"),
        state: KeyState::Published,
        activate_after,
    };
    store_key(&store, &sealer, key, publish(T0.saturating_add(LEAD)), T0)
        .await
        .unwrap();
    node.refresh_at(&store, &sealer, T0).await;
    assert!(node.publishes("again"));
    // `tessera keys remove again`: this node's JWKS drops it...
    assert!(store.remove_published_key("again").await.unwrap());
    node.refresh_at(&store, &sealer, T0.saturating_add(secs(100)))
        .await;
    assert!(!node.publishes("again"));
    // ... and the same key is imported again: a JWKS cached in between lacks it.
    let back = T0.saturating_add(secs(150));
    let same = SigningKey::from_pkcs8_der(&der).unwrap();
    let activate = T0.saturating_add(secs(200));
    store_key(&store, &sealer, same, publish(activate), back)
        .await
        .unwrap();
    node.refresh_at(&store, &sealer, back).await;
    let active = T0.saturating_add(LEAD + secs(1));
    node.refresh_at(&store, &sealer, active).await;
    assert_eq!(state_of(&store, "again").await, Some(KeyState::Active));
    assert_eq!(node.signers().0, old, "published since {back:?} only");
    node.refresh_at(&store, &sealer, back.saturating_add(LEAD + secs(1)))
        .await;
    assert_eq!(node.signers().0, "again");
}

/// `tessera keys remove` and an import of OTHER material under the same kid between two
/// reloads: the node sees a changed public key, republishes, and counts it from then.
#[tokio::test]
async fn a_kid_removed_and_imported_with_other_material_between_reloads_is_a_new_key() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (sealer, _dir) = sealer();
    let node = Node::start(&store, &sealer, T0).await;
    let (old, _) = node.signers();
    let publish = |activate_after: UnixTime| NewKey {
        kid: Some("reused"),
        state: KeyState::Published,
        activate_after,
    };
    let first = SigningKey::generate(Algorithm::EdDsa).unwrap();
    store_key(&store, &sealer, first, publish(T0.saturating_add(LEAD)), T0)
        .await
        .unwrap();
    node.refresh_at(&store, &sealer, T0).await;
    let jwk_of = |node: &Node| {
        let ring = node.keys.current();
        serde_json::to_string(
            ring.jwks()
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some("reused"))
                .unwrap(),
        )
        .unwrap()
    };
    let first_jwk = jwk_of(&node);
    // No reload between the removal and the import.
    let swap = T0.saturating_add(secs(250));
    assert!(store.remove_published_key("reused").await.unwrap());
    let second = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let activate = T0.saturating_add(LEAD);
    store_key(&store, &sealer, second, publish(activate), swap)
        .await
        .unwrap();
    assert!(node.refresh_at(&store, &sealer, swap).await, "rebuilt");
    assert_ne!(jwk_of(&node), first_jwk, "the new public key is published");
    let active = T0.saturating_add(LEAD + secs(1));
    node.refresh_at(&store, &sealer, active).await;
    assert_eq!(state_of(&store, "reused").await, Some(KeyState::Active));
    assert_eq!(
        node.signers().0,
        old,
        "the new material is published since {swap:?} only"
    );
    node.refresh_at(&store, &sealer, swap.saturating_add(LEAD + secs(1)))
        .await;
    assert_eq!(node.signers().0, "reused");
}

/// Two replicas: A loads a new key at once, B only a refresh interval later. A JWKS
/// fetched from B just before B loaded it lacks the key for a cache lifetime; the key
/// activates (and A signs with it) only once that copy has expired.
#[tokio::test]
async fn a_key_signs_only_once_a_jwks_from_the_slowest_replica_holds_it() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (sealer, _dir) = sealer();
    let a = Node::start(&store, &sealer, T0).await;
    let b = Node::start(&store, &sealer, T0).await;
    let (old, _) = a.signers();
    let due = T0.saturating_add(PERIOD);
    let lead = timings().activation_lead();
    let new = rotate_if_due(&store, &sealer, Algorithm::EdDsa, PERIOD, lead, due)
        .await
        .unwrap()
        .unwrap();
    a.refresh_at(&store, &sealer, due).await;
    assert!(a.publishes(&new));
    // B's last JWKS without the key is served just before B reloads.
    let b_loads = due.saturating_add(timings().refresh);
    assert!(!b.publishes(&new));
    b.refresh_at(&store, &sealer, b_loads).await;
    assert!(b.publishes(&new));
    let copy_expires = b_loads.saturating_add(LEAD);
    // Until that copy expires, nothing signs with the key, on either replica.
    for at in [due.saturating_add(LEAD + secs(1)), copy_expires] {
        a.refresh_at(&store, &sealer, at).await;
        b.refresh_at(&store, &sealer, at).await;
        assert_eq!(a.signers().0, old, "at {at:?}");
        assert_eq!(b.signers().0, old, "at {at:?}");
    }
    let after = copy_expires.saturating_add(secs(1));
    a.refresh_at(&store, &sealer, after).await;
    b.refresh_at(&store, &sealer, after).await;
    assert_eq!(a.signers().0, new);
    assert_eq!(b.signers().0, new);
}

/// The same swap of material, with this node's first reload after it coming only once
/// the key is active (a database outage): the new material counts from that reload,
/// not from the kid's first publication.
#[tokio::test]
async fn a_kid_with_new_material_seen_only_once_active_waits_a_lead() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (sealer, _dir) = sealer();
    let node = Node::start(&store, &sealer, T0).await;
    let (old, _) = node.signers();
    let publish = |activate_after: UnixTime| NewKey {
        kid: Some("reused"),
        state: KeyState::Published,
        activate_after,
    };
    let first = SigningKey::generate(Algorithm::EdDsa).unwrap();
    store_key(&store, &sealer, first, publish(T0.saturating_add(LEAD)), T0)
        .await
        .unwrap();
    node.refresh_at(&store, &sealer, T0).await;
    assert!(store.remove_published_key("reused").await.unwrap());
    let second = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let swap = T0.saturating_add(secs(10));
    store_key(
        &store,
        &sealer,
        second,
        publish(T0.saturating_add(LEAD)),
        swap,
    )
    .await
    .unwrap();
    let late = T0.saturating_add(LEAD + secs(50));
    node.refresh_at(&store, &sealer, late).await;
    assert_eq!(state_of(&store, "reused").await, Some(KeyState::Active));
    assert_eq!(
        node.signers().0,
        old,
        "the new material is published since {late:?} only"
    );
    node.refresh_at(&store, &sealer, late.saturating_add(LEAD + secs(1)))
        .await;
    assert_eq!(node.signers().0, "reused");
}
