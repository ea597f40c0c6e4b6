//! Hardening (issue 14): see docs/security.md, "What was hardened and how it is tested".
//! Operator safety (items 10, 11, 12 and the config part of 14): the master-key check,
//! commands that refuse a missing data directory, `tessera init`, the data directory's
//! lock, `config check` reporting every problem.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{BIN, Server, register_secret};

/// A key that is not any test server's.
const OTHER_KEY: &str = "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4";

/// `tessera ARGS` in `cwd` with `env` and no inherited TESSERA_* variables.
fn tessera(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `tessera serve` on an existing data directory, killed (SIGKILL) on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tessera --data-dir DIR serve` and waits (at most 60 s) for its address.
fn serve_on(dir: &Path) -> Serve {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("listening on ") {
                let _ = tx.send(());
            }
        }
    });
    let serve = Serve(child);
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the server did not start");
    serve
}

/// Waits at most 60 s for `child` to exit; kills it and fails the test otherwise.
fn exit_within(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after 60 s: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn master_key_of(s: &Server) -> String {
    let key = std::fs::read_to_string(s.data_dir().join("master.key")).unwrap();
    register_secret(key.trim());
    key.trim().to_owned()
}

/// Item 10: `TESSERA_MASTER_KEY=<other> tessera keys rotate` used to publish a key
/// sealed under the wrong master key (the server then retired its good key when it
/// activated); now every command checks the key first and changes nothing.
#[tokio::test]
async fn hardening_operator_a_wrong_master_key_is_refused_before_anything_is_written() {
    let s = Server::start();
    s.add_user("alice", "alice-password-1");
    let keys_before = s.cli_ok(&["keys", "list", "--json"], None);
    let audit_before = s.cli_ok(&["audit", "list"], None);
    let data = s.data_dir();
    let d = data.to_str().unwrap();
    let cwd = s.dir.path();
    register_secret(OTHER_KEY);
    for args in [
        &["keys", "rotate"][..],
        &["keys", "list"],
        &["user", "list"],
        &["user", "disable", "alice"],
        &["client", "add", "c1", "--grant-types", "client_credentials"],
    ] {
        let out = tessera(
            cwd,
            &[&["--data-dir", d][..], args].concat(),
            &[("TESSERA_MASTER_KEY", OTHER_KEY)],
        );
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("the master key from TESSERA_MASTER_KEY is not this deployment's"),
            "{err}"
        );
        assert!(!err.contains(OTHER_KEY), "{err}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    // A wrong master.key file is named by its path.
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(data.join("tessera.db"), other.path().join("tessera.db")).unwrap();
    let key_file = other.path().join("master.key");
    std::fs::write(&key_file, OTHER_KEY).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = tessera(
        cwd,
        &[
            "--data-dir",
            other.path().to_str().unwrap(),
            "keys",
            "rotate",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&key_file.display().to_string()));
    // Nothing changed: same keys, no new audit event, alice still enabled.
    assert_eq!(s.cli_ok(&["keys", "list", "--json"], None), keys_before);
    assert_eq!(s.cli_ok(&["audit", "list"], None), audit_before);
    let users: Value = serde_json::from_str(&s.cli_ok(&["user", "list", "--json"], None)).unwrap();
    assert_eq!(users[0]["disabled"], false, "{users}");
    // The server started with the right key (env) keeps working.
    let right = master_key_of(&s);
    let out = tessera(
        cwd,
        &["--data-dir", d, "user", "list"],
        &[("TESSERA_MASTER_KEY", &right)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Item 10: on PostgreSQL, an operator host without TESSERA_MASTER_KEY used to create a
/// new master.key silently; now it is refused and nothing is created.
#[tokio::test]
async fn hardening_operator_postgres_host_without_the_master_key_is_refused() {
    let Some(pg) = crate::postgres::cluster() else {
        return;
    };
    let url = pg.fresh_database("operator").unwrap();
    let s = Server::start_postgres(&url);
    s.add_user("alice", "alice-password-1");
    let host = tempfile::tempdir().unwrap();
    let out = tessera(
        host.path(),
        &[
            "--data-dir",
            host.path().to_str().unwrap(),
            "--database",
            &url,
            "user",
            "add",
            "bob",
            "--password-stdin",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("TESSERA_MASTER_KEY is not set"), "{err}");
    assert!(!host.path().join("master.key").exists());
    // With the deployment's key the host needs no data directory at all.
    let key = master_key_of(&s);
    let nowhere = host.path().join("nowhere");
    let out = tessera(
        host.path(),
        &[
            "--data-dir",
            nowhere.to_str().unwrap(),
            "--database",
            &url,
            "user",
            "list",
        ],
        &[("TESSERA_MASTER_KEY", &key)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("alice") && !stdout(&out).contains("bob"));
    assert!(!nowhere.exists());
    // A wrong key is refused there too.
    let out = tessera(
        host.path(),
        &["--database", &url, "keys", "rotate"],
        &[("TESSERA_MASTER_KEY", OTHER_KEY)],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// Item 10: `tessera keys remove` removes a published key that never signed, and
/// refuses the key that signs.
#[tokio::test]
async fn hardening_operator_keys_remove_only_a_key_that_never_signed() {
    let s = Server::start();
    let keys: Value = serde_json::from_str(&s.cli_ok(&["keys", "list", "--json"], None)).unwrap();
    let active = keys[0]["kid"].as_str().unwrap().to_owned();
    let rotated = s.cli_ok(&["keys", "rotate"], None);
    let kid = rotated.split_whitespace().nth(1).unwrap().to_owned();
    let out = s.cli(&["keys", "remove", &active], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is active"), "{}", stderr(&out));
    let removed = s.cli_ok(&["keys", "remove", &kid], None);
    assert!(removed.contains(&kid), "{removed}");
    let list = s.cli_ok(&["keys", "list", "--json"], None);
    assert!(!list.contains(&kid) && list.contains(&active), "{list}");
    let out = s.cli(&["keys", "remove", &kid], None);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let audit = s.cli_ok(&["audit", "list"], None);
    assert!(audit.contains("key.remove"), "{audit}");
    // The server still signs with its key.
    let (id, secret) = s.add_client("svc", "client_credentials", "", &[]);
    let r = s
        .token(
            &[("grant_type", "client_credentials")],
            Some((&id, secret.as_deref().unwrap())),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
}

/// Item 11: operator commands in the wrong directory used to create an empty store and
/// print an empty table; now they refuse, naming the path they looked for.
#[tokio::test]
async fn hardening_operator_commands_refuse_a_missing_data_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let out = tessera(cwd.path(), &["user", "list"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let default = std::fs::canonicalize(cwd.path())
        .unwrap()
        .join("tessera-data");
    let err = stderr(&out);
    assert!(
        err.contains("does not exist") && err.contains("tessera init"),
        "{err}"
    );
    assert!(err.contains("tessera-data"), "{err}");
    assert!(!default.exists() && !cwd.path().join("tessera-data").exists());
    assert_eq!(stdout(&out), "");

    let missing = cwd.path().join("no/such/path");
    let out = tessera(
        cwd.path(),
        &["--data-dir", missing.to_str().unwrap(), "client", "list"],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists());

    // An existing directory without a database is not a data directory either.
    let out = tessera(cwd.path(), &["--data-dir", ".", "keys", "list"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no Tessera database"),
        "{}",
        stderr(&out)
    );
    assert!(!cwd.path().join("tessera.db").exists());
    assert!(!cwd.path().join("master.key").exists());

    // `tessera init` creates one and says where; then the commands work; again is a no-op.
    let out = tessera(cwd.path(), &["init"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("tessera-data/tessera.db"), "{text}");
    assert!(text.contains("master.key (created"), "{text}");
    let out = tessera(cwd.path(), &["user", "list"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tessera(cwd.path(), &["init"], &[]);
    assert!(
        stdout(&out).contains("master.key (existing)"),
        "{}",
        stdout(&out)
    );
    let key = std::fs::read_to_string(cwd.path().join("tessera-data/master.key")).unwrap();
    register_secret(key.trim());
}

/// Item 11: a relative data_dir in a config file is next to the file, not in the
/// directory the command runs from.
#[tokio::test]
async fn hardening_operator_a_relative_data_dir_in_a_config_file_is_next_to_it() {
    let etc = tempfile::tempdir().unwrap();
    let config = etc.path().join("tessera.toml");
    std::fs::write(&config, "data_dir = \"data\"\n").unwrap();
    let c = config.to_str().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = tessera(elsewhere.path(), &["--config", c, "init"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(etc.path().join("data/tessera.db").exists());
    assert!(!elsewhere.path().join("data").exists());
    let key = std::fs::read_to_string(etc.path().join("data/master.key")).unwrap();
    register_secret(key.trim());
    let third = tempfile::tempdir().unwrap();
    let out = tessera(third.path(), &["--config", c, "user", "list"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Item 12: two servers on one SQLite directory used to start without a word; now the
/// second exits 3 naming the first, the CLI still works beside the server, and a server
/// killed with SIGKILL leaves no lock behind.
#[tokio::test]
async fn hardening_operator_a_second_server_on_one_directory_is_refused() {
    let s = Server::start();
    let data = s.data_dir();
    let second = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exit_within(second);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("another tessera server (pid "), "{err}");
    assert!(err.contains(&data.display().to_string()), "{err}");
    assert!(!err.contains("listening on"), "{err}");
    // Review of item 12: deleting the PID file does not release the lock (it used to be
    // the locked file, so a second server then started on the same database).
    std::fs::remove_file(data.join("tessera.lock")).unwrap();
    let third = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exit_within(third);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another tessera server"),
        "{}",
        stderr(&out)
    );
    // The CLI runs beside the server.
    s.add_user("alice", "alice-password-1");
    assert!(s.cli_ok(&["user", "list"], None).contains("alice"));
    // SIGKILL (Child::kill) releases the lock with the process.
    let dir = s.stop();
    let again = serve_on(&dir.path().join("data"));
    drop(again);
}

/// Item 14: `tessera config check` used to stop at the first problem; now it reports
/// every one, one line each, exit 3, and creates nothing.
#[tokio::test]
async fn hardening_operator_config_check_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        "access_token_ttl_secs = 0\nacces_token_ttl_secs = 900\nsigning_alg = \"HS256\"\n\
         listen = \"everywhere\"\n",
    )
    .unwrap();
    let out = tessera(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--set",
            "refresh_reuse_grace_secs=61",
            "config",
            "check",
        ],
        &[("TESSERA_LOGIN_MAX_BLOCK_SECS", "soon")],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    for problem in [
        "access_token_ttl_secs = 0 is invalid",
        "unknown key `acces_token_ttl_secs`",
        "signing_alg = \"HS256\" is invalid",
        "listen = \"everywhere\" is invalid",
        "refresh_reuse_grace_secs = 61 is invalid",
        "login_max_block_secs = \"soon\" (from TESSERA_LOGIN_MAX_BLOCK_SECS) is invalid",
    ] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(problem)).count(),
            1,
            "{problem} in:\n{err}"
        );
    }
    assert_eq!(lines.len(), 6, "{err}");
    assert!(
        lines.iter().all(|l| l.starts_with("tessera: config: ")),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
    assert!(!dir.path().join("tessera-data").exists());
}

/// Item 14: a misspelt TESSERA_* variable used to be ignored silently; now every command
/// warns with the closest name (and still runs).
#[tokio::test]
async fn hardening_operator_unknown_tessera_variables_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(
        dir.path(),
        &["config", "check"],
        &[
            ("TESSERA_ACESS_TOKEN_TTL_SECS", "900"),
            ("TESSERA_LOG", "info"),
            ("TESSERA_MASTER_KEY", OTHER_KEY),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "config ok\n");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("unknown environment variable `TESSERA_ACESS_TOKEN_TTL_SECS`")
            && err.contains("did you mean `TESSERA_ACCESS_TOKEN_TTL_SECS`"),
        "{err}"
    );
    assert!(!err.contains(OTHER_KEY), "{err}");
}

/// Item 14: the example resource server used to start and answer 503 forever when the
/// discovery metadata named another issuer; now it logs both values and exits non-zero.
#[tokio::test]
async fn hardening_operator_the_example_api_refuses_to_start_on_an_issuer_mismatch() {
    let bin = crate::browser::resource_server_bin();
    if !bin.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the example resource server is not built"
        );
        eprintln!("skipping: build it with cargo build -p tessera-guard --example resource_server");
        return;
    }
    // The server says its issuer is another address than the one it is reached at.
    let s = Server::start_with("issuer = \"http://127.0.0.1:1\"\n", &[]);
    let port = crate::browser::free_port();
    let child = Command::new(&bin)
        .args(["--issuer", &s.base, "--audience", "notes-api"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exit_within(child);
    assert!(!out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("http://127.0.0.1:1"), "{err}");
    assert!(err.contains(&s.base), "{err}");
    assert!(err.contains("must be equal"), "{err}");
    assert!(!err.contains("listening on"), "{err}");
}

/// `tessera ARGS serve --listen 127.0.0.1:0` in `cwd` with `env`: its stderr up to and
/// including "listening on" (then it is killed), or everything if it exits first; at most
/// 60 s.
fn serve_log(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .current_dir(cwd)
        .args(args)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            log.push_str(&line);
            log.push('\n');
            if line.starts_with("listening on ") {
                break;
            }
        }
        let _ = tx.send(log);
    });
    let log = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve neither started nor exited");
    let _ = child.kill();
    let status = child.wait().unwrap();
    let code = if log.contains("listening on ") {
        None
    } else {
        status.code()
    };
    (code, log)
}

/// Review of item 11: `data_dir = "./tessera-data"` (the old example's line) in
/// /etc/tessera/tessera.toml, started from /var/lib/tessera, used to name
/// /etc/tessera/tessera-data after the upgrade: serve created a new master key, signing
/// key and empty database there without a word and logged that the master key "matches".
/// Now it refuses, naming both paths, and creates nothing; a genuinely new directory or
/// key is a WARN, and a first start says the check was recorded.
#[tokio::test]
async fn hardening_operator_an_upgrade_never_starts_an_empty_deployment_silently() {
    let etc = tempfile::tempdir().unwrap();
    let var = tempfile::tempdir().unwrap();
    let config = etc.path().join("tessera.toml");
    std::fs::write(&config, "data_dir = \"./tessera-data\"\n").unwrap();
    let c = config.to_str().unwrap();
    // The deployment as it was: ./tessera-data in the working directory.
    let out = tessera(var.path(), &["--data-dir", "tessera-data", "init"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = std::fs::read_to_string(var.path().join("tessera-data/master.key")).unwrap();
    register_secret(key.trim());
    let (code, log) = serve_log(var.path(), &["--config", c], &[]);
    assert_eq!(code, Some(3), "{log}");
    assert!(
        log.contains(&etc.path().join("tessera-data").display().to_string()),
        "{log}"
    );
    assert!(
        log.contains(&var.path().join("tessera-data").display().to_string()),
        "{log}"
    );
    assert!(log.contains("docs/operations.md"), "{log}");
    assert!(!etc.path().join("tessera-data").exists(), "nothing created");
    // A tls_cert relative to the working directory is refused the same way.
    std::fs::write(var.path().join("cert.pem"), "x").unwrap();
    std::fs::write(
        etc.path().join("tls.toml"),
        "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\ndata_dir = \"/nonexistent\"\n",
    )
    .unwrap();
    let out = tessera(
        var.path(),
        &[
            "--config",
            etc.path().join("tls.toml").to_str().unwrap(),
            "config",
            "check",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tls_cert = \"cert.pem\""),
        "{}",
        stderr(&out)
    );
    // A new deployment: the directory and key are created with WARN lines, and the log
    // says the check was recorded, not that it matched.
    let fresh = tempfile::tempdir().unwrap();
    let dir = fresh.path().join("new-data");
    let (code, log) = serve_log(fresh.path(), &["--data-dir", dir.to_str().unwrap()], &[]);
    assert_eq!(code, None, "{log}");
    let key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    register_secret(key.trim());
    assert!(
        log.contains("WARN") && log.contains("created a new, empty data directory"),
        "{log}"
    );
    assert!(log.contains("created a new master key"), "{log}");
    assert!(log.contains("recorded this key's"), "{log}");
    assert!(!log.contains("matches"), "{log}");
    // Started again: it matches, and nothing is created.
    let (code, log) = serve_log(fresh.path(), &["--data-dir", dir.to_str().unwrap()], &[]);
    assert_eq!(code, None, "{log}");
    assert!(log.contains("master key matches"), "{log}");
    assert!(!log.contains("created a new"), "{log}");
}

/// Review of items 10 and 11 on PostgreSQL: `TESSERA_MASTER_KEY=<wrong> tessera user list`
/// on an empty database used to record the wrong key, so the real server then exited 3
/// for good; an operator host without the key was told to pass --data-dir or run init,
/// and `init` created an empty ./tessera-data before refusing. Now only serve, init and
/// the commands that seal keys record the check, the refusal names TESSERA_MASTER_KEY
/// and when the check was recorded, and nothing is created before the check passes.
#[tokio::test]
async fn hardening_operator_postgres_a_read_only_command_cannot_claim_an_empty_database() {
    let Some(pg) = crate::postgres::cluster() else {
        return;
    };
    let url = pg.fresh_database("claim").unwrap();
    let host = tempfile::tempdir().unwrap();
    let nowhere = host.path().join("nowhere");
    let nd = nowhere.to_str().unwrap();
    let out = tessera(
        host.path(),
        &["--data-dir", nd, "--database", &url, "user", "list"],
        &[("TESSERA_MASTER_KEY", OTHER_KEY)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The deployment's server starts with its own key: nothing was claimed.
    let s = Server::start_postgres(&url);
    let key = master_key_of(&s);
    s.add_user("alice", "alice-password-1");
    // The wrong key is refused now, naming the variable and when the check was recorded.
    let out = tessera(
        host.path(),
        &["--data-dir", nd, "--database", &url, "user", "list"],
        &[("TESSERA_MASTER_KEY", OTHER_KEY)],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("TESSERA_MASTER_KEY"), "{err}");
    assert!(
        err.contains("recorded in the database at") && err.contains("GMT"),
        "{err}"
    );
    // No key and no directory: TESSERA_MASTER_KEY is what is missing, for every command,
    // init included, and nothing is created.
    for args in [&["user", "list"][..], &["init"][..]] {
        let mut all = vec!["--data-dir", nd, "--database", &url];
        all.extend_from_slice(args);
        let out = tessera(host.path(), &all, &[]);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("TESSERA_MASTER_KEY is not set"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("tessera init`"), "{args:?}: {err}");
        assert!(!nowhere.exists(), "{args:?} created {nd}");
        assert!(!host.path().join("tessera-data").exists());
    }
    let out = tessera(
        host.path(),
        &["--data-dir", nd, "--database", &url, "user", "list"],
        &[("TESSERA_MASTER_KEY", &key)],
    );
    assert!(stdout(&out).contains("alice"), "{}", stderr(&out));
}

