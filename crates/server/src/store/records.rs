//! The records the store keeps: plain data, no secrets in the clear.

use std::fmt;
use std::str::FromStr;

use tessera_token::{Algorithm, Scope, TokenHash, UnixTime};

/// A grant type a client may use (RFC 6749 sections 4 and 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrantType {
    /// `client_credentials` (RFC 6749 section 4.4).
    ClientCredentials,
    /// `password` (RFC 6749 section 4.3).
    Password,
    /// `refresh_token` (RFC 6749 section 6).
    RefreshToken,
    /// `authorization_code` (RFC 6749 section 4.1, with RFC 7636 PKCE).
    AuthorizationCode,
}

impl GrantType {
    /// Every grant type the server implements.
    pub const ALL: [GrantType; 4] = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::AuthorizationCode,
    ];

    /// The `grant_type` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::AuthorizationCode => "authorization_code",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown grant type {s:?}; use client_credentials, password, refresh_token or authorization_code"
                )
            })
    }
}

/// A registered client.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    /// `client_id`.
    pub id: String,
    /// Human-readable unique name.
    pub name: String,
    /// SHA-256 of the `tsr_cs_` secret; `None` for a public client.
    pub secret_hash: Option<TokenHash>,
    /// Grant types it may use.
    pub grant_types: Vec<GrantType>,
    /// The most scope it may get.
    pub scope: Scope,
    /// Audiences of its access tokens; the first is the default.
    pub audience: Vec<String>,
    /// Registered redirect URIs of the authorization code flow, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Registered `post_logout_redirect_uri`s of OpenID Connect RP-initiated logout.
    pub post_logout_redirect_uris: Vec<String>,
    /// A first-party client: its users are not asked for consent.
    pub first_party: bool,
    /// Algorithm of its access tokens; `None` for the server's default.
    pub signing_alg: Option<Algorithm>,
    /// Its `id_token_signed_response_alg` (OpenID Connect Registration section 2); `None`
    /// for RS256, the default every relying party assumes.
    pub id_token_alg: Option<Algorithm>,
    /// RFC 9449 section 5.2 `dpop_bound_access_tokens`: every token request must carry a
    /// DPoP proof, so all its access tokens are bound to a key.
    pub dpop_bound_access_tokens: bool,
    /// Registration time.
    pub created_at: UnixTime,
}

/// Prefix of the `sid` shared by all client-credentials tokens of one client, so removing
/// the client revokes them through the feed.
pub const CLIENT_SID_PREFIX: &str = "cc_";

/// Prefix of the `sid` of an access token minted by `tessera token mint --sub`: it names
/// no stored grant and no user sign-in, only the operator's mint (audited as `token.mint`).
pub const MINTED_SID_PREFIX: &str = "m_";

/// The `sid` of every client-credentials token of `client_id` (RFC 6749 section 4.4).
pub fn client_credentials_sid(client_id: &str) -> String {
    format!("{CLIENT_SID_PREFIX}{client_id}")
}

impl ClientRecord {
    /// True when the client has no secret.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// True when the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// A resource owner. `password_hash` is an Argon2id PHC string, never the password.
#[derive(Clone)]
pub struct UserRecord {
    /// Stable id, the `sub` of the user's tokens.
    pub id: String,
    /// Login name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Disabled users cannot log in.
    pub disabled: bool,
    /// Creation time.
    pub created_at: UnixTime,
    /// The user's revision: every "revoke all" adds one. Read with the user at sign-in
    /// and stamped on what the sign-in creates, which stands only while it is current.
    pub generation: i64,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("disabled", &self.disabled)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// A grant: one login, the family of its refresh tokens, the `sid` of its access tokens.
#[derive(Debug, Clone)]
pub struct GrantRecord {
    /// The grant id, used as `sid`.
    pub id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user, if any.
    pub user_id: Option<String>,
    /// The scope granted; refreshes may narrow it, never widen it.
    pub scope: Scope,
    /// The audiences of its access tokens.
    pub audience: Vec<String>,
    /// Creation (login) time.
    pub created_at: UnixTime,
    /// Absolute end of the family.
    pub expires_at: UnixTime,
    /// Set once revoked.
    pub revoked_at: Option<UnixTime>,
    /// The user's [`UserRecord::generation`] at the sign-in it comes from (0 without a
    /// user); it stands only while that is the user's current one.
    pub generation: i64,
    /// How the user signed in (not read for a grant without a user).
    pub amr: Amr,
    /// The RFC 7638 thumbprint of the DPoP key the family's refresh tokens are bound to
    /// (public clients, RFC 9449 section 5); `None`: unbound.
    pub dpop_jkt: Option<String>,
}

/// A stored refresh token (only its hash).
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// Its grant (family).
    pub grant_id: String,
    /// Issue time.
    pub issued_at: UnixTime,
    /// End of its idle lifetime.
    pub expires_at: UnixTime,
    /// When it was exchanged, if it was.
    pub used_at: Option<UnixTime>,
    /// The standing of its grant's user, read with it.
    pub owner: GrantOwner,
}

/// The standing of a grant's user, as the store read it together with the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantOwner {
    /// The grant has no user (a client's own grant).
    Client,
    /// The user no longer exists (`tessera user remove`).
    Removed,
    /// The user exists.
    User {
        /// `tessera user disable`.
        disabled: bool,
        /// The user's current [`UserRecord::generation`].
        generation: i64,
    },
}

