//! The ceremony rules on a bare core with a software authenticator (the `passkey` crate,
//! 1Password's): registration, a sign-in per challenge, and the refusals (a replayed
//! assertion, a challenge used twice or expired, another user's credential or ceremony,
//! a wrong origin, a counter that went back, malformed or oversized responses).

use std::sync::Arc;
use std::time::Duration;

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::aws_lc_rs::AwsLcRsBackend;
use passkey::types::Passkey as Key;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use tessera_token::TokenHash;
use url::Url;

use super::*;
use crate::clock::ManualClock;
use crate::state::testing;
use crate::store::UserRecord;

/// The authenticator's user: present and verified (PIN or biometrics) when asked.
struct Verified;

#[async_trait::async_trait]
impl UserValidationMethod for Verified {
    type PasskeyItem = Key;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Key>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence,
            verification,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

type Device = Client<Option<Key>, Verified, AwsLcRsBackend, public_suffix::PublicSuffixList, ()>;

fn device() -> Device {
    let mut a = Authenticator::new(Aaguid::new_empty(), None, Verified, AwsLcRsBackend);
    a.set_make_credentials_with_signature_counter(true);
    Client::new(a).allows_insecure_localhost(true)
}

const ORIGIN: &str = "http://localhost:8080";

/// The JSON a page posts: byte strings in base64url (the software authenticator writes
/// them as arrays of numbers), as `/passkey.js` encodes them.
fn as_page_json(v: serde_json::Value) -> String {
    fn walk(v: serde_json::Value) -> serde_json::Value {
        use base64::Engine;
        use serde_json::Value;
        match v {
            Value::Array(items)
                if !items.is_empty()
                    && items.iter().all(|i| i.as_u64().is_some_and(|n| n < 256)) =>
            {
                let bytes: Vec<u8> = items
                    .iter()
                    .filter_map(|i| i.as_u64())
                    .map(|n| n as u8)
                    .collect();
                Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
            }
            Value::Array(items) => Value::Array(items.into_iter().map(walk).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, walk(v))).collect())
            }
            other => other,
        }
    }
    walk(v).to_string()
}

async fn create(d: &mut Device, origin: &str, options: &str) -> String {
    let options: CredentialCreationOptions = serde_json::from_str(options).unwrap();
    let c = d
        .register(&Url::parse(origin).unwrap(), options, DefaultClientData)
        .await
        .unwrap();
    as_page_json(serde_json::to_value(&c).unwrap())
}

async fn get(d: &mut Device, origin: &str, options: &str) -> String {
    let options: CredentialRequestOptions = serde_json::from_str(options).unwrap();
    let c = d
        .authenticate(&Url::parse(origin).unwrap(), options, DefaultClientData)
        .await
        .unwrap();
    as_page_json(serde_json::to_value(&c).unwrap())
}

async fn setup() -> (Core, tempfile::TempDir, Arc<ManualClock>) {
    let (mut core, dir, clock) = testing::core().await;
    core.issuer = ORIGIN.into();
    for (id, name) in [("u1", "alice"), ("u2", "bob")] {
        core.store
            .insert_user(&UserRecord {
                id: id.into(),
                name: name.into(),
                password_hash: "$argon2id$x".into(),
                disabled: false,
                created_at: core.clock.now(),
                generation: 0,
            })
            .await
            .unwrap();
    }
    (core, dir, clock)
}

async fn user(core: &Core, id: &str) -> UserRecord {
    core.store.user_by_id(id).await.unwrap().unwrap()
}

fn pending(n: u8) -> TokenHash {
    TokenHash::of(&[n])
}

/// Registers a passkey of `d` for `id`, bound to `pending(0)`.
async fn register(core: &Core, d: &mut Device, id: &str) {
    let u = user(core, id).await;
    let s = begin_registration(core, &u, &pending(0)).await.unwrap();
    let response = create(d, ORIGIN, &s.options).await;
    finish_registration(core, &u, &pending(0), &s.id, &response, "key")
        .await
        .unwrap()
        .unwrap();
}

async fn begin_second(core: &Core, id: &str) -> Started {
    let u = user(core, id).await;
    begin_authentication(core, &u, CeremonyKind::SecondFactor, Some(&pending(1)))
        .await
        .unwrap()
        .unwrap()
}

async fn check_second(core: &Core, id: &str, s: &Started, response: &str) -> Result<(), Refused> {
    check(
        core,
        id,
        CeremonyKind::SecondFactor,
        Some(&pending(1)),
        &s.id,
        response,
    )
    .await
    .unwrap()
}