/// Review of item 14: the README's example resource server reads TESSERA_AUDIENCE and
/// friends from the same shell, and every command warned about them; under `serve
/// --log-format json` the warnings were plain lines in the JSON log.
#[tokio::test]
async fn hardening_operator_env_warnings_know_the_example_and_follow_the_log_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let example = [
        ("TESSERA_AUDIENCE", "api"),
        ("TESSERA_FEED_CLIENT_ID", "feed"),
        ("TESSERA_CACHE_CAPACITY", "100"),
        ("TESSERA_INTROSPECTION_CLIENT_ID", "intro"),
        ("TESSERA_ACESS_TOKEN_TTL_SECS", "60"),
    ];
    let (code, log) = serve_log(
        dir.path(),
        &["--data-dir", data.to_str().unwrap()],
        &[&example[..], &[("TESSERA_LOG_FORMAT", "json")]].concat(),
    );
    assert_eq!(code, None, "{log}");
    let key = std::fs::read_to_string(data.join("master.key")).unwrap();
    register_secret(key.trim());
    let warned: Vec<&str> = log.lines().filter(|l| l.contains("TESSERA_")).collect();
    assert_eq!(warned.len(), 1, "{log}");
    let line: Value = serde_json::from_str(warned[0]).expect("a JSON log line");
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(warned[0].contains("TESSERA_ACESS_TOKEN_TTL_SECS"), "{log}");
    let out = tessera(
        dir.path(),
        &["--data-dir", data.to_str().unwrap(), "user", "list"],
        &example[..4],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("unknown environment variable"),
        "{}",
        stderr(&out)
    );
}
