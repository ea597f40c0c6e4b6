//! Passkeys (WebAuthn Level 3 through `webauthn-rs`, the Kanidm project's crate; nothing
//! of WebAuthn is checked here by hand): the relying party derived from the issuer,
//! registration, and the check of an assertion as a second factor or alone. A ceremony's
//! state (its challenge) is kept in the store, bound to its user and to the pending
//! sign-in or session it belongs to, taken once and dead after [`CEREMONY_SECS`]. The
//! sign-in decision that uses the check, throttled and audited, is
//! [`crate::login::second_factor`].

use aws_lc_rs::digest;
use serde::de::DeserializeOwned;
use tessera_token::{OpaqueToken, TokenHash, TokenKind};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use crate::oauth::OAuthError;
use crate::state::Core;
use crate::store::{CeremonyKind, CeremonyRecord, PasskeyRecord, UserRecord};

/// Seconds a ceremony lives (the page's authenticator prompt included).
pub(crate) const CEREMONY_SECS: i64 = 300;
/// Largest credential response the page may post (JSON). A real one is about 1-2 KiB.
pub(crate) const MAX_RESPONSE: usize = 16 * 1024;
/// Passkeys one user may register.
pub(crate) const MAX_PER_USER: usize = 20;
/// Live passwordless ceremonies one user may have (anyone may begin one with the
/// username), and likewise live second-factor ones (each code page, step-ups from a live
/// session included, begins one): beginning another replaces the oldest of its kind.
pub(crate) const LIVE_ALONE: u32 = 5;

/// The relying party of `issuer`: its origin is the issuer's origin (the pages are served
/// there) and its id the issuer's host, or `rp_id` when set, which must be that host or a
/// parent domain of it (WebAuthn's rule). `Ok(None)` when the issuer's host is an IP
/// address and no `rp_id` is set: WebAuthn has no relying party for an address, so
/// passkeys are not offered. An inconsistent `rp_id` is an error (the server refuses to
/// start).
pub(crate) fn relying_party(issuer: &str, rp_id: Option<&str>) -> Result<Option<Webauthn>, String> {
    let url = Url::parse(issuer).map_err(|e| format!("issuer {issuer:?}: {e}"))?;
    let origin = Url::parse(&url.origin().ascii_serialization())
        .map_err(|e| format!("issuer {issuer:?}: {e}"))?;
    let id = match (rp_id, origin.domain()) {
        (Some(id), _) => id.to_owned(),
        (None, Some(host)) => host.to_owned(),
        (None, None) => return Ok(None),
    };
    WebauthnBuilder::new(&id, &origin)
        .and_then(|b| b.rp_name("Tessera").build())
        .map(Some)
        .map_err(|_| {
            format!(
                "passkey_rp_id {id:?} is not the issuer's host or a parent domain of it \
                 (issuer {issuer}); leave it unset to use the issuer's host"
            )
        })
}

/// This server's relying party; `None` when passkeys are unavailable (an IP issuer).
fn webauthn(core: &Core) -> Result<Option<Webauthn>, OAuthError> {
    relying_party(&core.issuer, core.config.login.passkey_rp_id.as_deref())
        .map_err(OAuthError::Server)
}

/// True when passkeys can be offered (the issuer has a host name).
pub(crate) fn available(core: &Core) -> bool {
    matches!(webauthn(core), Ok(Some(_)))
}

/// The WebAuthn user handle of a user: 16 bytes of SHA-256 over the user id (stable, and
/// no name or e-mail in the authenticator's user handle).
fn user_handle(user_id: &str) -> Uuid {
    let d = digest::digest(
        &digest::SHA256,
        format!("tessera-webauthn:{user_id}").as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    Uuid::from_bytes(b)
}

/// A ceremony begun: the id the page posts back and the options for
/// `navigator.credentials` (JSON, public data).
#[derive(Debug)]
pub(crate) struct Started {
    /// The ceremony id (random; its hash is the store key).
    pub(crate) id: String,
    /// `{"publicKey": ...}` as JSON.
    pub(crate) options: String,
}

/// Why a passkey was refused (for the audit record; the user sees one message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No live ceremony of this kind with this id for this user and binding (unknown,
    /// used already, expired, another user's or another sign-in's).
    Ceremony,
    /// The response is not a credential (malformed or oversized JSON).
    Malformed,
    /// The credential is not one of this user's passkeys.
    UnknownCredential,
    /// The assertion names another user (its `userHandle` is not this user's).
    UserHandle,
    /// webauthn-rs refused it (signature, challenge, origin, RP id, user verification).
    Invalid,
    /// The signature counter did not advance: a cloned authenticator. The credential is
    /// marked suspect (webauthn-rs's advice: invalidate it).
    CounterRegressed,
    /// The credential is suspect (its counter went back once): refused until the user's
    /// factors are reset.
    Suspect,
    /// Another use of the same credential updated its stored counter meanwhile (two
    /// sign-ins at once): this one is refused, nothing is suspected.
    Concurrent,
    /// The credential id is registered already (to this user or another).
    Duplicate,
    /// The user has the largest number of passkeys already.
    TooMany,
}

