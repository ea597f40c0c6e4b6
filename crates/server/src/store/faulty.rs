//! Test only: a store decorator that injects the failures a network or database outage
//! causes into an otherwise real store (every call goes to the inner store).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tessera_token::{TokenHash, UnixTime};

use super::*;

/// Wraps a real store; each fault is off until a test turns it on.
#[derive(Debug)]
pub(crate) struct FaultyStore {
    inner: Arc<dyn Store>,
    /// Once: the next rotation runs (and commits) in the inner store, then reports a
    /// backend error, as when the connection dies before COMMIT's acknowledgement.
    pub(crate) lose_next_rotation_ack: AtomicBool,
    /// Once: the next rotation fails before reaching the inner store (nothing committed).
    pub(crate) fail_next_rotation: AtomicBool,
    /// While on: recording a grant's context fails.
    pub(crate) fail_context_swaps: AtomicBool,
    /// While on: looking a user up by name fails (the database went away mid-login).
    pub(crate) fail_user_lookups: AtomicBool,
    /// While on: storing a signing key fails (nothing committed).
    pub(crate) fail_key_inserts: AtomicBool,
    /// While on: forgetting login failures (a success's settling) stalls 300 ms first,
    /// counted in `failure_clears_stalled` (a client may go away meanwhile).
    pub(crate) stall_failure_clears: AtomicBool,
    /// Once: the next forgetting of login failures fails (nothing written).
    pub(crate) fail_next_failure_clear: AtomicBool,
    /// Once: the next login block written (not a hold lifted) fails (nothing written).
    pub(crate) fail_next_block: AtomicBool,
    /// How many clears stalled.
    pub(crate) failure_clears_stalled: std::sync::atomic::AtomicU64,
    /// Once: the next read of the feed's counter announces itself on `feed_counter_held`
    /// and waits for `release_feed_counter` (a reader slow at the worst moment).
    pub(crate) hold_next_feed_counter: AtomicBool,
    pub(crate) feed_counter_held: tokio::sync::Notify,
    pub(crate) release_feed_counter: tokio::sync::Notify,
    /// Reads of the feed's entries so far (`revocations_after`).
    pub(crate) feed_reads: std::sync::atomic::AtomicU64,
    /// While set, every read of the feed (entries and counter) fails.
    pub(crate) fail_feed_reads: AtomicBool,
}

impl FaultyStore {
    /// `inner`, with no fault on.
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            lose_next_rotation_ack: AtomicBool::new(false),
            fail_next_rotation: AtomicBool::new(false),
            fail_context_swaps: AtomicBool::new(false),
            fail_user_lookups: AtomicBool::new(false),
            fail_key_inserts: AtomicBool::new(false),
            stall_failure_clears: AtomicBool::new(false),
            fail_next_failure_clear: AtomicBool::new(false),
            fail_next_block: AtomicBool::new(false),
            failure_clears_stalled: std::sync::atomic::AtomicU64::new(0),
            hold_next_feed_counter: AtomicBool::new(false),
            feed_counter_held: tokio::sync::Notify::new(),
            release_feed_counter: tokio::sync::Notify::new(),
            feed_reads: std::sync::atomic::AtomicU64::new(0),
            fail_feed_reads: AtomicBool::new(false),
        }
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::Backend(format!("injected fault: {what}"))
}

#[async_trait]
impl GrantStore for FaultyStore {
    async fn rotate_refresh_token(
        &self,
        parent: &TokenHash,
        successor: &NewRefreshToken,
        now: UnixTime,
        bind: Option<&str>,
    ) -> Result<RotateOutcome, StoreError> {
        if self.fail_next_rotation.swap(false, Ordering::SeqCst) {
            return Err(injected("connection refused"));
        }
        let outcome = self
            .inner
            .rotate_refresh_token(parent, successor, now, bind)
            .await?;
        if self.lose_next_rotation_ack.swap(false, Ordering::SeqCst) {
            return Err(injected("connection closed after COMMIT"));
        }
        Ok(outcome)
    }
    async fn swap_grant_context(
        &self,
        id: &str,
        context: &GrantContext,
    ) -> Result<Option<GrantContext>, StoreError> {
        if self.fail_context_swaps.load(Ordering::SeqCst) {
            return Err(injected("connection refused"));
        }
        self.inner.swap_grant_context(id, context).await
    }
    async fn insert_grant(
        &self,
        grant: &GrantRecord,
        first: Option<&NewRefreshToken>,
    ) -> Result<bool, StoreError> {
        self.inner.insert_grant(grant, first).await
    }
    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.inner.grant(id).await
    }
    async fn grant_owner(&self, id: &str) -> Result<Option<(GrantRecord, GrantOwner)>, StoreError> {
        self.inner.grant_owner(id).await
    }
    async fn refresh_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError> {
        self.inner.refresh_token(hash).await
    }
    async fn revoke_grant(&self, id: &str, revoked: Revoked) -> Result<bool, StoreError> {
        self.inner.revoke_grant(id, revoked).await
    }
    async fn user_grants(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        self.inner.user_grants(user_id, now).await
    }
    async fn revoke_user_grants(&self, user_id: &str, revoked: Revoked) -> Result<u64, StoreError> {
        self.inner.revoke_user_grants(user_id, revoked).await
    }
}

