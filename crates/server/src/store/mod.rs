//! Storage: one narrow trait per kind of record, keyed by ids or by a secret's hash, and
//! backend-neutral (no SQL dialect leaks through). [`sqlite`] (the embedded default) and
//! [`postgres`] (for several replicas) implement them all, sharing the statements they
//! run alike (`sql`, written once); [`open`] picks one.
//!
//! Every method that changes more than one row does so in one transaction, so bad input
//! or a crash never leaves half a change behind.

#[cfg(test)]
pub(crate) mod faulty;
mod feed_signal;
pub mod postgres;
mod records;
mod sql;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use tessera_token::{TokenHash, UnixTime};

pub use records::{
    Amr, AuditEvent, AuthCodeRecord, CLIENT_SID_PREFIX, CeremonyKind, CeremonyRecord, ClientRecord,
    GrantOwner, GrantRecord, GrantType, KeyChange, KeyState, MINTED_SID_PREFIX, NewRefreshToken,
    PasskeyRecord, PendingPurpose, PendingSignIn, RefreshRecord, RevocationEntry, Revoked,
    SessionRecord, SigningKeyRecord, TotpRecord, UserRecord, client_credentials_sid,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A record with this name or id already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The backend failed (I/O, corruption, pool closed). Details go to the log only.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// What [`Store::purge_expired`] deletes, and how much per statement.
#[derive(Debug, Clone, Copy)]
pub struct Purge {
    /// Anything whose lifetime ended before this goes.
    pub now: UnixTime,
    /// Grants, sessions and codes revoked or ended before this go.
    pub revoked_before: UnixTime,
    /// Audit events recorded before this go.
    pub audit_before: UnixTime,
    /// Most rows one statement deletes; the janitor repeats it until less than this is due.
    pub batch: u32,
}

/// The janitor's batch size: small enough that each delete is brief.
pub const PURGE_BATCH: u32 = 1000;

/// Outcome of trying to use a refresh token once (RFC 6749 section 6 with rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// This caller used the token first; the successor has been stored.
    Rotated,
    /// The token had already been used, at this time.
    AlreadyUsed {
        /// When it was first used.
        used_at: UnixTime,
    },
    /// No such token, or its grant is revoked.
    Unknown,
}

/// OAuth clients (RFC 6749 section 2).
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client; its name and id must be new.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    /// The client with this `client_id`.
    async fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// The client with this id or, failing that, this name.
    async fn client_by_id_or_name(&self, key: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// All clients, by name.
    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// Replaces a confidential client's secret hash.
    async fn set_client_secret(&self, id: &str, hash: &TokenHash) -> Result<(), StoreError>;
    /// Sets a client's `id_token_signed_response_alg`; nothing else of it changes.
    async fn set_client_id_token_alg(
        &self,
        id: &str,
        alg: tessera_token::Algorithm,
    ) -> Result<(), StoreError>;
    /// Sets whether the client must send a DPoP proof with every token request (RFC 9449
    /// section 5.2 `dpop_bound_access_tokens`); nothing else of it changes.
    async fn set_client_dpop_bound(&self, id: &str, required: bool) -> Result<(), StoreError>;
    /// Removes a client, revokes its grants and records each grant's `sid` in the feed.
    async fn remove_client(&self, id: &str, revoked: Revoked) -> Result<(), StoreError>;
}

/// Resource owners (RFC 6749 section 4.3).
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user; the name must be new.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// The user with this login name.
    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;
    /// The user with this id (`sub`).
    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    /// All users, by name.
    async fn users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Sets a new password hash (PHC string). With `evict`, the same transaction also
    /// revokes everything the user holds, as [`UserStore::disable_user`] does.
    async fn set_password(
        &self,
        name: &str,
        hash: &str,
        evict: Option<Revoked>,
    ) -> Result<(), StoreError>;
    /// Disables a user and, in the same transaction, revokes everything they hold: their
    /// live grants (recording each `sid` in the feed), browser sessions and unredeemed
    /// authorization codes, and moves them to their next generation, so nothing stamped
    /// with an earlier one stands again ([`GrantOwner::allows`]).
    async fn disable_user(&self, name: &str, revoked: Revoked) -> Result<(), StoreError>;
    /// Enables a user again; returns their id. What was revoked stays revoked (their
    /// generation does not go back).
    async fn enable_user(&self, name: &str) -> Result<String, StoreError>;
    /// Revokes everything the user holds, as [`UserStore::disable_user`] does, and deletes
    /// the user, in one transaction; returns the removed user's id (never handed out again:
    /// ids are random).
    async fn remove_user(&self, name: &str, revoked: Revoked) -> Result<String, StoreError>;
}

