//! Operator operations behind the `tessera` CLI (users, clients, sessions), run directly
//! against the local store. They validate their input and name the fix when it is wrong.

mod keys;
mod tokens;

pub use keys::KeyInfo;
pub use tokens::MintRequest;

use std::sync::Arc;

use serde_json::json;
use tessera_token::{Algorithm, OpaqueToken, Scope, SecretString, TokenKind, UnixTime};

use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::ids::random_id;
use crate::keys::Claim;
use crate::password;
use crate::secrets::{KeySource, Sealer};
use crate::store::{
    self, AuditEvent, ClientRecord, GrantRecord, GrantType, Revoked, Store, UserRecord,
};
use crate::{Error, prepare_data_dir};

/// A client to register.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Unique name.
    pub name: String,
    /// Grant types it may use.
    pub grant_types: Vec<GrantType>,
    /// Allowed scope, space-separated (may be empty).
    pub scope: String,
    /// Audiences of its access tokens.
    pub audience: Vec<String>,
    /// Redirect URIs of the authorization code flow (matched exactly).
    pub redirect_uris: Vec<String>,
    /// OpenID Connect `post_logout_redirect_uri`s.
    pub post_logout_redirect_uris: Vec<String>,
    /// A first-party client: no consent page.
    pub first_party: bool,
    /// A public client (no secret).
    pub public: bool,
    /// Algorithm of its access tokens; `None` for the server's default.
    pub signing_alg: Option<Algorithm>,
    /// Algorithm of its ID tokens (`id_token_signed_response_alg`); `None` for RS256.
    pub id_token_alg: Option<Algorithm>,
}

/// Handle on the local store for operator commands, opened with the deployment's
/// master key (checked against the store before anything is written).
#[derive(Debug)]
pub struct Admin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: ServerConfig,
    sealer: Sealer,
    master_source: KeySource,
}

impl Admin {
    /// Opens the store of `config` and checks the master key against it. Creates
    /// nothing and records nothing: a missing data directory (or, for SQLite, a directory
    /// without a database) is [`Error::Config`] naming the path looked for, and a store
    /// without a key check is only checked against its signing keys ([`Claim::VerifyOnly`]);
    /// only `serve`, [`Admin::init`] and [`Admin::open_to_seal`] record the check.
    pub async fn open(config: &ServerConfig) -> Result<Self, Error> {
        require_data_dir(config)?;
        Self::open_existing(config, Claim::VerifyOnly).await
    }

    /// [`Admin::open`] for the commands that seal keys (`keys rotate`, `keys import`):
    /// a store without a key check gets this key's recorded before anything is sealed
    /// with it.
    pub async fn open_to_seal(config: &ServerConfig) -> Result<Self, Error> {
        require_data_dir(config)?;
        Self::open_existing(config, Claim::Record).await
    }

    /// `tessera init`: creates the SQLite data directory and database and the master key
    /// if they do not exist, then opens them as [`Admin::open_to_seal`] does. On
    /// PostgreSQL nothing is created before the database's key check passes (the
    /// directory, for `master.key`, only when the database has no key yet). Running it
    /// again changes nothing.
    pub async fn init(config: &ServerConfig) -> Result<Self, Error> {
        if config.store.database.is_none() {
            prepare_data_dir(&config.store.data_dir)?;
        }
        Self::open_existing(config, Claim::Record).await
    }

    async fn open_existing(config: &ServerConfig, claim: Claim) -> Result<Self, Error> {
        let store = store::open(
            config.store.database.as_ref().map(|d| d.expose()),
            &config.store.data_dir,
        )
        .await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let unlocked =
            crate::keys::unlock(&*store, &config.store.data_dir, clock.now(), claim).await;
        let unlocked = match unlocked {
            Ok(found) => found,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        Ok(Admin {
            store,
            clock,
            config: config.clone(),
            sealer: unlocked.key.sealer()?,
            master_source: unlocked.source,
        })
    }

    /// Where the master key came from (`TESSERA_MASTER_KEY`, or the file, and whether it
    /// was created just now).
    pub fn master_key_source(&self) -> &KeySource {
        &self.master_source
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// The underlying store.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub(crate) fn revoked(&self) -> Revoked {
        let now = self.clock.now();
        Revoked {
            now,
            access_exp: now.saturating_add(self.config.tokens.access_token_ttl),
        }
    }

    pub(crate) async fn audit(
        &self,
        kind: &str,
        client: Option<&str>,
        user: Option<&str>,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            at: self.clock.now(),
            kind: kind.to_owned(),
            client_id: client.map(str::to_owned),
            user_id: user.map(str::to_owned),
            detail: detail.to_string(),
        };
        if let Err(e) = self.store.record(&event).await {
            tracing::warn!(error = %e, "could not record audit event");
        }
    }