/// Implements `$trait` for [`FaultyStore`] by handing every call to the inner store.
macro_rules! forward {
    ($trait:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* }) => {
        #[async_trait]
        impl $trait for FaultyStore {
            $(async fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.inner.$name($($arg),*).await
            })*
        }
    };
}

forward!(ClientStore {
    fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError>;
    fn client_by_id_or_name(&self, key: &str) -> Result<Option<ClientRecord>, StoreError>;
    fn clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    fn set_client_secret(&self, id: &str, hash: &TokenHash) -> Result<(), StoreError>;
    fn set_client_id_token_alg(&self, id: &str, alg: tessera_token::Algorithm) -> Result<(), StoreError>;
    fn set_client_dpop_bound(&self, id: &str, required: bool) -> Result<(), StoreError>;
    fn remove_client(&self, id: &str, revoked: Revoked) -> Result<(), StoreError>;
});

#[async_trait]
impl UserStore for FaultyStore {
    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        if self.fail_user_lookups.load(Ordering::SeqCst) {
            return Err(injected("connection refused"));
        }
        self.inner.user_by_name(name).await
    }
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.inner.insert_user(user).await
    }
    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.user_by_id(id).await
    }
    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.inner.users().await
    }
    async fn set_password(
        &self,
        name: &str,
        hash: &str,
        evict: Option<Revoked>,
    ) -> Result<(), StoreError> {
        self.inner.set_password(name, hash, evict).await
    }
    async fn disable_user(&self, name: &str, revoked: Revoked) -> Result<(), StoreError> {
        self.inner.disable_user(name, revoked).await
    }
    async fn enable_user(&self, name: &str) -> Result<String, StoreError> {
        self.inner.enable_user(name).await
    }
    async fn remove_user(&self, name: &str, revoked: Revoked) -> Result<String, StoreError> {
        self.inner.remove_user(name, revoked).await
    }
}

forward!(AuthCodeStore {
    fn insert_auth_code(&self, code: &AuthCodeRecord) -> Result<bool, StoreError>;
    fn auth_code(&self, hash: &TokenHash) -> Result<Option<AuthCodeRecord>, StoreError>;
    fn redeem_auth_code(
        &self,
        hash: &TokenHash,
        now: UnixTime,
        grant: &GrantRecord,
        first: Option<&NewRefreshToken>
    ) -> Result<RedeemOutcome, StoreError>;
});

forward!(SessionStore {
    fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    fn live_session(&self, hash: &TokenHash, now: UnixTime) -> Result<Option<SessionRecord>, StoreError>;
    fn end_session(&self, hash: &TokenHash, now: UnixTime) -> Result<bool, StoreError>;
});

forward!(MfaStore {
    fn begin_totp(&self, totp: &TotpRecord) -> Result<bool, StoreError>;
    fn totp(&self, user_id: &str) -> Result<Option<TotpRecord>, StoreError>;
    fn confirm_totp(&self, user_id: &str, sealed_secret: &[u8], step: i64, codes: &[TokenHash], revoked: Revoked) -> Result<bool, StoreError>;
    fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError>;
    fn use_recovery_code(&self, user_id: &str, hash: &TokenHash, now: UnixTime) -> Result<bool, StoreError>;
    fn recovery_codes_left(&self, user_id: &str) -> Result<u32, StoreError>;
    fn reset_mfa(&self, user_id: &str, revoked: Revoked) -> Result<bool, StoreError>;
    fn insert_pending(&self, pending: &PendingSignIn) -> Result<(), StoreError>;
    fn pending(&self, hash: &TokenHash, now: UnixTime) -> Result<Option<PendingSignIn>, StoreError>;
    fn take_pending(&self, hash: &TokenHash) -> Result<bool, StoreError>;
    fn add_passkey(&self, passkey: &PasskeyRecord, revoked: Revoked) -> Result<bool, StoreError>;
    fn passkeys(&self, user_id: &str) -> Result<Vec<PasskeyRecord>, StoreError>;
    fn update_passkey(&self, credential_id: &[u8], old: &str, new: &str, now: UnixTime) -> Result<bool, StoreError>;
    fn mark_passkey_suspect(&self, credential_id: &[u8], now: UnixTime) -> Result<bool, StoreError>;
    fn insert_ceremony(&self, ceremony: &CeremonyRecord) -> Result<(), StoreError>;
    fn trim_ceremonies(&self, user_id: &str, kind: CeremonyKind, keep: u32) -> Result<(), StoreError>;
    fn take_ceremony(&self, hash: &TokenHash, kind: CeremonyKind, now: UnixTime) -> Result<Option<CeremonyRecord>, StoreError>;
});

