//! Interop: the `oauth2` crate (oauth2-rs 5, the common Rust OAuth client) against the real
//! server: client credentials with HTTP Basic and in the body, password, refresh, errors.

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, ClientId, ClientSecret, RequestTokenError, ResourceOwnerPassword,
    ResourceOwnerUsername, Scope, TokenResponse, TokenUrl,
};

use crate::harness::{PASSWORD, Server};

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn server_error<E: std::error::Error + 'static>(
    e: RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> BasicErrorResponseType {
    match e {
        RequestTokenError::ServerResponse(r) => r.error().clone(),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

#[tokio::test]
async fn oauth2_rs_client_gets_refreshes_and_reads_errors() {
    let s = Server::start();
    let (id, secret) = s.add_client(
        "web",
        "client_credentials,password,refresh_token",
        "a b",
        &[],
    );
    s.add_user("alice", PASSWORD);
    let client = BasicClient::new(ClientId::new(id))
        .set_client_secret(ClientSecret::new(secret.unwrap()))
        .set_token_uri(TokenUrl::new(s.url("/token")).unwrap());
    let http = http();

    let cc = client
        .exchange_client_credentials()
        .add_scope(Scope::new("a".into()))
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(cc.scopes().unwrap(), &vec![Scope::new("a".into())]);
    assert_eq!(cc.expires_in().unwrap().as_secs(), 600);
    assert!(cc.refresh_token().is_none());
    // client_secret_post.
    let post = client.clone().set_auth_type(AuthType::RequestBody);
    post.exchange_client_credentials()
        .request_async(&http)
        .await
        .unwrap();

    let user = ResourceOwnerUsername::new("alice".into());
    let tok = client
        .exchange_password(&user, &ResourceOwnerPassword::new(PASSWORD.into()))
        .request_async(&http)
        .await
        .unwrap();
    let rt = tok.refresh_token().unwrap().clone();
    let next = client
        .exchange_refresh_token(&rt)
        .request_async(&http)
        .await
        .unwrap();
    assert_ne!(next.refresh_token().unwrap().secret(), rt.secret());

    let wrong = ResourceOwnerPassword::new("not the password".into());
    let e = client
        .exchange_password(&user, &wrong)
        .request_async(&http)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), BasicErrorResponseType::InvalidGrant);
    let e = client
        .exchange_refresh_token(&rt)
        .request_async(&http)
        .await
        .unwrap_err();
    assert_eq!(
        server_error(e),
        BasicErrorResponseType::InvalidGrant,
        "reuse"
    );
    let e = client
        .exchange_client_credentials()
        .add_scope(Scope::new("admin".into()))
        .request_async(&http)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), BasicErrorResponseType::InvalidScope);
    let bad = client
        .clone()
        .set_client_secret(ClientSecret::new("tsr_cs_wrong".into()));
    let e = bad
        .exchange_client_credentials()
        .request_async(&http)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), BasicErrorResponseType::InvalidClient);
}
