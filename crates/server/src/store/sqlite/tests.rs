//! Store tests (the suite a PostgreSQL backend will run too).

use std::sync::Arc;

use tessera_token::{OpaqueToken, Scope, TokenKind, UnixTime};

use super::SqliteStore;
use crate::store::*;

const T0: i64 = 1_800_000_000;

fn t(s: i64) -> UnixTime {
    UnixTime::from_secs(T0 + s)
}

fn revoked(at: i64) -> Revoked {
    Revoked {
        now: t(at),
        access_exp: t(at + 600),
    }
}

fn client(name: &str) -> ClientRecord {
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
        audience: vec!["api".into()],
        redirect_uris: vec![],
        signing_alg: Some(tessera_token::Algorithm::Es256),
        created_at: t(0),
    }
}

fn grant(id: &str, user: &str) -> GrantRecord {
    GrantRecord {
        id: id.into(),
        client_id: "id-web".into(),
        user_id: Some(user.into()),
        scope: Scope::default(),
        audience: vec!["api".into()],
        created_at: t(0),
        expires_at: t(86_400),
        revoked_at: None,
    }
}

fn token(grant: &str) -> (OpaqueToken, NewRefreshToken) {
    let tok = OpaqueToken::generate(TokenKind::RefreshToken).unwrap();
    let rec = NewRefreshToken {
        hash: tok.hash(),
        grant_id: grant.into(),
        issued_at: t(0),
        expires_at: t(3600),
    };
    (tok, rec)
}

#[tokio::test]
async fn clients_round_trip_and_names_are_unique() {
    let s = SqliteStore::in_memory().await.unwrap();
    let c = client("web");
    s.insert_client(&c).await.unwrap();
    assert!(matches!(
        s.insert_client(&client("web")).await,
        Err(StoreError::Conflict(_))
    ));
    let back = s.client("id-web").await.unwrap().unwrap();
    assert_eq!(back.secret_hash, c.secret_hash);
    assert_eq!(back.grant_types, c.grant_types);
    assert_eq!(back.scope, c.scope);
    assert_eq!(back.signing_alg, c.signing_alg);
    assert_eq!(
        s.client_by_id_or_name("web").await.unwrap().unwrap().id,
        "id-web"
    );
    s.remove_client("id-web", revoked(1)).await.unwrap();
    assert!(s.client("id-web").await.unwrap().is_none());
    assert!(s.is_revoked(None, Some("cc_id-web")).await.unwrap());
}

#[tokio::test]
async fn rotation_has_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let (_, first) = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    let (_, next) = token("g1");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (s, parent, next) = (Arc::clone(&s), first.hash, next.clone());
        tasks.push(tokio::spawn(async move {
            s.rotate_refresh_token(&parent, &next, t(5)).await.unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            RotateOutcome::Rotated => winners += 1,
            RotateOutcome::AlreadyUsed { used_at } => assert_eq!(used_at, t(5)),
            RotateOutcome::Unknown => panic!("token vanished"),
        }
    }
    assert_eq!(winners, 1);
    let (rec, _) = s.refresh_token(&next.hash).await.unwrap().unwrap();
    assert_eq!(rec.used_at, None);
}

#[tokio::test]
async fn revoking_a_family_feeds_its_sid_and_stops_rotation() {
    let s = SqliteStore::in_memory().await.unwrap();
    let (_, first) = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    s.revoke_jti("j1", t(100), t(1)).await.unwrap();
    assert!(s.revoke_grant("g1", revoked(2)).await.unwrap());
    assert!(
        !s.revoke_grant("g1", revoked(3)).await.unwrap(),
        "idempotent"
    );
    let (_, next) = token("g1");
    assert_eq!(
        s.rotate_refresh_token(&first.hash, &next, t(4))
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
    let feed = s.revocations_after(0, 10, t(0)).await.unwrap();
    assert_eq!(feed.len(), 2);
    assert_eq!(feed[0].jti.as_deref(), Some("j1"));
    assert_eq!(feed[1].sid.as_deref(), Some("g1"));
    assert_eq!(feed[1].exp, t(602));
    // Expired entries are no longer served; cursors continue.
    assert_eq!(s.revocations_after(0, 10, t(200)).await.unwrap().len(), 1);
    assert_eq!(
        s.revocations_after(feed[0].seq, 10, t(0))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.last_revocation_seq().await.unwrap(), feed[1].seq);
}

#[tokio::test]
async fn disabling_a_user_revokes_their_grants() {
    let s = SqliteStore::in_memory().await.unwrap();
    let u = UserRecord {
        id: "u1".into(),
        name: "alice".into(),
        password_hash: "$argon2id$x".into(),
        disabled: false,
        created_at: t(0),
    };
    s.insert_user(&u).await.unwrap();
    s.insert_grant(&grant("g1", "u1"), None).await.unwrap();
    s.insert_grant(&grant("g2", "u1"), None).await.unwrap();
    assert_eq!(s.user_grants("u1", t(1)).await.unwrap().len(), 2);
    s.disable_user("alice", revoked(1)).await.unwrap();
    assert!(s.user_by_name("alice").await.unwrap().unwrap().disabled);
    assert!(s.user_grants("u1", t(1)).await.unwrap().is_empty());
    assert!(matches!(
        s.disable_user("bob", revoked(1)).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_janitor_purges_only_what_cannot_matter() {
    let s = SqliteStore::in_memory().await.unwrap();
    let (_, first) = token("g1");
    s.insert_grant(&grant("g1", "u1"), Some(&first))
        .await
        .unwrap();
    s.insert_grant(&grant("g2", "u1"), None).await.unwrap();
    s.revoke_grant("g2", revoked(10)).await.unwrap();
    s.revoke_jti("j1", t(100), t(1)).await.unwrap();
    let seq = s.last_revocation_seq().await.unwrap();
    // Nothing is due yet.
    assert_eq!(s.purge_expired(t(50), t(0)).await.unwrap(), 0);
    // Later: j1 and g2's feed entry expired, g2 revoked long ago; g1 and its token live on.
    let n = s.purge_expired(t(1000), t(500)).await.unwrap();
    assert_eq!(n, 3);
    assert!(s.grant("g1").await.unwrap().is_some());
    assert!(s.grant("g2").await.unwrap().is_none());
    assert!(s.refresh_token(&first.hash).await.unwrap().is_some());
    assert_eq!(
        s.last_revocation_seq().await.unwrap(),
        seq,
        "cursors never go back"
    );
    // After the absolute lifetime the family and its tokens go too.
    assert_eq!(s.purge_expired(t(90_000), t(500)).await.unwrap(), 2);
    assert!(s.refresh_token(&first.hash).await.unwrap().is_none());
}