#[async_trait]
impl RevocationStore for FaultyStore {
    async fn revoke_jti(
        &self,
        jti: &str,
        exp: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.inner.revoke_jti(jti, exp, now).await
    }
    async fn revocations_after(
        &self,
        after: i64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        self.feed_reads.fetch_add(1, Ordering::SeqCst);
        if self.fail_feed_reads.load(Ordering::SeqCst) {
            return Err(injected("feed read"));
        }
        self.inner.revocations_after(after, limit, now).await
    }
    async fn last_revocation_seq(&self) -> Result<i64, StoreError> {
        if self.fail_feed_reads.load(Ordering::SeqCst) {
            return Err(injected("feed counter read"));
        }
        if self.hold_next_feed_counter.swap(false, Ordering::SeqCst) {
            self.feed_counter_held.notify_one();
            self.release_feed_counter.notified().await;
        }
        self.inner.last_revocation_seq().await
    }
    async fn is_revoked(&self, jti: Option<&str>, sid: Option<&str>) -> Result<bool, StoreError> {
        self.inner.is_revoked(jti, sid).await
    }
    fn feed_changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.inner.feed_changes()
    }
}

#[async_trait]
impl KeyStore for FaultyStore {
    async fn insert_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        if self.fail_key_inserts.load(Ordering::SeqCst) {
            return Err(injected("connection refused"));
        }
        self.inner.insert_key(key).await
    }
    async fn insert_first_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError> {
        self.inner.insert_first_key(key).await
    }
    async fn keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.inner.keys().await
    }
    async fn apply_key_changes(
        &self,
        changes: &[crate::store::KeyChange],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.inner.apply_key_changes(changes, now).await
    }
    async fn remove_published_key(&self, kid: &str) -> Result<bool, StoreError> {
        self.inner.remove_published_key(kid).await
    }
    async fn master_key_check(&self) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        self.inner.master_key_check().await
    }
    async fn init_master_key_check(
        &self,
        value: &[u8],
        now: UnixTime,
    ) -> Result<Vec<u8>, StoreError> {
        self.inner.init_master_key_check(value, now).await
    }
}

forward!(AuditStore {
    fn record(&self, event: &AuditEvent) -> Result<(), StoreError>;
    fn query_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;
});

#[async_trait]
impl ThrottleStore for FaultyStore {
    async fn record_login_failure(
        &self,
        key: &str,
        now: UnixTime,
        window: std::time::Duration,
    ) -> Result<u32, StoreError> {
        self.inner.record_login_failure(key, now, window).await
    }
    async fn block_login(&self, key: &str, until: UnixTime) -> Result<(), StoreError> {
        self.inner.block_login(key, until).await
    }
    async fn login_blocked_until(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError> {
        self.inner.login_blocked_until(key, now).await
    }
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        if self.stall_failure_clears.load(Ordering::SeqCst) {
            self.failure_clears_stalled.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        if self.fail_next_failure_clear.swap(false, Ordering::SeqCst) {
            return Err(injected("clear_login_failures"));
        }
        self.inner.clear_login_failures(key).await
    }
    async fn reserve_login_attempt(
        &self,
        key: &str,
        now: UnixTime,
        window: std::time::Duration,
        threshold: u32,
        block_until: UnixTime,
    ) -> Result<Option<u32>, StoreError> {
        self.inner
            .reserve_login_attempt(key, now, window, threshold, block_until)
            .await
    }
    async fn release_login_attempt(&self, key: &str) -> Result<(), StoreError> {
        self.inner.release_login_attempt(key).await
    }
    async fn replace_login_block(&self, key: &str, until: UnixTime) -> Result<(), StoreError> {
        if until.secs() > 0 && self.fail_next_block.swap(false, Ordering::SeqCst) {
            return Err(injected("replace_login_block"));
        }
        self.inner.replace_login_block(key, until).await
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn database_time(&self) -> Result<Option<std::time::SystemTime>, StoreError> {
        self.inner.database_time().await
    }
    async fn purge_expired(&self, purge: &Purge) -> Result<u64, StoreError> {
        self.inner.purge_expired(purge).await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}
