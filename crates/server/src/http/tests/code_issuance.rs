//! Code issuance without a router ([`crate::grants::authorization_code::issue`]): the code
//! is stored bound to the request and the session, and a session whose user was disabled
//! after it was read gets no code.

use std::time::Duration;

use tessera_token::Scope;

use super::{client_and_user, state};
use crate::grants::authorization_code::{CodeRequest, Issued, issue};
use crate::store::SessionRecord;

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWBzbbJ0J3aNo";

#[tokio::test]
async fn a_code_is_stored_bound_to_its_request_and_session_and_refused_after_a_disable() {
    let (s, _dir) = state().await;
    client_and_user(&s).await;
    let signed_in = s.clock.now();
    let session = SessionRecord {
        hash: tessera_token::OpaqueToken::generate(tessera_token::TokenKind::AccessToken)
            .unwrap()
            .hash(),
        user_id: "u_1".into(),
        created_at: signed_in,
        expires_at: signed_in.saturating_add(Duration::from_secs(3600)),
        revoked_at: None,
        generation: 0,
        amr: crate::store::Amr::password(),
    };
    let scope: Scope = "a".parse().unwrap();
    let request = CodeRequest {
        client_id: "web",
        redirect_uri: "https://app.example/cb",
        code_challenge: CHALLENGE,
        scope: &scope,
        nonce: Some("n-1"),
        dpop_jkt: None,
    };

    let Issued::Code(code) = issue(&s, &request, &session).await.unwrap() else {
        panic!("a live session gets a code");
    };
    let stored = s.store.auth_code(&code.hash()).await.unwrap().unwrap();
    assert_eq!(stored.client_id, "web");
    assert_eq!(stored.user_id, "u_1");
    assert_eq!(stored.redirect_uri, "https://app.example/cb");
    assert_eq!(stored.code_challenge, CHALLENGE);
    assert_eq!(stored.scope, scope);
    assert_eq!(stored.nonce.as_deref(), Some("n-1"));
    assert_eq!(stored.auth_time, signed_in);
    assert_eq!(
        stored.expires_at,
        s.clock
            .now()
            .saturating_add(s.config.tokens.authorization_code_ttl)
    );
    assert_eq!((stored.used_at, stored.generation), (None, 0));

    s.store
        .disable_user("alice", s.revoked_now())
        .await
        .unwrap();
    assert!(matches!(
        issue(&s, &request, &session).await.unwrap(),
        Issued::SessionRevoked
    ));
}