    /// Adds a user with an Argon2id hash of `password`.
    pub async fn add_user(&self, name: &str, password: SecretString) -> Result<UserRecord, Error> {
        check_name("user", name)?;
        let user = UserRecord {
            id: random_id("u_")?,
            name: name.to_owned(),
            password_hash: password::hash_one(password).await?,
            disabled: false,
            created_at: self.clock.now(),
            generation: 0,
        };
        self.store
            .insert_user(&user)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => Error::Conflict(format!("user {name} already exists")),
                other => other,
            })?;
        self.audit("user.add", None, Some(&user.id), json!({ "name": name }))
            .await;
        Ok(user)
    }

    /// All users.
    pub async fn users(&self) -> Result<Vec<UserRecord>, Error> {
        Ok(self.store.users().await?)
    }

    /// Disables a user and, in one transaction, revokes everything they hold: grants
    /// (into the feed), browser sessions and unredeemed authorization codes.
    pub async fn disable_user(&self, name: &str) -> Result<(), Error> {
        self.store
            .disable_user(name, self.revoked())
            .await
            .map_err(|e| not_found(e, "user", name))?;
        let user_id = self
            .store
            .user_by_name(name)
            .await
            .ok()
            .flatten()
            .map(|u| u.id);
        self.audit(
            "user.disable",
            None,
            user_id.as_deref(),
            json!({ "name": name }),
        )
        .await;
        Ok(())
    }

    /// Enables a disabled user: they may sign in again; what was revoked stays revoked.
    pub async fn enable_user(&self, name: &str) -> Result<(), Error> {
        let id = self
            .store
            .enable_user(name)
            .await
            .map_err(|e| not_found(e, "user", name))?;
        self.audit("user.enable", None, Some(&id), json!({ "name": name }))
            .await;
        Ok(())
    }

    /// Removes a user: revokes everything they hold (as [`Admin::disable_user`] does) and
    /// deletes them, in one transaction; returns their former id (`sub`). A new user of
    /// the same name gets a new random id, so nothing issued to this one ever names them.
    pub async fn remove_user(&self, name: &str) -> Result<String, Error> {
        let id = self
            .store
            .remove_user(name, self.revoked())
            .await
            .map_err(|e| not_found(e, "user", name))?;
        self.audit("user.remove", None, Some(&id), json!({ "name": name }))
            .await;
        Ok(id)
    }

    /// Sets a new password. Unless `keep_sessions`, the same transaction revokes
    /// everything the user holds (as [`Admin::disable_user`] does, without disabling), so
    /// a password changed after a compromise also evicts whoever had signed in with it.
    pub async fn set_password(
        &self,
        name: &str,
        password: SecretString,
        keep_sessions: bool,
    ) -> Result<(), Error> {
        let hash = password::hash_one(password).await?;
        let evict = (!keep_sessions).then(|| self.revoked());
        self.store
            .set_password(name, &hash, evict)
            .await
            .map_err(|e| not_found(e, "user", name))?;
        let user_id = self
            .store
            .user_by_name(name)
            .await
            .ok()
            .flatten()
            .map(|u| u.id);
        self.audit(
            "user.passwd",
            None,
            user_id.as_deref(),
            json!({ "name": name, "sessions_revoked": !keep_sessions }),
        )
        .await;
        Ok(())
    }

    /// Registers a client; returns it and, for a confidential client, its secret (shown
    /// once, stored only as a hash).
    pub async fn add_client(
        &self,
        new: NewClient,
    ) -> Result<(ClientRecord, Option<OpaqueToken>), Error> {
        check_name("client", &new.name)?;
        if new.grant_types.is_empty() {
            return Err(Error::Invalid(
                "a client needs at least one grant type; add --grant-types client_credentials (or password, refresh_token)".into(),
            ));
        }
        if new.public && new.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(Error::Invalid(
                "public clients cannot use client_credentials; drop --public or the grant type"
                    .into(),
            ));
        }
        let scope = parse_scope(&new.scope)?;
        if new.signing_alg.is_some_and(|a| !a.is_asymmetric()) {
            return Err(Error::Invalid(
                "--signing-alg must be EdDSA, ES256 or RS256".into(),
            ));
        }
        // An unsigned (`none`) or shared-secret (HS256) ID token would let anyone, or the
        // client itself, forge the user's identity.
        if new.id_token_alg.is_some_and(|a| !a.is_asymmetric()) {
            return Err(Error::Invalid(
                "--id-token-alg must be RS256, ES256 or EdDSA".into(),
            ));
        }
        for a in &new.audience {
            if a.is_empty() || a.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::Invalid(format!(
                    "audience {a:?} must be one word without spaces"
                )));
            }
        }
        for u in new
            .redirect_uris
            .iter()
            .chain(&new.post_logout_redirect_uris)
        {
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && !u.contains('#')
                && !u.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(Error::Invalid(format!(
                    "redirect URI {u:?} must be an absolute http(s) URI without a fragment"
                )));
            }
        }
        if new.grant_types.contains(&GrantType::AuthorizationCode) && new.redirect_uris.is_empty() {
            return Err(Error::Invalid(
                "authorization_code needs at least one --redirect-uri".into(),
            ));
        }
        let secret = if new.public {
            None
        } else {
            Some(OpaqueToken::generate(TokenKind::ClientSecret)?)
        };
        let mut grant_types = new.grant_types.clone();
        grant_types.dedup();
        let client = ClientRecord {
            id: random_id("")?,
            name: new.name.clone(),
            secret_hash: secret.as_ref().map(OpaqueToken::hash),
            grant_types,
            scope,
            audience: new.audience,
            redirect_uris: new.redirect_uris,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            first_party: new.first_party,
            signing_alg: new.signing_alg,
            id_token_alg: new.id_token_alg,
            created_at: self.clock.now(),
        };
        self.store
            .insert_client(&client)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => {
                    Error::Conflict(format!("client {} already exists", new.name))
                }
                other => other,
            })?;
        self.audit(
            "client.add",
            Some(&client.id),
            None,
            json!({ "name": client.name }),
        )
        .await;
        Ok((client, secret))
    }

    /// All clients.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>, Error> {
        Ok(self.store.clients().await?)
    }

    pub(crate) async fn client(&self, key: &str) -> Result<ClientRecord, Error> {
        self.store.client_by_id_or_name(key).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "no client with id or name {key}; see `tessera client list`"
            ))
        })
    }

    /// Replaces a confidential client's secret; the old one stops working at once.
    pub async fn rotate_secret(&self, key: &str) -> Result<(ClientRecord, OpaqueToken), Error> {
        let client = self.client(key).await?;
        if client.is_public() {
            return Err(Error::Invalid(format!(
                "client {} is public and has no secret",
                client.name
            )));
        }
        let secret = OpaqueToken::generate(TokenKind::ClientSecret)?;
        self.store
            .set_client_secret(&client.id, &secret.hash())
            .await?;
        self.audit("client.rotate_secret", Some(&client.id), None, json!({}))
            .await;
        Ok((client, secret))
    }

    /// Sets the algorithm of a client's ID tokens (`id_token_signed_response_alg`) in
    /// place: same client_id, secret and grants. Servers apply it once their client cache
    /// entry expires (`client_cache_ttl_secs`).
    pub async fn set_id_token_alg(&self, key: &str, alg: Algorithm) -> Result<ClientRecord, Error> {
        // Same rule as at registration: unsigned or shared-secret ID tokens are forgeable.
        if !alg.is_asymmetric() {
            return Err(Error::Invalid(
                "--id-token-alg must be RS256, ES256 or EdDSA".into(),
            ));
        }
        let mut client = self.client(key).await?;
        let from = client.id_token_alg.unwrap_or(crate::keys::ID_TOKEN_ALG);
        self.store.set_client_id_token_alg(&client.id, alg).await?;
        self.audit(
            "client.update",
            Some(&client.id),
            None,
            json!({ "id_token_alg": { "from": from.name(), "to": alg.name() } }),
        )
        .await;
        client.id_token_alg = Some(alg);
        Ok(client)
    }

    /// Removes a client and revokes everything issued to it.
    pub async fn remove_client(&self, key: &str) -> Result<ClientRecord, Error> {
        let client = self.client(key).await?;
        self.store.remove_client(&client.id, self.revoked()).await?;
        self.audit(
            "client.remove",
            Some(&client.id),
            None,
            json!({ "name": client.name }),
        )
        .await;
        Ok(client)
    }

    async fn user(&self, name: &str) -> Result<UserRecord, Error> {
        self.store
            .user_by_name(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user {name}; see `tessera user list`")))
    }

    /// Live sessions (grants) of a user.
    pub async fn sessions(&self, name: &str) -> Result<Vec<GrantRecord>, Error> {
        let user = self.user(name).await?;
        Ok(self.store.user_grants(&user.id, self.clock.now()).await?)
    }

    /// The latest audit events, newest first.
    pub async fn audit_events(&self, limit: u32) -> Result<Vec<crate::store::AuditEvent>, Error> {
        Ok(self.store.recent_events(limit).await?)
    }

    /// The latest `limit` audit events of the user named `user` (all users when `None`;
    /// an unknown name is `NotFound`) at or after `since`, newest first.
    pub async fn audit_query(
        &self,
        user: Option<&str>,
        since: Option<UnixTime>,
        limit: u32,
    ) -> Result<Vec<crate::store::AuditEvent>, Error> {
        let user_id = match user {
            Some(name) => Some(self.user(name).await?.id),
            None => None,
        };
        let query = crate::store::AuditQuery {
            user_id,
            since,
            limit,
        };
        Ok(self.store.query_events(&query).await?)
    }

    /// Revokes every session of a user ("log out everywhere"); returns how many.
    pub async fn revoke_sessions(&self, name: &str) -> Result<u64, Error> {
        let user = self.user(name).await?;
        let n = self
            .store
            .revoke_user_grants(&user.id, self.revoked())
            .await?;
        self.audit(
            "sessions.revoke",
            None,
            Some(&user.id),
            json!({ "count": n }),
        )
        .await;
        Ok(n)
    }
}