/// Grants (token families) and their refresh tokens, stored by hash.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new grant and, when given, its first refresh token, if its user stands
    /// behind it ([`GrantOwner::allows`] with its `generation`, checked in the same
    /// transaction against a concurrent disable, remove or revoke-all); false, and nothing
    /// stored, when not.
    async fn insert_grant(
        &self,
        grant: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<bool, StoreError>;
    /// The grant with this id.
    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError>;
    /// The grant with this id and the standing of its user, read by one query.
    async fn grant_owner(&self, id: &str) -> Result<Option<(GrantRecord, GrantOwner)>, StoreError>;
    /// A refresh token by its hash, with its grant (and, in the record, the standing of
    /// the grant's user, read by the same query).
    async fn refresh_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError>;
    /// Marks `parent` used at `now` if nobody has, and stores `successor`; one winner
    /// among any number of concurrent callers (RFC 6749 section 10.4, rotation). With
    /// `bind`, the winner also binds the family to that DPoP key thumbprint if it is
    /// unbound (RFC 9449 section 5), in the same transaction; a bound family keeps its key.
    async fn rotate_refresh_token(
        &self,
        parent: &TokenHash,
        successor: &NewRefreshToken,
        now: UnixTime,
        bind: Option<&str>,
    ) -> Result<RotateOutcome, StoreError>;
    /// Revokes a grant (the whole family) and records its `sid` in the feed. Idempotent.
    async fn revoke_grant(&self, id: &str, revoked: Revoked) -> Result<bool, StoreError>;
    /// Live (unrevoked, unexpired) grants of a user.
    async fn user_grants(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<GrantRecord>, StoreError>;
    /// Sets the network and user agent of the grant's latest token request and returns
    /// the previous ones (`None` when the grant does not exist).
    async fn swap_grant_context(
        &self,
        id: &str,
        context: &GrantContext,
    ) -> Result<Option<GrantContext>, StoreError>;
    /// Revokes all live grants of a user, ends their browser sessions, deletes their
    /// unredeemed authorization codes and moves them to their next generation, in one
    /// transaction; returns how many grants.
    async fn revoke_user_grants(&self, user_id: &str, revoked: Revoked) -> Result<u64, StoreError>;
}

/// Outcome of redeeming an authorization code once (RFC 6749 section 4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemOutcome {
    /// This caller redeemed it first; the grant and its refresh token are stored.
    Redeemed,
    /// It had been redeemed before; `grant_id` is the grant issued then (to revoke).
    AlreadyUsed {
        /// The grant issued from the first redemption.
        grant_id: Option<String>,
    },
    /// No such code, or it has expired, or its user no longer stands behind the grant
    /// ([`GrantOwner::allows`]: removed, disabled or revoked everything since the sign-in
    /// the code comes from).
    Unknown,
}

