//! tessera-guard against the real server: keys by discovery and JWKS across a key
//! rotation, and revocations (one token, a user's sessions) reaching the guard through
//! the revocation feed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_guard::{Guard, GuardError, RemoteIssuer, RevocationFeed, Verifier, discover};
use tessera_token::{BearerToken, SecretString, Validation};

use crate::harness::{PASSWORD, Server};

const FAST_KEYS: &str = "jwks_cache_ttl_secs = 2\nkey_refresh_interval_secs = 1\n";

struct Api {
    guard: Guard,
    feed: Arc<RevocationFeed>,
}

/// A resource server's guard for audience `notes-api`, reading the server's feed as its own
/// client.
async fn api(s: &Server) -> Api {
    let (feed_id, feed_secret) = s.add_client("notes-api", "client_credentials", "", &[]);
    let meta = discover(&s.base).await.unwrap();
    let endpoint = meta
        .tessera_revocation_feed_endpoint
        .expect("discovery names the revocation feed");
    let feed = Arc::new(
        RevocationFeed::new(&endpoint, feed_id, SecretString::new(feed_secret.unwrap())).unwrap(),
    );
    // Refetch at once on an unknown kid, so the test needs no 10 s wait.
    let issuer = RemoteIssuer::new(&s.base).unknown_kid_interval(Duration::ZERO);
    let guard = Guard::builder(
        Verifier::remote(issuer).unwrap(),
        Validation::access_token(&s.base, "notes-api"),
    )
    .revocation(feed.list())
    .build()
    .unwrap();
    Api { guard, feed }
}

fn bearer(token: &str) -> BearerToken {
    BearerToken::new(token).unwrap()
}

#[tokio::test]
async fn guard_accepts_server_tokens_across_a_key_rotation() {
    let s = Server::start_with(FAST_KEYS, &[]);
    let api = api(&s).await;
    let (id, secret) = s.add_client(
        "svc",
        "client_credentials",
        "notes:read",
        &["--audience", "notes-api"],
    );
    let secret = secret.unwrap();
    let cc = || {
        s.token(
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
        )
    };

    let old = cc().await.str("access_token");
    let who = api.guard.verify(&bearer(&old)).await.unwrap();
    assert_eq!(who.client_id.as_deref(), Some(id.as_str()));
    assert!(who.has_scope("notes:read"));

    // Rotate; wait until the server signs with the new key.
    s.cli_ok(&["keys", "rotate"], None);
    let old_kid = tessera_token::decode_unverified(&old).unwrap().header.kid;
    let start = Instant::now();
    let new = loop {
        let t = cc().await.str("access_token");
        if tessera_token::decode_unverified(&t).unwrap().header.kid != old_kid {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "new key never signed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The new key's tokens verify (the guard refetches the JWKS for the new kid), and the
    // old key's tokens still do: the retired key stays published until they expire.
    assert!(api.guard.verify(&bearer(&new)).await.is_ok());
    assert!(api.guard.verify(&bearer(&old)).await.is_ok());
    // A token for another audience is refused.
    let (other, other_secret) = s.add_client(
        "billing",
        "client_credentials",
        "",
        &["--audience", "billing-api"],
    );
    let foreign = s
        .token(
            &[("grant_type", "client_credentials")],
            Some((&other, &other_secret.unwrap())),
        )
        .await
        .str("access_token");
    assert!(matches!(
        api.guard.verify(&bearer(&foreign)).await,
        Err(GuardError::InvalidToken(
            tessera_token::Error::WrongAudience
        ))
    ));
}

#[tokio::test]
async fn revocations_reach_the_guard_through_the_feed() {
    let s = Server::start();
    let api = api(&s).await;
    let (id, secret) = s.add_client(
        "web",
        "password,refresh_token,client_credentials",
        "notes:read",
        &["--audience", "notes-api"],
    );
    let secret = secret.unwrap();
    let basic = Some((id.as_str(), secret.as_str()));
    s.add_user("alice", PASSWORD);

    // One access token revoked (RFC 7009): its jti reaches the guard on the next poll.
    let svc = s
        .token(&[("grant_type", "client_credentials")], basic)
        .await
        .str("access_token");
    let svc = bearer(&svc);
    api.guard.verify(&svc).await.unwrap();
    let r = s
        .post_form("/revoke", &[("token", svc.expose())], basic)
        .await;
    assert_eq!(r.status, 200);
    // Until the guard polls, it cannot know: the token is still accepted (from its cache).
    assert!(api.guard.verify(&svc).await.is_ok());
    assert!(api.feed.poll_once(api.guard.now()).await.unwrap() >= 1);
    assert_eq!(
        api.guard.verify(&svc).await.unwrap_err(),
        GuardError::Revoked
    );

    // "Log out everywhere": every token of the user's sessions is refused after one poll,
    // while another client's token is not.
    let login = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let a = bearer(&s.token(&login, basic).await.str("access_token"));
    let b = bearer(&s.token(&login, basic).await.str("access_token"));
    let other = bearer(
        &s.token(&[("grant_type", "client_credentials")], basic)
            .await
            .str("access_token"),
    );
    for t in [&a, &b, &other] {
        api.guard.verify(t).await.unwrap();
    }
    s.cli_ok(&["sessions", "revoke", "--user", "alice"], None);
    assert!(api.feed.poll_once(api.guard.now()).await.unwrap() >= 2);
    for t in [&a, &b] {
        assert_eq!(api.guard.verify(t).await.unwrap_err(), GuardError::Revoked);
    }
    assert!(api.guard.verify(&other).await.is_ok());
}
