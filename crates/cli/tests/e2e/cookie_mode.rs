//! Cookie mode for a same-site SPA, over HTTP: the example resource server signs alice
//! in (code + PKCE exchanged server-side), keeps the access token in an HttpOnly
//! `SameSite=Strict` cookie, and its API accepts that cookie with a double-submit CSRF
//! header on unsafe methods. The token never appears in a body the page can read.

use std::path::Path;

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde_json::Value;

use crate::authorize::{Browser, Page, form_of, post_form};
use crate::browser::{free_port, resource_server_bin, start_resource_server};
use crate::harness::{PASSWORD, Server};

/// The `name=value` pair and attributes of the `Set-Cookie` named `name`.
fn set_cookie<'a>(page: &'a Page, name: &str) -> &'a str {
    page.set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie {name} in {:?}", page.set_cookies))
}

fn value(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_mode_keeps_the_token_in_an_httponly_cookie_behind_csrf() {
    if !Path::new(&resource_server_bin()).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the example resource server is not built"
        );
        eprintln!("skipping: build it with cargo build -p tessera-guard --example resource_server");
        return;
    }
    let port = free_port();
    let rs = format!("http://127.0.0.1:{port}");
    let s = Server::start();
    s.add_user("alice", PASSWORD);
    let scope = "openid notes:read notes:write";
    let (client_id, _) = s.add_client(
        "notes-cookie",
        "authorization_code",
        scope,
        &[
            "--public",
            "--audience",
            "notes-api",
            "--redirect-uri",
            &format!("{rs}/spa-cookie/callback"),
        ],
    );
    let _api = start_resource_server(&s.base, port, &["--spa-cookie-client-id", &client_id]);
    let mut b = Browser::new();

    // Without a sign-in in progress, or with a forged state, the callback refuses.
    let page = b
        .get(&format!("{rs}/spa-cookie/callback?code=x&state=y"))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.set_cookies.is_empty());

    // Login: state and verifier go into a short-lived HttpOnly cookie, then the issuer.
    let login = b.get(&format!("{rs}/spa-cookie/login")).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let pending = set_cookie(&login, "notes_login");
    assert!(pending.contains("HttpOnly") && pending.contains("Path=/spa-cookie/callback"));
    let authorize = login.location.clone().unwrap();
    assert!(authorize.starts_with(&s.url("/authorize?")), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256"));
    assert!(!authorize.contains(value(pending).split('.').nth(1).unwrap()));

    let page = b.get(&authorize).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let form = form_of(&page, &[("username", "alice"), ("password", PASSWORD)]);
    let mut page = post_form(&mut b, &s.url("/authorize"), &form).await;
    if page.status == StatusCode::OK {
        let form = form_of(&page, &[("action", "approve")]);
        page = post_form(&mut b, &s.url("/authorize"), &form).await;
    }
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let callback = page.location.clone().unwrap();
    assert!(callback.starts_with(&format!("{rs}/spa-cookie/callback?")));

    // A tampered state is refused and sets nothing.
    let tampered = callback.replace("state=", "state=x");
    let page = b.get(&tampered).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.set_cookies.is_empty());

    // The real callback: the token cookie is HttpOnly and Strict, the CSRF one readable.
    let page = b.get(&callback).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/spa-cookie/"));
    let at = set_cookie(&page, "notes_at");
    assert!(at.contains("HttpOnly") && at.contains("SameSite=Strict") && at.contains("Path=/"));
    let token = value(at).to_owned();
    assert!(token.len() > 40, "{at}");
    let csrf_cookie = set_cookie(&page, "notes_csrf");
    assert!(!csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));
    let csrf = value(csrf_cookie).to_owned();
    assert!(!page.body.contains(&token));
    // The code is single-use: replaying the callback fails without new cookies.
    let replay = b.get(&callback).await;
    assert_ne!(replay.status, StatusCode::SEE_OTHER);
    assert!(!replay.body.contains(&token));

    let http = reqwest::Client::new();
    let cookies = format!("notes_at={token}; notes_csrf={csrf}");
    // GET /me with the cookie alone works; the body names alice, never the token.
    let r = http
        .get(format!("{rs}/me"))
        .header(COOKIE, &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["client_id"], client_id);
    assert!(!me.to_string().contains(&token));
    // The page itself does not carry the token.
    let page = b.get(&format!("{rs}/spa-cookie/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("X-CSRF-Token") && !page.body.contains(&token));

    let post = |csrf_header: Option<&str>| {
        let mut req = http
            .post(format!("{rs}/notes"))
            .header(COOKIE, &cookies)
            .header("content-type", "application/json")
            .body(r#"{"text":"from the cookie page"}"#);
        if let Some(h) = csrf_header {
            req = req.header("x-csrf-token", h);
        }
        req.send()
    };
    // POST without the CSRF header, or with a wrong one: refused by the guard.
    for bad in [None, Some("forged"), Some("")] {
        let r = post(bad).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");
        assert!(!body.to_string().contains(&token));
    }
    // With the header equal to the CSRF cookie: created.
    let r = post(Some(&csrf)).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = http
        .get(format!("{rs}/notes"))
        .header(COOKIE, &cookies)
        .send()
        .await
        .unwrap();
    let notes: Value = r.json().await.unwrap();
    assert_eq!(notes["notes"][0], "from the cookie page");

    // A cross-site page could make the browser send the cookie but not know the CSRF
    // value: a CSRF cookie of its own choosing (cookie tossing) is refused as a duplicate.
    let r = http
        .post(format!("{rs}/notes"))
        .header(COOKIE, format!("{cookies}; notes_csrf=evil"))
        .header("x-csrf-token", "evil")
        .header("content-type", "application/json")
        .body(r#"{"text":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Nothing secret reached the issuer's log.
    assert!(!s.log().contains(&token));
}
