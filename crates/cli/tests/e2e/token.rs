//! The token endpoint: every grant, and every RFC 6749 section 5.2 error that applies.

use crate::harness::{PASSWORD, Server, verify};

#[tokio::test]
async fn client_credentials_with_basic_and_post() {
    let s = Server::start();
    let (id, secret) = s.add_client(
        "svc",
        "client_credentials",
        "notes:read notes:write",
        &["--audience", "notes-api"],
    );
    let secret = secret.unwrap();
    assert!(secret.starts_with("tsr_cs_"));

    let r = s
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "notes:read"),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 600);
    assert_eq!(r.json["scope"], "notes:read");
    assert!(r.json.get("refresh_token").is_none());
    let claims = verify(&s, &r.str("access_token"), "notes-api").await;
    assert_eq!(claims.sub.as_deref(), Some(id.as_str()));
    assert_eq!(claims.client_id.as_deref(), Some(id.as_str()));
    assert_eq!(claims.scope.as_ref().unwrap().to_string(), "notes:read");
    assert_eq!(claims.exp.unwrap().secs() - claims.iat.unwrap().secs(), 600);
    assert!(claims.jti.is_some() && claims.sid.is_some());

    // client_secret_post, no scope asked: everything the client may have.
    let r = s
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["scope"], "notes:read notes:write");

    // RFC 8707 resource must be one of the client's audiences.
    let r = s
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("resource", "notes-api"),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("resource", "other-api"),
            ],
            Some((&id, &secret)),
        )
        .await;
    r.assert_error(400, "invalid_target");
}

#[tokio::test]
async fn password_grant_issues_user_tokens() {
    let s = Server::start();
    let (id, secret) = s.add_client("web", "password,refresh_token", "profile", &[]);
    let secret = secret.unwrap();
    s.add_user("alice", PASSWORD);
    let r = s
        .token(
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert!(r.str("refresh_token").starts_with("tsr_rt_"));
    let claims = verify(&s, &r.str("access_token"), &s.base).await;
    assert!(claims.sub.as_deref().unwrap().starts_with("u_"));
    assert!(claims.sid.as_deref().unwrap().starts_with("g_"));
    assert_eq!(claims.client_id.as_deref(), Some(id.as_str()));

    // A public client may use the password grant with its client_id alone.
    let (public_id, none) = s.add_client("app", "password", "profile", &["--public"]);
    assert!(none.is_none());
    let r = s
        .token(
            &[
                ("grant_type", "password"),
                ("client_id", &public_id),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert!(
        r.json.get("refresh_token").is_none(),
        "no refresh_token grant for this client"
    );
}

#[tokio::test]
async fn rfc6749_error_rows() {
    let s = Server::start();
    let (id, secret) = s.add_client("web", "password", "a b", &[]);
    let secret = secret.unwrap();
    let (svc, svc_secret) = s.add_client("svc", "client_credentials", "a", &[]);
    let svc_secret = svc_secret.unwrap();
    s.add_user("alice", PASSWORD);
    s.add_user("bob", PASSWORD);
    s.cli_ok(&["user", "disable", "bob"], None);
    let basic = Some((id.as_str(), secret.as_str()));

    // invalid_request: missing grant_type, repeated parameter, missing username.
    s.token(&[("username", "alice")], basic)
        .await
        .assert_error(400, "invalid_request");
    s.token(
        &[("grant_type", "password"), ("grant_type", "password")],
        basic,
    )
    .await
    .assert_error(400, "invalid_request");
    s.token(
        &[
            ("grant_type", "password"),
            ("username", "a"),
            ("username", "b"),
            ("password", "x"),
        ],
        basic,
    )
    .await
    .assert_error(400, "invalid_request");
    s.token(&[("grant_type", "password"), ("password", PASSWORD)], basic)
        .await
        .assert_error(400, "invalid_request");
    // Two authentication methods at once.
    s.token(
        &[("grant_type", "password"), ("client_secret", &secret)],
        basic,
    )
    .await
    .assert_error(400, "invalid_request");

    // invalid_client: wrong secret under Basic (401 + challenge) and under post (401).
    let wrong = "tsr_cs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r = s
        .token(
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            Some((&id, wrong)),
        )
        .await;
    r.assert_error(401, "invalid_client");
    assert_eq!(r.headers["www-authenticate"], "Basic realm=\"tessera\"");
    let r = s
        .token(
            &[
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &svc_secret),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            None,
        )
        .await;
    r.assert_error(401, "invalid_client");
    // Issue 14, item 7: client_secret_post failures are challenged too (RFC 9110 11.6.1).
    assert_eq!(r.headers["www-authenticate"], "Basic realm=\"tessera\"");
    s.token(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", &secret),
        ],
        None,
    )
    .await
    .assert_error(401, "invalid_client");
    // A confidential client may not skip its secret; no credentials at all is a challenge.
    s.token(
        &[
            ("grant_type", "password"),
            ("client_id", &id),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
        None,
    )
    .await
    .assert_error(401, "invalid_client");
    let r = s.token(&[("grant_type", "client_credentials")], None).await;
    r.assert_error(401, "invalid_client");
    assert!(r.headers.get("www-authenticate").is_some());

    // invalid_grant: wrong password, unknown user, disabled user: one answer for all.
    let mut descriptions = Vec::new();
    for (user, pw) in [
        ("alice", "wrong password"),
        ("nobody", PASSWORD),
        ("bob", PASSWORD),
    ] {
        let r = s
            .token(
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", pw),
                ],
                basic,
            )
            .await;
        r.assert_error(400, "invalid_grant");
        descriptions.push(r.json["error_description"].clone());
    }
    assert!(
        descriptions.windows(2).all(|w| w[0] == w[1]),
        "{descriptions:?}"
    );

    // unauthorized_client: grant type not registered for the client.
    s.token(&[("grant_type", "client_credentials")], basic)
        .await
        .assert_error(400, "unauthorized_client");
    s.token(
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
        Some((&svc, &svc_secret)),
    )
    .await
    .assert_error(400, "unauthorized_client");

    // A grant the server has but this client is not registered for.
    s.token(
        &[("grant_type", "authorization_code"), ("code", "x")],
        basic,
    )
    .await
    .assert_error(400, "unauthorized_client");

    // unsupported_grant_type.
    s.token(
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", "x"),
        ],
        basic,
    )
    .await
    .assert_error(400, "unsupported_grant_type");
    s.token(&[("grant_type", "urn:example:nope")], basic)
        .await
        .assert_error(400, "unsupported_grant_type");

    // invalid_scope: beyond the client's scope, or malformed.
    s.token(
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("scope", "a admin"),
        ],
        basic,
    )
    .await
    .assert_error(400, "invalid_scope");
    s.token(
        &[("grant_type", "client_credentials"), ("scope", "a\"b")],
        Some((&svc, &svc_secret)),
    )
    .await
    .assert_error(400, "invalid_scope");

    // Wrong content type.
    let r = s
        .http
        .post(s.url("/token"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
