//! The server and the CLI on PostgreSQL: `tessera serve --database URL` on a fresh
//! database of a throwaway cluster (tessera-testkit; skipped with the reason when no
//! PostgreSQL is installed, a failure under `CI=true`).

use std::sync::OnceLock;

use tessera_testkit::Postgres;

use crate::harness::{PASSWORD, Server, run_cli, verify};

/// One cluster for the whole e2e binary; its watchdog removes it at exit.
pub(crate) fn cluster() -> Option<&'static Postgres> {
    static CLUSTER: OnceLock<Option<Postgres>> = OnceLock::new();
    CLUSTER.get_or_init(tessera_testkit::postgres).as_ref()
}

#[tokio::test]
async fn every_grant_refresh_and_revocation_on_postgres() {
    let Some(pg) = cluster() else { return };
    let url = pg.fresh_database("e2e").unwrap();
    let s = Server::start_postgres(&url);

    // The CLI (`--database URL`, passed by the harness) writes to the same database.
    let (svc, svc_secret) = s.add_client("svc", "client_credentials", "notes:read", &[]);
    let svc_secret = svc_secret.unwrap();
    let (web, web_secret) = s.add_client("web", "password,refresh_token", "a b", &[]);
    let web_secret = web_secret.unwrap();
    let web_auth = Some((web.as_str(), web_secret.as_str()));
    s.add_user("alice", PASSWORD);
    assert!(
        !s.data_dir().join("tessera.db").exists(),
        "no SQLite database beside a PostgreSQL one"
    );

    let r = s
        .token(
            &[("grant_type", "client_credentials")],
            Some((&svc, &svc_secret)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let claims = verify(&s, &r.str("access_token"), &s.base).await;
    assert_eq!(claims.client_id.as_deref(), Some(svc.as_str()));

    let login = s
        .token(
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            web_auth,
        )
        .await;
    assert_eq!(login.status, 200, "{:?}", login.json);
    let rt1 = login.str("refresh_token");
    let refreshed = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
            web_auth,
        )
        .await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.json);
    let rt2 = refreshed.str("refresh_token");
    assert_ne!(rt1, rt2);

    // Revoking the family (RFC 7009) stops its refresh tokens and lands in the feed.
    let r = s
        .post_form(
            "/revoke",
            &[("token", &rt2), ("token_type_hint", "refresh_token")],
            web_auth,
        )
        .await;
    assert_eq!(r.status, 200);
    s.token(
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
        web_auth,
    )
    .await
    .assert_error(400, "invalid_grant");
    let feed = s.get("/revocations", web_auth).await;
    assert_eq!(feed.status, 200, "{:?}", feed.json);
    assert_eq!(feed.json["revoked"].as_array().unwrap().len(), 1);

    // Operator commands see the PostgreSQL data; without --database they would not.
    let list = s.cli_ok(&["client", "list", "--json"], None);
    assert!(list.contains(&svc) && list.contains(&web));
    let sessions = s.cli_ok(&["sessions", "list", "--user", "alice", "--json"], None);
    assert_eq!(sessions.trim(), "[]", "the only session was revoked");
    let audit = s.cli_ok(&["audit", "list"], None);
    assert!(audit.contains("login"), "{audit}");
    // From another host: the deployment's master key is needed (issue 14, item 10),
    // the data directory is not.
    let elsewhere = tempfile::tempdir().unwrap();
    let key = std::fs::read_to_string(s.data_dir().join("master.key")).unwrap();
    let out = std::process::Command::new(crate::harness::BIN)
        .arg("--data-dir")
        .arg(elsewhere.path().join("absent"))
        .args(["--database", &url, "user", "list"])
        .env("TESSERA_MASTER_KEY", key.trim())
        .env_remove("TESSERA_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));

    assert!(
        !s.log().contains(&rt1) && !s.log().contains(&web_secret),
        "a secret reached the log"
    );
}

#[tokio::test]
async fn a_bad_database_url_is_a_configuration_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(
        dir.path(),
        &["--database", "mysql://root:hunter2@h/db", "client", "list"],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("postgres://") && !err.contains("hunter2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_database_outage_answers_503_and_the_server_recovers() {
    // A cluster of its own: stopping the shared one would break the other tests.
    let Some(pg) = tessera_testkit::postgres() else {
        return;
    };
    let Postgres::Started(cluster) = &pg else {
        eprintln!("SKIPPED: an external TESSERA_TEST_DATABASE_URL cannot be stopped");
        return;
    };
    let url = pg.fresh_database("outage").unwrap();
    let s = Server::start_postgres(&url);
    let (svc, secret) = s.add_client("svc", "client_credentials", "a", &[]);
    let secret = secret.unwrap();
    let auth = Some((svc.as_str(), secret.as_str()));
    let form = [("grant_type", "client_credentials")];
    let issued = s.token(&form, auth).await;
    assert_eq!(issued.status, 200);
    let at = issued.str("access_token");
    // Introspection reads the revocation feed, so it needs the database (a
    // client-credentials token may not: the client record is cached for a few seconds).
    let introspect = [("token", at.as_str())];

    cluster.stop().unwrap();
    let r = s.post_form("/introspect", &introspect, auth).await;
    r.assert_error(503, "temporarily_unavailable");
    assert_eq!(r.headers["retry-after"], "1");
    assert!(r.json.get("error_description").is_none(), "no internals");
    assert_eq!(s.get("/readyz", None).await.status, 503);
    // Verifying keys are served from memory meanwhile.
    assert_eq!(s.get("/jwks.json", None).await.status, 200);

    cluster.start_server().unwrap();
    assert_eq!(s.get("/readyz", None).await.status, 200);
    let r = s.post_form("/introspect", &introspect, auth).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["active"], true);
    let r = s.token(&form, auth).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert!(
        !s.log().contains(&secret) && !s.log().contains(&url),
        "a secret or the database URL reached the log"
    );
}