/// Authorization codes, stored by hash, single-use.
#[async_trait]
pub trait AuthCodeStore: Send + Sync {
    /// Stores a new code if its user stands behind it ([`GrantOwner::allows`] with its
    /// `generation`, checked in the same transaction against a concurrent disable, remove
    /// or revoke-all); false, and nothing stored, when not.
    async fn insert_auth_code(&self, code: &AuthCodeRecord) -> Result<bool, StoreError>;
    /// The code with this hash, used or not, expired or not.
    async fn auth_code(&self, hash: &TokenHash) -> Result<Option<AuthCodeRecord>, StoreError>;
    /// In one transaction: checks that `grant`'s user stands behind it (holding the
    /// user's row against a concurrent disable, remove or revoke-all), marks the code used
    /// at `now` (if nobody has and it has not expired), records `grant` as issued from it
    /// and stores `grant` with its first refresh token. One winner among any number of
    /// concurrent callers.
    async fn redeem_auth_code(
        &self,
        hash: &TokenHash,
        now: UnixTime,
        grant: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<RedeemOutcome, StoreError>;
}

/// Browser sessions at the authorization server, stored by the hash of the cookie.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The session with this hash, if it is live at `now`: unrevoked, unexpired, its user
    /// enabled and still at the session's generation.
    async fn live_session(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Ends one session (logout); true if it was live.
    async fn end_session(&self, hash: &TokenHash, now: UnixTime) -> Result<bool, StoreError>;
}

/// Second factors (TOTP, recovery codes) and the browser sign-ins waiting for one.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// Stores `totp` unconfirmed, replacing an unconfirmed one of its user; false, and
    /// nothing stored, when the user has a confirmed one.
    async fn begin_totp(&self, totp: &TotpRecord) -> Result<bool, StoreError>;
    /// The user's TOTP factor, confirmed or not.
    async fn totp(&self, user_id: &str) -> Result<Option<TotpRecord>, StoreError>;
    /// Confirms the user's unconfirmed factor with its first accepted `step` if its secret
    /// is still `sealed_secret` and, in the same transaction, replaces their recovery codes
    /// with `codes` (hashes) and does their revoke-all (the next generation; every session
    /// and grant had without the factor ends); false, and nothing changed, when there is no
    /// such unconfirmed factor (confirmed meanwhile, reset, replaced by another begin).
    async fn confirm_totp(
        &self,
        user_id: &str,
        sealed_secret: &[u8],
        step: i64,
        codes: &[TokenHash],
        revoked: Revoked,
    ) -> Result<bool, StoreError>;
    /// Records `step` as the last used step of the user's confirmed factor if it is later
    /// than the one recorded (RFC 6238 section 5.2: a code is accepted once); one winner
    /// among any number of concurrent callers.
    async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError>;
    /// Marks the user's unused recovery code with this hash used; one winner.
    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// How many unused recovery codes the user has.
    async fn recovery_codes_left(&self, user_id: &str) -> Result<u32, StoreError>;
    /// Removes the user's factors, recovery codes and pending sign-ins and revokes
    /// everything they hold ([`UserStore::disable_user`]'s "revoke all"), in one
    /// transaction; false (and nothing revoked) when there is no such user.
    async fn reset_mfa(&self, user_id: &str, revoked: Revoked) -> Result<bool, StoreError>;
    /// Stores a pending sign-in.
    async fn insert_pending(&self, pending: &PendingSignIn) -> Result<(), StoreError>;
    /// The pending sign-in with this hash if it is live at `now`: unexpired, its user
    /// enabled and still at its generation.
    async fn pending(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<PendingSignIn>, StoreError>;
    /// Deletes the pending sign-in; true for the one caller that deleted it (single use).
    async fn take_pending(&self, hash: &TokenHash) -> Result<bool, StoreError>;
    /// Stores a passkey and, in the same transaction, deletes the user's unconfirmed TOTP
    /// enrolment and does their revoke-all (a new factor ends what was had without it);
    /// false, and nothing changed, when the
    /// credential id is registered already (to this user or another).
    async fn add_passkey(
        &self,
        passkey: &PasskeyRecord,
        revoked: Revoked,
    ) -> Result<bool, StoreError>;
    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user_id: &str) -> Result<Vec<PasskeyRecord>, StoreError>;
    /// Replaces the stored `passkey` of the credential after a use (new counter, backup
    /// flags) if it is still `old` (one winner among concurrent uses).
    async fn update_passkey(
        &self,
        credential_id: &[u8],
        old: &str,
        new: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Marks the credential suspect (its counter went back); true for the call that marked
    /// it, false when it was already (or is unknown).
    async fn mark_passkey_suspect(
        &self,
        credential_id: &[u8],
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Stores a ceremony's state.
    async fn insert_ceremony(&self, ceremony: &CeremonyRecord) -> Result<(), StoreError>;
    /// Deletes the user's ceremonies of `kind` but the `keep` latest to expire (the oldest
    /// go first; among ceremonies begun in the same second, which stay is arbitrary).
    async fn trim_ceremonies(
        &self,
        user_id: &str,
        kind: CeremonyKind,
        keep: u32,
    ) -> Result<(), StoreError>;
    /// Deletes the ceremony with this hash and returns it if it was of `kind` and live at
    /// `now`; one winner among concurrent callers, and a ceremony is gone after any take.
    async fn take_ceremony(
        &self,
        hash: &TokenHash,
        kind: CeremonyKind,
        now: UnixTime,
    ) -> Result<Option<CeremonyRecord>, StoreError>;
}

/// The revocation feed (docs/revocation-feed.md).
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Adds a revoked access token (`jti`) to the feed; `false`, and nothing written (no
    /// row, no cursor step), when it is in the feed already.
    async fn revoke_jti(&self, jti: &str, exp: UnixTime, now: UnixTime)
    -> Result<bool, StoreError>;
    /// Entries after cursor `after` (0 = from the start) whose `exp` is not before `now`,
    /// at most `limit`, in revocation order.
    async fn revocations_after(
        &self,
        after: i64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEntry>, StoreError>;
    /// The highest cursor ever handed out (0 when none).
    async fn last_revocation_seq(&self) -> Result<i64, StoreError>;
    /// True when `jti` or `sid` is in the feed.
    async fn is_revoked(&self, jti: Option<&str>, sid: Option<&str>) -> Result<bool, StoreError>;
    /// A receiver woken after commits that may have added feed entries: this process's
    /// (SQLite), or any replica's (PostgreSQL `LISTEN`/`NOTIFY`), and whenever a wake-up may
    /// have been lost (a dropped listening connection). A wake-up carries no data and may
    /// come with nothing new: it says "read from your cursor". Wake-ups that come while
    /// the receiver is busy merge into one. Called inside the tokio runtime.
    fn feed_changes(&self) -> tokio::sync::watch::Receiver<()>;
}

/// Signing keys, private halves sealed by the caller before they get here.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key.
    async fn insert_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Stores `key` only if no key of its algorithm is active yet; false when one is
    /// (nothing stored). Atomic across processes, so replicas starting together on an
    /// empty database create one first key between them.
    async fn insert_first_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError>;
    /// All keys, oldest first.
    async fn keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Applies lifecycle changes at `now`, all in one transaction.
    async fn apply_key_changes(
        &self,
        changes: &[KeyChange],
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// Deletes the key `kid` only if it is still published (it never signed); false when
    /// there is no such key or it is active or retired (nothing deleted).
    async fn remove_published_key(&self, kid: &str) -> Result<bool, StoreError>;
    /// The master-key check value and when it was recorded, if one was.
    async fn master_key_check(&self) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError>;
    /// Stores `value` as the master-key check unless one is stored already; returns the
    /// value stored afterwards (the earlier one wins a race).
    async fn init_master_key_check(
        &self,
        value: &[u8],
        now: UnixTime,
    ) -> Result<Vec<u8>, StoreError>;
}

/// The audit log. Events never carry a token, secret or password.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one event.
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// The latest `limit` events, newest first.
    async fn recent_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        self.query_events(&AuditQuery {
            limit,
            ..AuditQuery::default()
        })
        .await
    }
    /// The latest events matching `query`, newest first.
    async fn query_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Where a grant's latest token request came from: the peer's network (/24 for IPv4,
/// /48 for IPv6) and its `User-Agent` (truncated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantContext {
    /// The network, e.g. `192.0.2.0/24`.
    pub net: Option<String>,
    /// The user agent.
    pub agent: Option<String>,
}

/// A filter over the audit log (`tessera audit`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events of this user id.
    pub user_id: Option<String>,
    /// Only events at or after this time.
    pub since: Option<UnixTime>,
    /// At most this many (the newest).
    pub limit: u32,
}

/// Failed-login counters for throttling, in the store so replicas share them.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts one failed login for `key` and returns the count in the current window; the
    /// count restarts once `window` has passed since the window's first failure.
    async fn record_login_failure(
        &self,
        key: &str,
        now: UnixTime,
        window: std::time::Duration,
    ) -> Result<u32, StoreError>;
    /// Refuses logins for `key` until `until`.
    async fn block_login(&self, key: &str, until: UnixTime) -> Result<(), StoreError>;
    /// Until when `key` is blocked, if it is at `now`.
    async fn login_blocked_until(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError>;
    /// Forgets the failures of `key` (after a successful login).
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;
    /// Reserves one login attempt for `key` before its password is checked, in one atomic
    /// step: refused (`None`, nothing counted) while `key` is blocked at `now`; otherwise
    /// counted like [`record_login_failure`](Self::record_login_failure) and the count in
    /// the window returned. When that count reaches `threshold` the key is also blocked
    /// until at least `block_until`, so concurrent attempts past the threshold are refused.
    async fn reserve_login_attempt(
        &self,
        key: &str,
        now: UnixTime,
        window: std::time::Duration,
        threshold: u32,
        block_until: UnixTime,
    ) -> Result<Option<u32>, StoreError>;
    /// Gives back one reservation of `key` (the attempt was not evaluated, or succeeded
    /// and the failures of `key` are kept).
    async fn release_login_attempt(&self, key: &str) -> Result<(), StoreError>;
    /// Sets the block of `key` to end at `until`, shorter or longer than the one in
    /// place (a hold becoming a block, or lifted); nothing when `key` has no row.
    async fn replace_login_block(&self, key: &str, until: UnixTime) -> Result<(), StoreError>;
}

/// Everything the server needs from a backend.
#[async_trait]
pub trait Store:
    std::fmt::Debug
    + ClientStore
    + UserStore
    + GrantStore
    + RevocationStore
    + KeyStore
    + AuditStore
    + ThrottleStore
    + AuthCodeStore
    + SessionStore
    + MfaStore
{
    /// Cheap liveness check of the backend (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// The database server's clock, for `tessera doctor`'s skew check; `None` when the
    /// database runs in this process (SQLite), so there is no other clock.
    async fn database_time(&self) -> Result<Option<std::time::SystemTime>, StoreError> {
        Ok(None)
    }
    /// The janitor: deletes what can no longer matter (feed entries past their `exp`,
    /// expired refresh tokens and grants, grants revoked before `revoked_before`, stale
    /// login-failure counters, authorization codes and browser sessions expired or ended
    /// before `revoked_before`, audit events older than `audit_before`); returns how many
    /// rows went. Each statement deletes at most `batch` rows and commits on its own, so
    /// no lock is held for long however much is due.
    async fn purge_expired(&self, purge: &Purge) -> Result<u64, StoreError>;
    /// Closes the connections (SQLite checkpoints its WAL); later calls fail.
    async fn close(&self);
}

/// Opens the store `database` names: a `postgres://` or `postgresql://` URL opens
/// PostgreSQL; `None` opens (creating if needed) SQLite in `data_dir`. Either way the
/// schema is migrated before this returns.
pub async fn open(database: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    match database {
        None => Ok(Arc::new(sqlite::SqliteStore::open(data_dir).await?)),
        Some(url) if is_postgres_url(url) => Ok(Arc::new(postgres::PgStore::connect(url).await?)),
        Some(_) => Err(StoreError::Backend(
            "the database URL must start with postgres:// or postgresql://; leave it unset for SQLite in the data directory".into(),
        )),
    }
}

/// True for the URL schemes [`open`] hands to PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[cfg(test)]
pub(crate) mod tests;