impl Refused {
    /// The audit `reason`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refused::Ceremony => "ceremony",
            Refused::Malformed => "malformed",
            Refused::UnknownCredential => "unknown_credential",
            Refused::UserHandle => "user_handle",
            Refused::Invalid => "invalid",
            Refused::CounterRegressed => "counter_regressed",
            Refused::Suspect => "suspect",
            Refused::Concurrent => "concurrent_use",
            Refused::Duplicate => "duplicate",
            Refused::TooMany => "too_many",
        }
    }
}

fn server(what: &'static str) -> impl Fn(serde_json::Error) -> OAuthError {
    move |e| OAuthError::Server(format!("{what}: {e}"))
}

fn unavailable() -> OAuthError {
    OAuthError::Server("passkeys are not available: the issuer has no host name".into())
}

async fn store_ceremony(
    core: &Core,
    kind: CeremonyKind,
    user_id: &str,
    bound_to: Option<TokenHash>,
    state: String,
    options: String,
) -> Result<Started, OAuthError> {
    let id = OpaqueToken::generate(TokenKind::AccessToken)
        .map_err(|e| OAuthError::Server(format!("ceremony id: {e}")))?;
    let record = CeremonyRecord {
        hash: id.hash(),
        kind,
        user_id: user_id.to_owned(),
        bound_to,
        state,
        expires_at: core
            .clock
            .now()
            .saturating_add(std::time::Duration::from_secs(CEREMONY_SECS as u64)),
    };
    if kind != CeremonyKind::Register {
        core.store
            .trim_ceremonies(user_id, kind, LIVE_ALONE - 1)
            .await?;
    }
    core.store.insert_ceremony(&record).await?;
    Ok(Started {
        id: id.expose().to_owned(),
        options,
    })
}

/// Takes the ceremony `id` of `kind` if it belongs to `user_id` and `bound_to`; a wrong
/// one is consumed all the same (a guess costs the ceremony).
async fn take(
    core: &Core,
    kind: CeremonyKind,
    id: &str,
    user_id: &str,
    bound_to: Option<&TokenHash>,
) -> Result<Option<CeremonyRecord>, OAuthError> {
    let hash = TokenHash::of(id.as_bytes());
    let Some(c) = core
        .store
        .take_ceremony(&hash, kind, core.clock.now())
        .await?
    else {
        return Ok(None);
    };
    if c.user_id != user_id || c.bound_to.as_ref() != bound_to {
        return Ok(None);
    }
    Ok(Some(c))
}

/// Parses the page's JSON response, refusing an oversized one before reading it.
pub(crate) fn parse<T: DeserializeOwned>(response: &str) -> Result<T, Refused> {
    if response.len() > MAX_RESPONSE {
        return Err(Refused::Malformed);
    }
    serde_json::from_str(response).map_err(|_| Refused::Malformed)
}

fn stored(p: &PasskeyRecord) -> Result<Passkey, OAuthError> {
    serde_json::from_str(&p.passkey).map_err(server("a stored passkey"))
}