impl GrantOwner {
    /// Reads a grant's owner from a join with the users table: `user_id` of the grant,
    /// and the user's `(disabled, generation)` when a row matched.
    pub fn from_row(user_id: Option<&str>, user: Option<(bool, i64)>) -> Self {
        match (user_id, user) {
            (None, _) => GrantOwner::Client,
            (Some(_), None) => GrantOwner::Removed,
            (Some(_), Some((disabled, generation))) => GrantOwner::User {
                disabled,
                generation,
            },
        }
    }

    /// The one rule: a grant, code or browser session stamped with `generation` stands
    /// only while its user exists, is enabled and has had no "revoke all" since the
    /// sign-in it comes from (the stamp is still the user's current generation). No clock
    /// is involved: whatever a sign-in read before a revoke-all is dead after it.
    pub fn allows(self, generation: i64) -> bool {
        match self {
            GrantOwner::Client => true,
            GrantOwner::Removed => false,
            GrantOwner::User {
                disabled,
                generation: current,
            } => !disabled && generation == current,
        }
    }
}

/// A refresh token about to be stored.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// Its grant.
    pub grant_id: String,
    /// Issue time.
    pub issued_at: UnixTime,
    /// End of its idle lifetime.
    pub expires_at: UnixTime,
}

/// What a revocation writes into the feed: when, and until when the named tokens live.
#[derive(Debug, Clone, Copy)]
pub struct Revoked {
    /// Revocation time.
    pub now: UnixTime,
    /// Latest expiry of any access token issued so far (now + access-token lifetime).
    pub access_exp: UnixTime,
}

/// One entry of the revocation feed: exactly one of `jti` and `sid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEntry {
    /// Cursor position.
    pub seq: i64,
    /// A revoked access token.
    pub jti: Option<String>,
    /// A revoked grant.
    pub sid: Option<String>,
    /// After this no token the entry names is valid.
    pub exp: UnixTime,
}

/// Lifecycle of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// In the JWKS, not yet signing.
    Published,
    /// Signing.
    Active,
    /// In the JWKS until its last token expires.
    Retired,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Published => "published",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "published" => Some(KeyState::Published),
            "active" => Some(KeyState::Active),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// One step of a signing key's lifecycle, planned by `keys::plan` and applied by
/// [`KeyStore::apply_key_changes`](super::KeyStore::apply_key_changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Start signing with this key.
    Activate(String),
    /// Stop signing; keep publishing until its tokens expire.
    Retire(String),
    /// Remove: no unexpired token can carry its `kid`.
    Delete(String),
}

/// A stored signing key: public JWK in the clear, private key sealed.
#[derive(Clone)]
pub struct SigningKeyRecord {
    /// Key id.
    pub kid: String,
    /// JOSE algorithm name.
    pub alg: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Public JWK (JSON).
    pub public_jwk: String,
    /// nonce || AES-256-GCM ciphertext of the PKCS#8 DER, AAD = kid.
    pub sealed_private: Vec<u8>,
    /// Creation time.
    pub created_at: UnixTime,
    /// Earliest time it may sign.
    pub activate_after: UnixTime,
    /// When it stopped signing.
    pub retired_at: Option<UnixTime>,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// One audit event. `detail` is JSON and never holds a secret.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// When.
    pub at: UnixTime,
    /// What, e.g. `login.success`, `refresh.reuse`.
    pub kind: String,
    /// Client involved.
    pub client_id: Option<String>,
    /// User involved.
    pub user_id: Option<String>,
    /// Extra facts (JSON object).
    pub detail: String,
}