/// Refuses a data directory that does not exist (or, for SQLite, holds no database):
/// an operator command run from the wrong directory must not create an empty store.
fn require_data_dir(config: &ServerConfig) -> Result<(), Error> {
    let dir = &config.store.data_dir;
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    if config.store.database.is_some() {
        // PostgreSQL: the directory would hold only master.key, so the key is what is
        // missing; unlock names both places when neither has it.
        return Ok(());
    }
    let hint = "pass the server's directory with --data-dir (or data_dir in the config file, \
                or TESSERA_DATA_DIR), or create a new deployment with `tessera init`";
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "data directory {} does not exist; {hint}",
            shown.display()
        )));
    }
    let db = dir.join(store::sqlite::DB_FILE);
    if !db.exists() {
        return Err(Error::Config(format!(
            "{} holds no Tessera database ({} does not exist); {hint}",
            shown.display(),
            shown.join(store::sqlite::DB_FILE).display()
        )));
    }
    Ok(())
}

fn not_found(e: crate::store::StoreError, what: &str, name: &str) -> Error {
    match Error::from(e) {
        Error::NotFound(_) => {
            Error::NotFound(format!("no {what} {name}; see `tessera {what} list`"))
        }
        other => other,
    }
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} name {name:?} must be 1-64 characters of letters, digits, '.', '_', '-', '@'"
        )))
    }
}