/// Begins registering a passkey for `user`, bound to the pending sign-in or session
/// `bound_to`. The user's passkeys are excluded (an authenticator registers once).
pub(crate) async fn begin_registration(
    core: &Core,
    user: &UserRecord,
    bound_to: &TokenHash,
) -> Result<Started, OAuthError> {
    let wa = webauthn(core)?.ok_or_else(unavailable)?;
    let existing = core.store.passkeys(&user.id).await?;
    let exclude = existing
        .iter()
        .map(|p| stored(p).map(|k| k.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let (options, state) = wa
        .start_passkey_registration(user_handle(&user.id), &user.name, &user.name, Some(exclude))
        .map_err(|e| OAuthError::Server(format!("starting a passkey registration: {e}")))?;
    let state = serde_json::to_string(&state).map_err(server("registration state"))?;
    let options = serde_json::to_string(&options).map_err(server("registration options"))?;
    store_ceremony(
        core,
        CeremonyKind::Register,
        &user.id,
        Some(*bound_to),
        state,
        options,
    )
    .await
}

/// Finishes the registration `id` of `user` with the page's `response`: stores the
/// passkey labelled `label` and, in the same transaction, does the user's revoke-all (a
/// new factor ends what was had without it). The caller audits `mfa.enroll`.
pub(crate) async fn finish_registration(
    core: &Core,
    user: &UserRecord,
    bound_to: &TokenHash,
    id: &str,
    response: &str,
    label: &str,
) -> Result<Result<(), Refused>, OAuthError> {
    let Some(c) = take(core, CeremonyKind::Register, id, &user.id, Some(bound_to)).await? else {
        return Ok(Err(Refused::Ceremony));
    };
    let response: RegisterPublicKeyCredential = match parse(response) {
        Ok(r) => r,
        Err(r) => return Ok(Err(r)),
    };
    let state: PasskeyRegistration =
        serde_json::from_str(&c.state).map_err(server("registration state"))?;
    let wa = webauthn(core)?.ok_or_else(unavailable)?;
    let passkey = match wa.finish_passkey_registration(&response, &state) {
        Ok(p) => p,
        Err(_) => return Ok(Err(Refused::Invalid)),
    };
    let existing = core.store.passkeys(&user.id).await?;
    if existing.len() >= MAX_PER_USER {
        return Ok(Err(Refused::TooMany));
    }
    let now = core.clock.now();
    let record = PasskeyRecord {
        credential_id: passkey.cred_id().to_vec(),
        user_id: user.id.clone(),
        label: label.to_owned(),
        passkey: serde_json::to_string(&passkey).map_err(server("a passkey"))?,
        created_at: now,
        last_used_at: None,
        suspect_at: None,
    };
    if !core.store.add_passkey(&record, core.revoked_now()).await? {
        return Ok(Err(Refused::Duplicate));
    }
    Ok(Ok(()))
}

/// Begins a passkey sign-in of `user` (`kind`: a second factor bound to the pending
/// sign-in `bound_to`, or a passkey alone); `None` when the user has no passkey.
pub(crate) async fn begin_authentication(
    core: &Core,
    user: &UserRecord,
    kind: CeremonyKind,
    bound_to: Option<&TokenHash>,
) -> Result<Option<Started>, OAuthError> {
    let Some(wa) = webauthn(core)? else {
        return Ok(None);
    };
    let keys = core
        .store
        .passkeys(&user.id)
        .await?
        .iter()
        .map(stored)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Ok(None);
    }
    let (options, state) = wa
        .start_passkey_authentication(&keys)
        .map_err(|e| OAuthError::Server(format!("starting a passkey sign-in: {e}")))?;
    let state = serde_json::to_string(&state).map_err(server("sign-in state"))?;
    let options = serde_json::to_string(&options).map_err(server("sign-in options"))?;
    store_ceremony(core, kind, &user.id, bound_to.copied(), state, options)
        .await
        .map(Some)
}

/// Checks the page's assertion `response` for the ceremony `id` of `user_id`: the
/// ceremony is taken (once), the credential must be one of the user's, webauthn-rs
/// verifies it (challenge, origin, RP id, signature, user verification: required, so a
/// passkey alone carries the authenticator's verification of the user) and its counter
/// (a regression is refused), and the stored counter and backup flags are updated.
pub(crate) async fn check(
    core: &Core,
    user_id: &str,
    kind: CeremonyKind,
    bound_to: Option<&TokenHash>,
    id: &str,
    response: &str,
) -> Result<Result<(), Refused>, OAuthError> {
    let Some(c) = take(core, kind, id, user_id, bound_to).await? else {
        return Ok(Err(Refused::Ceremony));
    };
    let response: PublicKeyCredential = match parse(response) {
        Ok(r) => r,
        Err(r) => return Ok(Err(r)),
    };
    let keys = core.store.passkeys(user_id).await?;
    let Some(record) = keys
        .iter()
        .find(|p| p.credential_id == response.get_credential_id())
    else {
        return Ok(Err(Refused::UnknownCredential));
    };
    // The authenticator's user handle, when it sends one, must be this user's.
    if response
        .get_user_unique_id()
        .is_some_and(|h| h != user_handle(user_id).as_bytes())
    {
        return Ok(Err(Refused::UserHandle));
    }
    if record.suspect_at.is_some() {
        return Ok(Err(Refused::Suspect));
    }
    let state: PasskeyAuthentication =
        serde_json::from_str(&c.state).map_err(server("sign-in state"))?;
    let wa = webauthn(core)?.ok_or_else(unavailable)?;
    let result = match wa.finish_passkey_authentication(&response, &state) {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            suspect(core, record).await?;
            return Ok(Err(Refused::CounterRegressed));
        }
        Err(_) => return Ok(Err(Refused::Invalid)),
    };
    if !result.user_verified() {
        // The ceremony requires verification; webauthn-rs refuses without it already.
        return Ok(Err(Refused::Invalid));
    }
    let mut passkey = stored(record)?;
    passkey.update_credential(&result);
    let updated = serde_json::to_string(&passkey).map_err(server("a passkey"))?;
    // One winner per stored counter: a parallel use of the credential loses here (not a
    // regression: both counters were ahead of the one read).
    if !core
        .store
        .update_passkey(
            &record.credential_id,
            &record.passkey,
            &updated,
            core.clock.now(),
        )
        .await?
    {
        return Ok(Err(Refused::Concurrent));
    }
    Ok(Ok(()))
}

/// Marks `record` suspect (its counter went back: a cloned authenticator) and raises the
/// alarm `mfa.passkey_suspect` (once: the call that marked it).
async fn suspect(core: &Core, record: &PasskeyRecord) -> Result<(), OAuthError> {
    if core
        .store
        .mark_passkey_suspect(&record.credential_id, core.clock.now())
        .await?
    {
        tracing::warn!(
            user_id = %record.user_id,
            "a passkey's signature counter went back (a cloned authenticator?): refused until `user mfa-reset`"
        );
        crate::audit::audit(
            core,
            "mfa.passkey_suspect",
            None,
            Some(&record.user_id),
            serde_json::json!({ "factor": "passkey", "label": record.label }),
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
