//! Forward-auth decisions in process: the answers nginx, Traefik and Envoy act on, for
//! good and bad tokens, and every way a sub-request can lie about the original request.

use std::sync::atomic::Ordering;

use http::StatusCode;
use serde_json::json;
use tessera_token::UnixTime;

use crate::common::{NOW, bearer, fixture, nginx, send, token};

#[tokio::test]
async fn a_valid_token_gets_200_with_every_identity_header() {
    let f = fixture("nginx");
    let t = token(&f.key, json!({}));
    let r = nginx(
        &f.router,
        "GET",
        "/notes/7?x=1",
        &[("authorization", &bearer(&t))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-auth-subject"), Some("alice"));
    assert_eq!(r.header("x-auth-scope"), Some("notes:read"));
    assert_eq!(r.header("x-auth-client-id"), Some("cli"));
    assert_eq!(r.header("x-auth-claim-tenant"), Some("acme"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn a_missing_token_gets_401_with_the_bare_challenge() {
    let f = fixture("nginx");
    let r = nginx(&f.router, "GET", "/notes", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let c = r.challenge();
    assert!(c.starts_with("Bearer realm=\"notes\""), "{c}");
    assert!(!c.contains("error="), "{c}");
    assert!(r.header("x-auth-subject").is_none());
}

#[tokio::test]
async fn a_token_without_the_routes_scope_gets_403_insufficient_scope() {
    let f = fixture("nginx");
    let t = token(&f.key, json!({}));
    let r = nginx(
        &f.router,
        "POST",
        "/notes",
        &[("authorization", &bearer(&t))],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let c = r.challenge();
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"notes:write\""), "{c}");
    assert!(r.header("x-auth-subject").is_none());
}

#[tokio::test]
async fn expired_wrong_audience_and_forged_tokens_get_401_invalid_token() {
    let f = fixture("nginx");
    let other = tessera_token::SigningKey::generate(tessera_token::Algorithm::EdDsa)
        .unwrap()
        .with_kid("k1");
    let expired = token(&f.key, json!({"exp": NOW + 10}));
    let cases = [
        token(&f.key, json!({"aud": "other-api"})),
        token(&other, json!({})),
        expired.clone(),
        "not.a.token".to_owned(),
    ];
    f.clock.set(UnixTime::from_secs(NOW + 120));
    for t in cases {
        let r = nginx(
            &f.router,
            "GET",
            "/notes",
            &[("authorization", &bearer(&t))],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.challenge().contains("error=\"invalid_token\""),
            "{}",
            r.challenge()
        );
    }
}

#[tokio::test]
async fn a_token_revoked_after_the_cache_warmed_is_refused() {
    let f = fixture("nginx");
    let t = token(&f.key, json!({"jti": "leaked"}));
    let auth = bearer(&t);
    for _ in 0..3 {
        let r = nginx(&f.router, "GET", "/notes", &[("authorization", &auth)]).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    f.revoked
        .revoke_jti("leaked", UnixTime::from_secs(NOW + 600));
    let r = nginx(&f.router, "GET", "/notes", &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.challenge().contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn spoofed_identity_headers_are_overwritten_with_the_gateways_own() {
    let f = fixture("nginx");
    let spoof = [
        ("x-auth-subject", "admin"),
        ("x-auth-scope", "notes:admin"),
        ("x-auth-claim-tenant", "other"),
    ];
    // A public route: every identity header comes back empty, so a proxy copying them
    // over the request's (Traefik, Envoy) replaces the client's, and nginx drops them.
    let r = nginx(&f.router, "GET", "/public/x", &spoof).await;
    assert_eq!(r.status, StatusCode::OK);
    for (name, _) in spoof {
        assert_eq!(r.header(name), Some(""), "{name}");
    }
    assert_eq!(r.header("x-auth-client-id"), Some(""));
    // A token without the `tenant` claim: its header is empty, not the client's.
    let t = token(&f.key, json!({"tenant": null}));
    let mut with_token = spoof.to_vec();
    let auth = bearer(&t);
    with_token.push(("authorization", &auth));
    let r = nginx(&f.router, "GET", "/notes", &with_token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-auth-subject"), Some("alice"));
    assert_eq!(r.header("x-auth-scope"), Some("notes:read"));
    assert_eq!(r.header("x-auth-claim-tenant"), Some(""));
}

#[tokio::test]
async fn a_dpop_route_refuses_a_bearer_token() {
    let f = fixture("nginx");
    let t = token(&f.key, json!({}));
    let r = nginx(
        &f.router,
        "GET",
        "/export",
        &[("authorization", &bearer(&t))],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // One header line carrying both challenges (nginx 1.22 passes on only the first
    // line of a header), the error on the DPoP one.
    assert_eq!(r.headers.get_all("www-authenticate").iter().count(), 1);
    let c = r.challenge();
    assert!(c.starts_with("Bearer realm=\"notes\""), "{c}");
    assert!(c.contains("DPoP algs="), "{c}");
    assert!(c.contains("error=\"invalid_token\""), "{c}");
}

#[tokio::test]
async fn ambiguous_original_paths_are_refused_not_matched() {
    let f = fixture("nginx");
    for uri in [
        "/public/../notes",
        "/public/%2e%2e/notes",
        "/public/%2E%2E/notes",
        "/public%2f..%2fnotes",
        "/public/./x",
        "/public/%252e%252e/notes",
    ] {
        let r = nginx(&f.router, "GET", uri, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
    }
}

/// Routes: `/admin` needs scope `admin`, `/public` and `/` are public, `GET /notes` needs
/// `notes:read`.
fn broad_public_fixture(proxy: &str) -> crate::common::Fixture {
    let section = match proxy {
        "envoy" => "proxy = \"envoy\"\nenvoy_path_prefix = \"/check\"".to_owned(),
        other => format!("proxy = \"{other}\""),
    };
    crate::common::fixture_from(&format!(
        r#"
listen = "127.0.0.1:0"
mode = "forward_auth"
issuer = "https://as.test"
audience = "notes-api"
public_base_url = "https://api.example"
[forward_auth]
{section}
[[route]]
path = "/admin"
scopes = ["admin"]
[[route]]
methods = ["GET"]
path = "/notes"
scopes = ["notes:read"]
[[route]]
path = "/public"
public = true
[[route]]
path = "/"
public = true
"#
    ))
}

/// Each of these reaches a framework's `/admin` handler (percent-decoding, case-insensitive
/// routing, `;params` dropped, `..;` read as `..`): never 200 without a token.
const REWRITTEN_TO_ADMIN: &[&str] = &[
    "/%61dmin/users",
    "/admin;x=1",
    "/ADMIN",
    "/%41DMIN",
    "/public/..;/admin",
    "/public/..%3B/admin",
    "/Admin/users",
    "/adm%69n",
    "/adm%C4%B1n",
    "/admin.json",
];

#[tokio::test]
async fn paths_an_upstream_rewrites_to_a_protected_route_never_pass_as_public() {
    for proxy in ["nginx", "traefik", "envoy"] {
        let f = broad_public_fixture(proxy);
        for uri in REWRITTEN_TO_ADMIN {
            let r = match proxy {
                "nginx" => nginx(&f.router, "GET", uri, &[]).await,
                "traefik" => {
                    let h: &[(&str, &[u8])] = &[
                        ("x-forwarded-method", b"GET"),
                        ("x-forwarded-uri", uri.as_bytes()),
                        ("x-forwarded-host", b"api.example"),
                        ("x-forwarded-proto", b"https"),
                    ];
                    send(&f.router, "GET", "/auth", h).await
                }
                _ => send(&f.router, "GET", &format!("/check{uri}"), &[]).await,
            };
            assert!(
                r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNAUTHORIZED,
                "{proxy} {uri}: {}",
                r.status
            );
        }
    }
}

#[tokio::test]
async fn encoded_non_ascii_paths_still_pass_and_head_is_judged_as_get() {
    let f = broad_public_fixture("nginx");
    let t = token(&f.key, json!({}));
    let auth = bearer(&t);
    let r = nginx(
        &f.router,
        "GET",
        "/notes/caf%C3%A9",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-auth-subject"), Some("alice"));
    // The upstream runs its GET handler for HEAD: the GET route's token rule holds.
    let head = nginx(&f.router, "HEAD", "/notes/caf%C3%A9", &[]).await;
    assert_eq!(head.status, StatusCode::UNAUTHORIZED);
    let head = nginx(&f.router, "HEAD", "/notes/1", &[("authorization", &auth)]).await;
    assert_eq!(head.status, StatusCode::OK);
}

#[tokio::test]
async fn garbled_sub_requests_get_400_never_200() {
    let f = fixture("nginx");
    let long = format!("/public/{}", "a".repeat(9000));
    let cases: Vec<Vec<(&str, &[u8])>> = vec![
        vec![],
        vec![("x-original-method", b"GET")],
        vec![("x-original-uri", b"/public")],
        vec![
            ("x-original-method", b"GET"),
            ("x-original-uri", b"/public"),
            ("x-original-uri", b"/public"),
        ],
        vec![
            ("x-original-method", b"GET"),
            ("x-original-uri", long.as_bytes()),
        ],
        vec![
            ("x-original-method", b"GET"),
            ("x-original-uri", b"http://api.example/public"),
        ],
        vec![
            ("x-original-method", b"GET"),
            ("x-original-uri", b"/public/\xff"),
        ],
        vec![
            ("x-original-method", b"GET\xff"),
            ("x-original-uri", b"/public"),
        ],
    ];
    for headers in cases {
        let r = send(&f.router, "GET", "/auth", &headers).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{headers:?}");
        assert!(r.header("x-auth-subject").is_none());
    }
}

#[tokio::test]
async fn behind_traefik_a_clients_x_original_uri_is_ignored() {
    let f = fixture("traefik");
    // The client names a public path in nginx's header; Traefik's says /notes.
    let r = send(
        &f.router,
        "GET",
        "/auth",
        &[
            ("x-forwarded-method", b"GET"),
            ("x-forwarded-uri", b"/notes"),
            ("x-forwarded-host", b"api.example"),
            ("x-forwarded-proto", b"https"),
            ("x-original-method", b"GET"),
            ("x-original-uri", b"/public"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // And Traefik's own convention works.
    let t = token(&f.key, json!({}));
    let auth = bearer(&t);
    let r = send(
        &f.router,
        "GET",
        "/auth",
        &[
            ("x-forwarded-method", b"GET"),
            ("x-forwarded-uri", b"/notes?page=2"),
            ("authorization", auth.as_bytes()),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-auth-subject"), Some("alice"));
}

#[tokio::test]
async fn behind_nginx_a_clients_x_forwarded_uri_is_ignored() {
    let f = fixture("nginx");
    let r = nginx(
        &f.router,
        "GET",
        "/notes",
        &[
            ("x-forwarded-uri", "/public"),
            ("x-forwarded-method", "GET"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn envoy_checks_the_original_method_and_path_under_the_prefix() {
    let f = fixture("envoy");
    let t = token(&f.key, json!({}));
    let auth = bearer(&t);
    let ok = send(
        &f.router,
        "GET",
        "/check/notes/7",
        &[("authorization", auth.as_bytes()), ("host", b"api.example")],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("x-auth-subject"), Some("alice"));
    let post = send(
        &f.router,
        "POST",
        "/check/notes",
        &[("authorization", auth.as_bytes())],
    )
    .await;
    assert_eq!(post.status, StatusCode::FORBIDDEN);
    // A client's nginx or Traefik headers do not move the check to a public path.
    let spoof = send(
        &f.router,
        "GET",
        "/check/notes",
        &[
            ("x-original-uri", b"/public"),
            ("x-forwarded-uri", b"/public"),
        ],
    )
    .await;
    assert_eq!(spoof.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&f.router, "GET", "/check/public", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&f.router, "GET", "/check/public/../notes", &[])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Outside the prefix there is nothing to allow.
    assert_eq!(
        send(&f.router, "GET", "/notes", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&f.router, "GET", "/checknotes", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&f.router, "GET", "/healthz", &[]).await.status,
        StatusCode::OK
    );
}

/// Envoy's `check.method` comes as the client sent it: `get` must not skip the `GET`
/// route for the public `/` (Werkzeug and Django upper-case it).
#[tokio::test]
async fn envoy_refuses_a_lower_case_method_with_400() {
    let f = broad_public_fixture("envoy");
    for m in ["get", "Get", "delete"] {
        let r = send(&f.router, m, "/check/notes/1", &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{m}");
    }
    let r = send(&f.router, "GET", "/check/notes/1", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Rack < 3 and older Python read `;` as a query separator too: a token after it is still
/// a token in the URL, refused on a public route.
#[tokio::test]
async fn a_query_token_after_a_semicolon_is_refused_on_a_public_route() {
    let f = fixture("nginx");
    for uri in [
        "/public/x?a=1;access_token=abc",
        "/public/x?access_token=abc",
    ] {
        let r = nginx(&f.router, "GET", uri, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
    }
    let r = nginx(&f.router, "GET", "/public/x?a=1;b=access_token", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn only_the_check_path_answers_sub_requests() {
    let f = fixture("nginx");
    let headers: &[(&str, &[u8])] = &[
        ("x-original-method", b"GET"),
        ("x-original-uri", b"/public"),
    ];
    assert_eq!(
        send(&f.router, "GET", "/auth", headers).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&f.router, "GET", "/other", headers).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&f.router, "GET", "/auth/x", headers).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn until_the_feed_is_read_tokens_get_503_and_public_routes_pass() {
    let f = fixture("nginx");
    f.ready.store(false, Ordering::Release);
    let t = token(&f.key, json!({}));
    let r = nginx(
        &f.router,
        "GET",
        "/notes",
        &[("authorization", &bearer(&t))],
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.header("x-auth-subject").is_none());
    assert_eq!(
        nginx(&f.router, "GET", "/public", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&f.router, "GET", "/readyz", &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        send(&f.router, "GET", "/healthz", &[]).await.status,
        StatusCode::OK
    );
    f.ready.store(true, Ordering::Release);
    let r = nginx(
        &f.router,
        "GET",
        "/notes",
        &[("authorization", &bearer(&t))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        send(&f.router, "GET", "/readyz", &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_resource_metadata_is_served() {
    let f = fixture("nginx");
    let r = send(
        &f.router,
        "GET",
        "/.well-known/oauth-protected-resource",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_dpop_bound_token_with_its_proof_passes_and_is_checked_against_the_public_url() {
    use tessera_token::dpop::{access_token_hash, sign_proof};
    let f = fixture("nginx");
    let holder = tessera_token::SigningKey::generate(tessera_token::Algorithm::Es256).unwrap();
    let jkt = holder.public_jwk().unwrap().thumbprint().unwrap();
    let t = token(&f.key, json!({"cnf": {"jkt": jkt}}));
    let auth = format!("DPoP {t}");
    let proof = |htu: &str, jti: &str| {
        sign_proof(
            &holder,
            &json!({"jti": jti, "htm": "GET", "htu": htu, "iat": NOW, "ath": access_token_hash(&t)}),
        )
        .unwrap()
    };
    // htu is public_base_url + the original path (the query is not part of it).
    let good = proof("https://api.example/export", "p1");
    let r = nginx(
        &f.router,
        "GET",
        "/export?x=1",
        &[("authorization", &auth), ("dpop", &good)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.challenge());
    assert_eq!(r.header("x-auth-subject"), Some("alice"));
    // The same proof again is a replay; a proof for the gateway's own URL is not one
    // for the API.
    let r = nginx(
        &f.router,
        "GET",
        "/export",
        &[("authorization", &auth), ("dpop", &good)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let wrong = proof("http://127.0.0.1:9000/auth", "p2");
    let r = nginx(
        &f.router,
        "GET",
        "/export",
        &[("authorization", &auth), ("dpop", &wrong)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.challenge().contains("invalid_dpop_proof"),
        "{}",
        r.challenge()
    );
}

/// RFC 9470 step-up per route (`acr`, `max_age_secs`): a sign-in too weak, too old, or
/// without `acr` / `auth_time` gets 401 `insufficient_user_authentication` naming both; a
/// recent MFA sign-in passes; an `auth_time` in the future is `invalid_token`; the scope
/// is judged first (403).
#[tokio::test]
async fn a_step_up_route_challenges_a_weak_or_old_sign_in_and_passes_a_recent_mfa_one() {
    let config = crate::common::CONFIG
        .replace("PROXY", "proxy = \"nginx\"")
        .replace(
            "[[route]]\npath = \"/public\"",
            "[[route]]\nmethods = [\"DELETE\"]\npath = \"/notes\"\nscopes = [\"notes:write\"]\n\
             acr = \"urn:tessera:acr:mfa\"\nmax_age_secs = 300\n\n[[route]]\npath = \"/public\"",
        );
    let f = crate::common::fixture_from(&config);
    let mfa = "urn:tessera:acr:mfa";
    let write = |extra: serde_json::Value| {
        let mut claims = json!({"scope": "notes:write"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        token(&f.key, claims)
    };
    let challenged = [
        write(json!({"acr": "urn:tessera:acr:pwd", "auth_time": NOW})),
        write(json!({"acr": mfa, "auth_time": NOW - 301})),
        write(json!({"acr": mfa})),
        write(json!({"auth_time": NOW})),
        write(json!({"acr": "urn:other:gold", "auth_time": NOW})),
    ];
    for t in &challenged {
        let r = nginx(
            &f.router,
            "DELETE",
            "/notes/0",
            &[("authorization", &bearer(t))],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let c = r.challenge();
        assert!(
            c.contains("error=\"insufficient_user_authentication\"")
                && c.contains(&format!("acr_values=\"{mfa}\""))
                && c.contains("max_age=300")
                && c.contains("resource_metadata="),
            "{c}"
        );
        assert!(r.header("x-auth-subject").is_none());
    }
    let future = write(json!({"acr": mfa, "auth_time": NOW + 3600}));
    let r = nginx(
        &f.router,
        "DELETE",
        "/notes/0",
        &[("authorization", &bearer(&future))],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.challenge().contains("error=\"invalid_token\""),
        "{}",
        r.challenge()
    );
    let recent = write(json!({"acr": mfa, "auth_time": NOW - 10}));
    let r = nginx(
        &f.router,
        "DELETE",
        "/notes/0",
        &[("authorization", &bearer(&recent))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-auth-subject"), Some("alice"));
    // The other routes ask nothing of the sign-in.
    let plain = token(&f.key, json!({}));
    let r = nginx(
        &f.router,
        "GET",
        "/notes",
        &[("authorization", &bearer(&plain))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Without the scope: 403, whatever the sign-in.
    let read_only = token(
        &f.key,
        json!({"acr": "urn:tessera:acr:pwd", "auth_time": NOW}),
    );
    let r = nginx(
        &f.router,
        "DELETE",
        "/notes/0",
        &[("authorization", &bearer(&read_only))],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.challenge().contains("insufficient_scope"),
        "{}",
        r.challenge()
    );
}

/// A route's `acr` off the ladder (Tessera's, or `acr_values`) could never be met: the
/// configuration is refused instead of refusing every request.
#[test]
fn a_route_acr_off_the_ladder_is_a_start_up_error() {
    let with = |top: &str, acr: &str| {
        let text = crate::common::CONFIG
            .replace("PROXY", "proxy = \"nginx\"")
            .replace(
                "[[route]]\npath = \"/public\"",
                &format!(
                    "[[route]]\npath = \"/admin\"\nacr = \"{acr}\"\n\n[[route]]\npath = \"/public\""
                ),
            );
        let text = text.replacen("realm = \"notes\"", &format!("realm = \"notes\"\n{top}"), 1);
        let config = tessera_gateway::GatewayConfig::parse(&text).unwrap();
        tessera_gateway::startup::offline_parts(&config).map(drop)
    };
    assert!(with("", "urn:tessera:acr:mfa").is_ok());
    let e = with("", "urn:other:gold").unwrap_err().to_string();
    assert!(e.contains("urn:other:gold"), "{e}");
    assert!(with("acr_values = [\"bronze\", \"gold\"]", "gold").is_ok());
    assert!(with("acr_values = [\"bronze\", \"gold\"]", "urn:tessera:acr:mfa").is_err());
}
