//! Records for the store suite, at fixed times.

use tessera_token::{OpaqueToken, Scope, TokenKind, UnixTime};

use crate::store::*;

const T0: i64 = 1_800_000_000;

pub(super) fn t(s: i64) -> UnixTime {
    UnixTime::from_secs(T0 + s)
}

pub(super) fn revoked(at: i64) -> Revoked {
    Revoked {
        now: t(at),
        access_exp: t(at + 600),
    }
}

pub(crate) fn client(name: &str) -> ClientRecord {
    ClientRecord {
        id: format!("id-{name}"),
        name: name.into(),
        secret_hash: Some(
            OpaqueToken::generate(TokenKind::ClientSecret)
                .unwrap()
                .hash(),
        ),
        grant_types: vec![GrantType::Password, GrantType::RefreshToken],
        scope: "a b".parse().unwrap(),
        audience: vec!["api".into(), "other".into()],
        redirect_uris: vec!["https://app.example/cb".into()],
        post_logout_redirect_uris: vec!["https://app.example/bye".into()],
        first_party: true,
        signing_alg: Some(tessera_token::Algorithm::Es256),
        id_token_alg: Some(tessera_token::Algorithm::EdDsa),
        dpop_bound_access_tokens: false,
        created_at: t(0),
    }
}

pub(super) fn user(id: &str, name: &str) -> UserRecord {
    UserRecord {
        id: id.into(),
        name: name.into(),
        password_hash: "$argon2id$x".into(),
        disabled: false,
        created_at: t(0),
        generation: 0,
    }
}

pub(super) fn grant(id: &str, user: &str) -> GrantRecord {
    GrantRecord {
        id: id.into(),
        client_id: "id-web".into(),
        user_id: Some(user.into()),
        scope: "a".parse().unwrap(),
        audience: vec!["api".into()],
        created_at: t(0),
        expires_at: t(86_400),
        revoked_at: None,
        generation: 0,
        amr: Amr::password(),
        dpop_jkt: None,
    }
}

pub(super) fn client_grant(id: &str, client_id: &str) -> GrantRecord {
    GrantRecord {
        id: id.into(),
        client_id: client_id.into(),
        user_id: None,
        scope: Scope::default(),
        audience: vec!["api".into()],
        created_at: t(0),
        expires_at: t(86_400),
        revoked_at: None,
        generation: 0,
        amr: Amr::password(),
        dpop_jkt: None,
    }
}

pub(super) fn token(grant: &str) -> NewRefreshToken {
    NewRefreshToken {
        hash: OpaqueToken::generate(TokenKind::RefreshToken)
            .unwrap()
            .hash(),
        grant_id: grant.into(),
        issued_at: t(0),
        expires_at: t(3600),
    }
}

pub(super) fn key(kid: &str, state: KeyState, created: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        state,
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        sealed_private: vec![1, 2, 3, 0, 255],
        created_at: t(created),
        activate_after: t(created + 300),
        retired_at: None,
    }
}

/// The janitor at `now`, keeping grants, codes and sessions that ended after
/// `revoked_before` and every audit event, in batches of [`PURGE_BATCH`].
pub(super) async fn purge(s: &dyn Store, now: UnixTime, revoked_before: UnixTime) -> u64 {
    let p = Purge {
        now,
        revoked_before,
        audit_before: UnixTime::from_secs(0),
        batch: PURGE_BATCH,
    };
    s.purge_expired(&p).await.unwrap()
}

/// Users `u1` (alice) and `u2` (bob): a user's grant is stored only while its user
/// stands behind it.
pub(super) async fn alice_and_bob(s: &dyn crate::store::Store) {
    s.insert_user(&user("u1", "alice")).await.unwrap();
    s.insert_user(&user("u2", "bob")).await.unwrap();
}