/// Parses a scope given as space- or comma-separated words; empty is no scope.
pub fn parse_scope(s: &str) -> Result<Scope, Error> {
    let words: Vec<&str> = s.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return Ok(Scope::default());
    }
    words.join(" ").parse().map_err(|_| {
        Error::Invalid(format!(
            "scope {s:?} is malformed: use words of printable ASCII without quotes or backslashes"
        ))
    })
}

#[cfg(test)]
impl Admin {
    /// An operator handle on `store`, with a new master key in `config.store.data_dir`.
    pub(crate) fn for_tests(store: Arc<dyn Store>, config: ServerConfig) -> Self {
        let master = crate::secrets::MasterKey::load(&config.store.data_dir).unwrap();
        Admin {
            store,
            clock: Arc::new(SystemClock),
            sealer: master.sealer().unwrap(),
            master_source: crate::secrets::KeySource::File(
                config.store.data_dir.join("master.key"),
            ),
            config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides};
    use crate::store::sqlite::SqliteStore;

    async fn admin() -> Admin {
        let mut config =
            ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
        config.store.data_dir = tempfile::tempdir().unwrap().keep();
        Admin::for_tests(Arc::new(SqliteStore::in_memory().await.unwrap()), config)
    }

    #[tokio::test]
    async fn shared_secret_id_tokens_are_refused_at_registration_and_others_kept() {
        let admin = admin().await;
        let rp = NewClient {
            name: "rp".into(),
            grant_types: vec![GrantType::AuthorizationCode],
            redirect_uris: vec!["https://rp.example/cb".into()],
            public: true,
            ..NewClient::default()
        };
        // HS256 would be keyed with a secret the client holds: it could forge ID tokens.
        let hs = NewClient {
            id_token_alg: Some(Algorithm::Hs256),
            ..rp.clone()
        };
        let refused = admin.add_client(hs).await.unwrap_err();
        assert!(matches!(refused, Error::Invalid(ref m) if m.contains("--id-token-alg")));
        assert!(admin.clients().await.unwrap().is_empty(), "nothing stored");
        let (ed, _) = admin
            .add_client(NewClient {
                id_token_alg: Some(Algorithm::EdDsa),
                ..rp.clone()
            })
            .await
            .unwrap();
        let back = admin.store.client(&ed.id).await.unwrap().unwrap();
        assert_eq!(back.id_token_alg, Some(Algorithm::EdDsa));
        let (default, _) = admin
            .add_client(NewClient {
                name: "rp2".into(),
                ..rp
            })
            .await
            .unwrap();
        let back = admin.store.client(&default.id).await.unwrap().unwrap();
        assert_eq!(back.id_token_alg, None, "None: RS256");
    }
}