/// An authorization code (RFC 6749 section 4.1.2), stored by hash and bound to what it
/// was issued for: client, redirect URI, PKCE challenge, user, scope and OpenID nonce.
#[derive(Debug, Clone)]
pub struct AuthCodeRecord {
    /// SHA-256 of the `tsr_ac_` code.
    pub hash: TokenHash,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who signed in.
    pub user_id: String,
    /// The `redirect_uri` of the authorization request (RFC 6749 section 4.1.3).
    pub redirect_uri: String,
    /// The S256 `code_challenge` (RFC 7636 section 4.2).
    pub code_challenge: String,
    /// The scope granted.
    pub scope: Scope,
    /// The OpenID Connect `nonce`, echoed in the ID token.
    pub nonce: Option<String>,
    /// When the user authenticated (the session's sign-in).
    pub auth_time: UnixTime,
    /// Issue time.
    pub created_at: UnixTime,
    /// End of its (short) lifetime.
    pub expires_at: UnixTime,
    /// When it was redeemed, if it was.
    pub used_at: Option<UnixTime>,
    /// The grant issued from it, once redeemed.
    pub grant_id: Option<String>,
    /// The session's [`SessionRecord::generation`], handed on to the grant.
    pub generation: i64,
    /// The session's [`SessionRecord::amr`], handed on to the grant.
    pub amr: Amr,
    /// The request's `dpop_jkt` (RFC 9449 section 10): redeeming the code needs a DPoP
    /// proof by the key with this thumbprint.
    pub dpop_jkt: Option<String>,
}

/// A browser session at the authorization server (the sign-in cookie), stored by hash.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// SHA-256 of the cookie value.
    pub hash: TokenHash,
    /// The user signed in.
    pub user_id: String,
    /// Sign-in time (`auth_time`).
    pub created_at: UnixTime,
    /// End of the session.
    pub expires_at: UnixTime,
    /// Set once ended (logout, `sessions revoke`, user disabled).
    pub revoked_at: Option<UnixTime>,
    /// The user's [`UserRecord::generation`] read with the credentials at sign-in.
    pub generation: i64,
    /// How the user signed in.
    pub amr: Amr,
}

/// How the user signed in: RFC 8176 `amr` values (`pwd`; `pwd otp mfa` with a second
/// factor), kept from the browser session to its codes and grants, so every token of a
/// grant, refreshes too, tells the sign-in it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amr(Vec<String>);

impl Amr {
    /// A password alone.
    pub fn password() -> Self {
        Amr(vec!["pwd".into()])
    }

    /// A password and a one-time code (TOTP or recovery code).
    pub fn password_and_otp() -> Self {
        Amr(vec!["pwd".into(), "otp".into(), "mfa".into()])
    }

    /// A password and a recovery code: a second factor (`mfa`), but not a one-time
    /// password from a device (RFC 8176 has no value for a recovery code; `otp` would claim
    /// the authenticator app was used).
    pub fn password_and_recovery_code() -> Self {
        Amr(vec!["pwd".into(), "mfa".into()])
    }

    /// A passkey as the second factor after a password: `hwk` (a proof of possession of
    /// a key held by the authenticator; RFC 8176 section 2) and `mfa`.
    pub fn password_and_passkey() -> Self {
        Amr(vec!["pwd".into(), "hwk".into(), "mfa".into()])
    }

    /// A passkey alone (passwordless) whose authenticator verified the user (PIN or
    /// biometrics, the UV flag, which the ceremony requires): `hwk`, `user` and `mfa`
    /// (possession plus the verification the authenticator did).
    pub fn passkey_alone() -> Self {
        Amr(vec!["hwk".into(), "user".into(), "mfa".into()])
    }

    /// True when a passkey (`hwk`) was one of the factors: phishing-resistant.
    pub fn has_passkey(&self) -> bool {
        self.0.iter().any(|v| v == "hwk")
    }

    /// The values, in order.
    pub fn values(&self) -> &[String] {
        &self.0
    }

    /// True when more than one factor was used (`mfa`).
    pub fn is_mfa(&self) -> bool {
        self.0.iter().any(|v| v == "mfa")
    }

    /// The stored form: space-separated.
    pub(crate) fn to_db(&self) -> String {
        self.0.join(" ")
    }

    /// From the stored form.
    pub(crate) fn from_db(s: &str) -> Self {
        Amr(s.split_whitespace().map(str::to_owned).collect())
    }
}

/// A user's TOTP factor (RFC 6238). The secret is sealed before it gets here.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// The user it belongs to.
    pub user_id: String,
    /// The shared secret, sealed with the factor key (derived from the master key).
    pub sealed_secret: Vec<u8>,
    /// The last time step accepted; that step and earlier ones are refused (replay).
    pub last_step: Option<i64>,
    /// When enrolment began.
    pub created_at: UnixTime,
    /// When enrolment was confirmed by a first code; `None` until then (not yet asked for).
    pub confirmed_at: Option<UnixTime>,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("user_id", &self.user_id)
            .field("sealed_secret", &"<sealed>")
            .field("last_step", &self.last_step)
            .field("created_at", &self.created_at)
            .field("confirmed_at", &self.confirmed_at)
            .finish()
    }
}

