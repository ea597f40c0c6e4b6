//! Revocation (RFC 7009), introspection (RFC 7662), the revocation feed
//! (docs/revocation-feed.md) and `tessera sessions`.

use serde_json::json;

use crate::harness::{PASSWORD, Server};

struct Setup {
    web: (String, String),
    rs: (String, String),
}

fn setup(s: &Server) -> Setup {
    let (web, web_secret) = s.add_client(
        "web",
        "password,refresh_token",
        "a b",
        &["--audience", "api"],
    );
    // A resource server: client credentials, no scopes (docs/revocation-feed.md).
    let (rs, rs_secret) = s.add_client("api", "client_credentials", "", &[]);
    s.add_user("alice", PASSWORD);
    Setup {
        web: (web, web_secret.unwrap()),
        rs: (rs, rs_secret.unwrap()),
    }
}

async fn login(s: &Server, c: &Setup) -> (String, String) {
    let r = s
        .token(
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            Some((&c.web.0, &c.web.1)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    (r.str("access_token"), r.str("refresh_token"))
}

async fn introspect(s: &Server, c: &Setup, token: &str, as_web: bool) -> serde_json::Value {
    let who = if as_web { &c.web } else { &c.rs };
    let r = s
        .post_form("/introspect", &[("token", token)], Some((&who.0, &who.1)))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.headers["cache-control"], "no-store");
    r.json
}

#[tokio::test]
async fn introspection_is_active_only_for_live_tokens() {
    let s = Server::start();
    let c = setup(&s);
    let (at, rt) = login(&s, &c).await;
    let v = introspect(&s, &c, &at, false).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], c.web.0.as_str());
    assert_eq!(v["scope"], "a b");
    assert_eq!(v["aud"], json!(["api"]));
    assert!(v["sub"].as_str().unwrap().starts_with("u_"));
    // A refresh token is visible to the client it belongs to only.
    assert_eq!(introspect(&s, &c, &rt, true).await["active"], true);
    assert_eq!(
        introspect(&s, &c, &rt, false).await,
        json!({ "active": false })
    );
    // Garbage, a token from another server, a tampered token: inactive, nothing else.
    let other = Server::start();
    let oc = setup(&other);
    let (foreign, _) = login(&other, &oc).await;
    let mut tampered = at.clone();
    tampered.push('x');
    for bad in [
        "nonsense",
        "tsr_rt_AAAA",
        foreign.as_str(),
        tampered.as_str(),
    ] {
        assert_eq!(
            introspect(&s, &c, bad, false).await,
            json!({ "active": false }),
            "{bad}"
        );
    }
    // Used refresh token: inactive.
    let r = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            Some((&c.web.0, &c.web.1)),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        introspect(&s, &c, &rt, true).await,
        json!({ "active": false })
    );
    // Client authentication is required; public clients may not introspect.
    s.post_form("/introspect", &[("token", &at)], None)
        .await
        .assert_error(401, "invalid_client");
    s.post_form(
        "/introspect",
        &[("token", &at)],
        Some((&c.rs.0, "tsr_cs_wrong")),
    )
    .await
    .assert_error(401, "invalid_client");
    s.post_form("/introspect", &[], Some((&c.rs.0, &c.rs.1)))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn revocation_of_refresh_and_access_tokens_reaches_the_feed() {
    let s = Server::start();
    let c = setup(&s);
    let web = Some((c.web.0.as_str(), c.web.1.as_str()));
    let rs = Some((c.rs.0.as_str(), c.rs.1.as_str()));
    let (at1, rt1) = login(&s, &c).await;
    let sid1 = introspect(&s, &c, &at1, false).await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (at2, _rt2) = login(&s, &c).await;
    let jti2 = introspect(&s, &c, &at2, false).await["jti"]
        .as_str()
        .unwrap()
        .to_owned();

    // Revoking a refresh token revokes its family: the refresh token and its access tokens.
    let r = s
        .post_form(
            "/revoke",
            &[("token", &rt1), ("token_type_hint", "refresh_token")],
            web,
        )
        .await;
    assert_eq!(r.status, 200);
    s.token(
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
        web,
    )
    .await
    .assert_error(400, "invalid_grant");
    assert_eq!(
        introspect(&s, &c, &at1, false).await,
        json!({ "active": false })
    );
    // Revoking an access token puts its jti into the feed.
    assert_eq!(
        s.post_form("/revoke", &[("token", &at2)], web).await.status,
        200
    );
    assert_eq!(
        introspect(&s, &c, &at2, false).await,
        json!({ "active": false })
    );
    // Unknown tokens: 200. No client authentication: 401.
    assert_eq!(
        s.post_form("/revoke", &[("token", "whatever")], web)
            .await
            .status,
        200
    );
    s.post_form("/revoke", &[("token", &at2)], None)
        .await
        .assert_error(401, "invalid_client");
    s.post_form("/revoke", &[], web)
        .await
        .assert_error(400, "invalid_request");

    let feed = s.get("/revocations", rs).await;
    assert_eq!(feed.status, 200, "{:?}", feed.json);
    assert_eq!(feed.headers["cache-control"], "no-store");
    let entries = feed.json["revoked"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["sid"], sid1.as_str());
    assert_eq!(entries[1]["jti"], jti2.as_str());
    assert!(
        entries
            .iter()
            .all(|e| e["exp"].as_i64().unwrap() > 1_700_000_000)
    );
    assert!(entries.iter().all(|e| e.as_object().unwrap().len() == 2));
    assert_eq!(feed.json["has_more"], false);

    // Paging with the cursor.
    let page = s.get("/revocations?limit=1", rs).await;
    assert_eq!(page.json["revoked"].as_array().unwrap().len(), 1);
    assert_eq!(page.json["has_more"], true);
    let cursor = page.json["cursor"].as_str().unwrap().to_owned();
    let next = s
        .get(&format!("/revocations?after={cursor}&limit=1"), rs)
        .await;
    assert_eq!(next.json["revoked"][0]["jti"], jti2.as_str());
    assert_eq!(next.json["has_more"], false);
    let end = s
        .get(
            &format!(
                "/revocations?after={}",
                next.json["cursor"].as_str().unwrap()
            ),
            rs,
        )
        .await;
    assert_eq!(end.json["revoked"], json!([]));
    assert_eq!(
        s.get("/revocations?limit=5000", rs).await.status,
        200,
        "clamped, not refused"
    );

    // Bad cursor: 400 invalid_request. Bad or missing credentials: 401 with a challenge.
    s.get("/revocations?after=999999", rs)
        .await
        .assert_error(400, "invalid_request");
    s.get("/revocations?after=abc", rs)
        .await
        .assert_error(400, "invalid_request");
    let r = s.get("/revocations", None).await;
    r.assert_error(401, "invalid_client");
    assert_eq!(r.headers["www-authenticate"], "Basic realm=\"tessera\"");
    s.get("/revocations", Some((&c.rs.0, "tsr_cs_nope")))
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn sessions_list_and_revoke_through_the_cli() {
    let s = Server::start();
    let c = setup(&s);
    let (at1, rt1) = login(&s, &c).await;
    let (_at2, rt2) = login(&s, &c).await;
    let list: serde_json::Value =
        serde_json::from_str(&s.cli_ok(&["sessions", "list", "--user", "alice", "--json"], None))
            .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let out = s.cli_ok(&["sessions", "revoke", "--user", "alice"], None);
    assert!(out.contains("revoked 2"), "{out}");
    let web = Some((c.web.0.as_str(), c.web.1.as_str()));
    for rt in [&rt1, &rt2] {
        s.token(
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            web,
        )
        .await
        .assert_error(400, "invalid_grant");
    }
    assert_eq!(
        introspect(&s, &c, &at1, false).await,
        json!({ "active": false })
    );
    let feed = s.get("/revocations", Some((&c.rs.0, &c.rs.1))).await;
    assert_eq!(feed.json["revoked"].as_array().unwrap().len(), 2);
    let list: serde_json::Value =
        serde_json::from_str(&s.cli_ok(&["sessions", "list", "--user", "alice", "--json"], None))
            .unwrap();
    assert_eq!(list, json!([]));
    assert_eq!(
        s.cli(&["sessions", "list", "--user", "nobody"], None)
            .status
            .code(),
        Some(4)
    );
}

#[tokio::test]
async fn revoking_another_clients_token_is_refused_and_changes_nothing() {
    let s = Server::start();
    let c = setup(&s);
    let (at, rt) = login(&s, &c).await;
    // RFC 7009 section 2.1: the resource server's client did not get these tokens.
    for token in [&at, &rt] {
        s.post_form("/revoke", &[("token", token)], Some((&c.rs.0, &c.rs.1)))
            .await
            .assert_error(400, "unauthorized_client");
    }
    // Both still work for their owner.
    assert_eq!(introspect(&s, &c, &at, true).await["active"], true);
    let r = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            Some((&c.web.0, &c.web.1)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    // Unknown tokens still answer 200 (RFC 7009 section 2.2).
    let r = s
        .post_form(
            "/revoke",
            &[("token", "nonsense")],
            Some((&c.rs.0, &c.rs.1)),
        )
        .await;
    assert_eq!(r.status, 200);
}