#[test]
fn the_relying_party_comes_from_the_issuer_and_a_wrong_override_is_refused() {
    assert!(
        relying_party("https://auth.example.com", None)
            .unwrap()
            .is_some()
    );
    assert!(
        relying_party("https://auth.example.com", Some("example.com"))
            .unwrap()
            .is_some(),
        "a parent domain"
    );
    assert!(relying_party("https://auth.example.com", Some("other.example")).is_err());
    assert!(relying_party("https://auth.example.com", Some("ample.com")).is_err());
    assert!(
        relying_party("http://127.0.0.1:8080", None)
            .unwrap()
            .is_none(),
        "no passkeys on an IP address"
    );
    assert!(relying_party("http://127.0.0.1:8080", Some("localhost")).is_err());
    assert!(
        relying_party("http://localhost:8080", None)
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_passkey_signs_in_once_per_challenge_and_a_replay_is_refused() {
    let (core, _dir, _clock) = setup().await;
    let mut d = device();
    register(&core, &mut d, "u1").await;
    assert_eq!(
        user(&core, "u1").await.generation,
        1,
        "registering ended what the password alone had"
    );
    let s = begin_second(&core, "u1").await;
    let response = get(&mut d, ORIGIN, &s.options).await;
    assert_eq!(check_second(&core, "u1", &s, &response).await, Ok(()));
    assert_eq!(
        check_second(&core, "u1", &s, &response).await,
        Err(Refused::Ceremony),
        "the challenge is used once"
    );
    let fresh = begin_second(&core, "u1").await;
    assert_eq!(
        check_second(&core, "u1", &fresh, &response).await,
        Err(Refused::Invalid),
        "a replayed assertion signs another challenge"
    );
    let stored = core.store.passkeys("u1").await.unwrap().remove(0);
    assert!(stored.last_used_at.is_some());
}

/// An assertion whose `userHandle` (not covered by the signature) names another user is
/// refused; this user's handle, or none, passes.
#[tokio::test]
async fn an_assertion_naming_another_user_is_refused() {
    use base64::Engine;
    let (core, _dir, _clock) = setup().await;
    let mut d = device();
    register(&core, &mut d, "u1").await;
    let with_handle = |response: &str, handle: Option<&[u8]>| {
        let mut v: serde_json::Value = serde_json::from_str(response).unwrap();
        v["response"]["userHandle"] = match handle {
            Some(h) => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(h)
                .into(),
            None => serde_json::Value::Null,
        };
        v.to_string()
    };
    let s = begin_second(&core, "u1").await;
    let response = get(&mut d, ORIGIN, &s.options).await;
    let other = with_handle(&response, Some(user_handle("u2").as_bytes()));
    assert_eq!(
        check_second(&core, "u1", &s, &other).await,
        Err(Refused::UserHandle)
    );
    for handle in [Some(user_handle("u1").as_bytes().as_slice()), None] {
        let s = begin_second(&core, "u1").await;
        let response = get(&mut d, ORIGIN, &s.options).await;
        let own = with_handle(&response, handle);
        assert_eq!(check_second(&core, "u1", &s, &own).await, Ok(()));
    }
}

#[tokio::test]
async fn an_expired_or_misbound_ceremony_is_refused() {
    let (core, _dir, clock) = setup().await;
    let mut d = device();
    register(&core, &mut d, "u1").await;
    let s = begin_second(&core, "u1").await;
    let response = get(&mut d, ORIGIN, &s.options).await;
    clock.advance(Duration::from_secs(CEREMONY_SECS as u64));
    assert_eq!(
        check_second(&core, "u1", &s, &response).await,
        Err(Refused::Ceremony),
        "expired"
    );
    let s = begin_second(&core, "u1").await;
    let response = get(&mut d, ORIGIN, &s.options).await;
    let other_sign_in = check(
        &core,
        "u1",
        CeremonyKind::SecondFactor,
        Some(&pending(9)),
        &s.id,
        &response,
    )
    .await
    .unwrap();
    assert_eq!(
        other_sign_in,
        Err(Refused::Ceremony),
        "another pending sign-in's"
    );
    assert_eq!(
        check_second(&core, "u1", &s, &response).await,
        Err(Refused::Ceremony),
        "a wrong take consumed it"
    );
    let s = begin_second(&core, "u1").await;
    let response = get(&mut d, ORIGIN, &s.options).await;
    let as_first = check(
        &core,
        "u1",
        CeremonyKind::FirstFactor,
        None,
        &s.id,
        &response,
    )
    .await
    .unwrap();
    assert_eq!(as_first, Err(Refused::Ceremony), "not as another kind");
}

#[tokio::test]
async fn another_users_credential_or_ceremony_is_refused() {
    let (core, _dir, _clock) = setup().await;
    let (mut alice, mut bob) = (device(), device());
    register(&core, &mut alice, "u1").await;
    register(&core, &mut bob, "u2").await;
    // Alice's authenticator answers Bob's challenge (its allow list names Bob's key only,
    // so the device is asked for the challenge with the list removed).
    let s = begin_second(&core, "u2").await;
    let mut options: serde_json::Value = serde_json::from_str(&s.options).unwrap();
    options["publicKey"]["allowCredentials"] = serde_json::json!([]);
    let response = get(&mut alice, ORIGIN, &options.to_string()).await;
    assert_eq!(
        check_second(&core, "u2", &s, &response).await,
        Err(Refused::UnknownCredential)
    );
    let s = begin_second(&core, "u1").await;
    let response = get(&mut alice, ORIGIN, &s.options).await;
    assert_eq!(
        check_second(&core, "u2", &s, &response).await,
        Err(Refused::Ceremony),
        "Alice's ceremony posted as Bob"
    );
}

#[tokio::test]
async fn a_wrong_origin_is_refused() {
    let (core, _dir, _clock) = setup().await;
    let mut d = device();
    register(&core, &mut d, "u1").await;
    let s = begin_second(&core, "u1").await;
    let response = get(&mut d, "http://evil.localhost:8080", &s.options).await;
    assert_eq!(
        check_second(&core, "u1", &s, &response).await,
        Err(Refused::Invalid)
    );
    let u = user(&core, "u1").await;
    let s = begin_registration(&core, &u, &pending(0)).await.unwrap();
    let response = create(&mut device(), "http://localhost:9999", &s.options).await;
    let done = finish_registration(&core, &u, &pending(0), &s.id, &response, "k")
        .await
        .unwrap();
    assert_eq!(
        done,
        Err(Refused::Invalid),
        "another port is another origin"
    );
}

#[tokio::test]
async fn a_counter_that_goes_back_is_refused() {
    let (core, _dir, _clock) = setup().await;
    let mut d = device();
    register(&core, &mut d, "u1").await;
    let cloned = d.authenticator().store().clone();
    let s = begin_second(&core, "u1").await;
    let response = get(&mut d, ORIGIN, &s.options).await;
    assert_eq!(check_second(&core, "u1", &s, &response).await, Ok(()));
    let s = begin_second(&core, "u1").await;
    let response = get(&mut d, ORIGIN, &s.options).await;
    assert_eq!(check_second(&core, "u1", &s, &response).await, Ok(()));
    // A clone of the authenticator from before those uses.
    *d.authenticator_mut().store_mut() = cloned;
    let s = begin_second(&core, "u1").await;
    let response = get(&mut d, ORIGIN, &s.options).await;
    assert_eq!(
        check_second(&core, "u1", &s, &response).await,
        Err(Refused::CounterRegressed)
    );
    // The credential is suspect from now on: even an assertion whose counter is ahead (the
    // original device) is refused, and the alarm was raised once.
    for _ in 0..3 {
        let s = begin_second(&core, "u1").await;
        let ahead = get(&mut d, ORIGIN, &s.options).await;
        assert_eq!(
            check_second(&core, "u1", &s, &ahead).await,
            Err(Refused::Suspect)
        );
    }
    let stored = core.store.passkeys("u1").await.unwrap();
    assert!(stored[0].suspect_at.is_some());
    let alarms = core
        .store
        .recent_events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "mfa.passkey_suspect")
        .count();
    assert_eq!(alarms, 1);
}

#[tokio::test]
async fn malformed_or_oversized_responses_are_refused_and_end_the_ceremony() {
    let (core, _dir, _clock) = setup().await;
    let mut d = device();
    register(&core, &mut d, "u1").await;
    for bad in [
        String::new(),
        "{".to_owned(),
        "{\"id\":1}".to_owned(),
        format!("\"{}\"", "a".repeat(MAX_RESPONSE + 1)),
    ] {
        let s = begin_second(&core, "u1").await;
        assert_eq!(
            check_second(&core, "u1", &s, &bad).await,
            Err(Refused::Malformed)
        );
        let good = get(&mut d, ORIGIN, &s.options).await;
        assert_eq!(
            check_second(&core, "u1", &s, &good).await,
            Err(Refused::Ceremony),
            "a failed check used the challenge"
        );
    }
}

/// Second-factor ceremonies are kept per user like passwordless ones: beginning more
/// than `LIVE_ALONE` ends the oldest (a step-up reloaded in a loop piles up nothing).
#[tokio::test]
async fn second_factor_ceremonies_are_trimmed_per_user() {
    let (core, _dir, clock) = setup().await;
    let mut d = device();
    register(&core, &mut d, "u1").await;
    let first = begin_second(&core, "u1").await;
    let mut last = None;
    for _ in 0..super::LIVE_ALONE {
        // A second apart: the oldest is the first one.
        clock.advance(Duration::from_secs(1));
        last = Some(begin_second(&core, "u1").await);
    }
    let response = get(&mut d, ORIGIN, &first.options).await;
    assert!(check_second(&core, "u1", &first, &response).await.is_err());
    let last = last.unwrap();
    let response = get(&mut d, ORIGIN, &last.options).await;
    check_second(&core, "u1", &last, &response).await.unwrap();
}