/// A browser sign-in whose password was accepted and whose second factor (or enrolment)
/// is still due, by the hash of its cookie. Never holds a password or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    /// SHA-256 of the cookie value.
    pub hash: TokenHash,
    /// The user whose password was accepted.
    pub user_id: String,
    /// The user's [`UserRecord::generation`] read with the password.
    pub generation: i64,
    /// When the password was accepted.
    pub auth_time: UnixTime,
    /// The end of the pending state (a few minutes).
    pub expires_at: UnixTime,
    /// What the sign-in is for: enrolling a first factor, or giving the one enrolled.
    pub purpose: PendingPurpose,
}

/// What a pending sign-in is for, decided when the password was accepted. Only an
/// `Enrol` sign-in of a user who still has no factor may enrol one: the password alone
/// never adds a factor to an account that has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingPurpose {
    /// The user has no factor: the enrolment page (TOTP or a first passkey).
    Enrol,
    /// The user has a factor: the code page (a code or a passkey).
    Verify,
    /// A step-up from a live session, no password typed: the passkey only (a code here
    /// would start a session stamped as a password sign-in that never was).
    StepUp,
}

impl PendingPurpose {
    /// The stored form.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PendingPurpose::Enrol => "enrol",
            PendingPurpose::Verify => "verify",
            PendingPurpose::StepUp => "step_up",
        }
    }

    /// The stored form read back; anything unknown is `StepUp` (the narrowest).
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "enrol" => PendingPurpose::Enrol,
            "verify" => PendingPurpose::Verify,
            _ => PendingPurpose::StepUp,
        }
    }

    /// Whether a TOTP or recovery code counts on this sign-in (not on a step-up).
    pub(crate) fn takes_codes(self) -> bool {
        self != PendingPurpose::StepUp
    }
}

/// A registered passkey (WebAuthn credential). The credential id is unique across users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// The credential id the authenticator chose (raw bytes).
    pub credential_id: Vec<u8>,
    /// The user it belongs to.
    pub user_id: String,
    /// A label for listings ("passkey 1", ...).
    pub label: String,
    /// webauthn-rs's serialised `Passkey`: the public key, signature counter and backup
    /// flags (public data; no secret).
    pub passkey: String,
    /// When it was registered.
    pub created_at: UnixTime,
    /// When it last completed a sign-in.
    pub last_used_at: Option<UnixTime>,
    /// When its signature counter went back (a cloned authenticator): refused from then
    /// on, until the user's factors are reset.
    pub suspect_at: Option<UnixTime>,
}

/// What a WebAuthn ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a passkey.
    Register,
    /// A passkey as the second factor of a pending sign-in.
    SecondFactor,
    /// A passkey alone (passwordless sign-in).
    FirstFactor,
}

impl CeremonyKind {
    /// The stored form.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Register => "register",
            CeremonyKind::SecondFactor => "second",
            CeremonyKind::FirstFactor => "first",
        }
    }
}

/// The server-side state of a WebAuthn ceremony (its challenge), by the hash of a random
/// id the page carries; bound to a user and, but for a passwordless sign-in, to the
/// pending sign-in or session it belongs to. Taken once; dead after `expires_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct CeremonyRecord {
    /// SHA-256 of the ceremony id.
    pub hash: TokenHash,
    /// What it is for.
    pub kind: CeremonyKind,
    /// The user it is for.
    pub user_id: String,
    /// The hash of the pending sign-in (second factor, registration during sign-in) or
    /// session (registration while signed in) it belongs to.
    pub bound_to: Option<TokenHash>,
    /// webauthn-rs's serialised ceremony state (holds the challenge).
    pub state: String,
    /// The end of the ceremony.
    pub expires_at: UnixTime,
}

impl std::fmt::Debug for CeremonyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeremonyRecord")
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("state", &"<challenge>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_stands_only_while_its_user_does() {
        assert!(GrantOwner::Client.allows(0));
        assert!(!GrantOwner::Removed.allows(0));
        let user = GrantOwner::User {
            disabled: false,
            generation: 2,
        };
        assert!(user.allows(2));
        assert!(!user.allows(1), "signed in before the last revoke-all");
        assert!(!user.allows(3), "never handed out; refused all the same");
        let disabled = GrantOwner::User {
            disabled: true,
            generation: 0,
        };
        assert!(!disabled.allows(0));
        assert_eq!(
            GrantOwner::from_row(Some("u1"), Some((false, 4))),
            GrantOwner::User {
                disabled: false,
                generation: 4
            }
        );
        assert_eq!(GrantOwner::from_row(Some("u1"), None), GrantOwner::Removed);
        assert_eq!(GrantOwner::from_row(None, None), GrantOwner::Client);
    }
}
