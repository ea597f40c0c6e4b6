//! Browser sign-in in headless Chromium: starts `tessera serve` and the example resource
//! server (which serves the example single-page app at `/spa/`), then runs
//! `tests/browser/signin.mjs` with node (playwright-core driving Debian's
//! `/usr/bin/chromium`). The scenarios live in the script; this test passes it the URLs
//! and credentials and fails when any scenario fails (one enrols TOTP as bob and signs in
//! with it). Screenshots of the login, consent, TOTP enrolment and code pages are saved
//! under `CARGO_TARGET_TMPDIR/browser-screenshots/`.
//!
//! Needs chromium, node and `npm ci` in `tests/browser/` (`.ci/run` installs all three)
//! and the example binary (`cargo test --workspace` builds it). Under `CI=true` a missing
//! piece fails the test; elsewhere it is skipped with the reason.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::{BIN, PASSWORD, Server};

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The example resource server binary next to the `tessera` binary.
pub fn resource_server_bin() -> PathBuf {
    Path::new(BIN)
        .parent()
        .unwrap()
        .join("examples/resource_server")
}

/// What is missing to run the browser tests, if anything.
fn missing() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "{CHROMIUM} is not installed (apt-get install chromium)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".into());
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Some(
            "playwright-core is not installed (npm ci in crates/cli/tests/browser)".into(),
        );
    }
    if !resource_server_bin().exists() {
        return Some(
            "the example resource server is not built (cargo build -p tessera-guard --example resource_server)"
                .into(),
        );
    }
    None
}

/// A child process killed (by its PID, through `Child`) on drop.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (the resource server's address must be known before the
/// client's redirect URI is registered). It is picked below the kernel's ephemeral range:
/// a port the kernel handed out for `bind(0)` could be taken again, by the outgoing
/// connection of another test, between this probe and the server's own bind (which made
/// the example server exit at start, one run in a few dozen).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_start.max(10_100));
    for _ in 0..200 {
        // A random draw (std's per-process hash seeds) so parallel tests spread out.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = low + (h.finish() % u64::from(high - low)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below the ephemeral range {ephemeral_start}");
}

/// Starts the example resource server on `port` with `extra` arguments.
pub fn start_resource_server(issuer: &str, port: u16, extra: &[&str]) -> Running {
    let mut child = Command::new(resource_server_bin())
        .args(["--issuer", issuer, "--audience", "notes-api"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example resource server");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("listening on ") {
                let _ = tx.send(());
            }
            eprintln!("[resource_server] {line}");
        }
    });
    let running = Running(child);
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the example resource server did not start");
    running
}

/// The pages the scenarios photograph.
const SCREENSHOTS: [&str; 7] = [
    "login.png",
    "consent.png",
    "mfa-enrol.png",
    "mfa-code.png",
    "passkey-enrol.png",
    "passkey-signin.png",
    "step-up.png",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_from_a_single_page_app_in_headless_chromium() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "browser tests cannot run under CI: {why}"
        );
        eprintln!("skipping the browser tests: {why}");
        return;
    }
    // The app's origin may call /token, /revoke, /userinfo and discovery (CORS).
    let port = free_port();
    let spa_url = format!("http://127.0.0.1:{port}/spa/");
    let s = Server::start_with(
        &format!("cors_allowed_origins = [\"http://127.0.0.1:{port}\"]\n"),
        &[],
    );
    s.add_user("alice", PASSWORD);
    s.add_user("bob", PASSWORD);
    s.add_user("carol", PASSWORD);
    s.add_user("dave", PASSWORD);
    let (client_id, _) = s.add_client(
        "notes-spa",
        "authorization_code,refresh_token",
        "openid profile notes:read notes:write",
        &[
            "--public",
            "--audience",
            "notes-api",
            "--redirect-uri",
            &spa_url,
            "--post-logout-redirect-uri",
            &spa_url,
        ],
    );
    let cookie_url = format!("http://127.0.0.1:{port}/spa-cookie/");
    let (cookie_client_id, _) = s.add_client(
        "notes-cookie",
        "authorization_code",
        "openid notes:read notes:write",
        &[
            "--public",
            "--audience",
            "notes-api",
            "--redirect-uri",
            &format!("{cookie_url}callback"),
        ],
    );
    let _api = start_resource_server(
        &s.base,
        port,
        &[
            "--spa-client-id",
            &client_id,
            "--spa-cookie-client-id",
            &cookie_client_id,
        ],
    );

    // Passkeys need an issuer with a host name (WebAuthn has no relying party for an IP
    // address): a second server whose issuer is http://localhost:PORT, listening there.
    let pk_port = free_port();
    let pk_issuer = format!("http://localhost:{pk_port}");
    let pk = Server::start_at(
        &format!("127.0.0.1:{pk_port}"),
        None,
        &format!("issuer = \"{pk_issuer}\"\nmfa = \"required\"\n"),
        &[],
    );
    pk.add_user("carol", PASSWORD);
    // Back at the example app's page (it refuses the foreign `state`; the code in the
    // URL is all the scenario needs).
    let pk_redirect = spa_url.clone();
    let (pk_client_id, _) = pk.add_client(
        "passkey-app",
        "authorization_code",
        "openid",
        &["--public", "--redirect-uri", &pk_redirect],
    );

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for f in SCREENSHOTS {
        let _ = std::fs::remove_file(shots.join(f));
    }
    let mut node = tokio::process::Command::new("node");
    node.arg(browser_dir().join("signin.mjs"))
        .current_dir(browser_dir())
        .env("SPA_URL", &spa_url)
        .env("COOKIE_URL", &cookie_url)
        .env("ISSUER", &s.base)
        .env("USERNAME", "alice")
        .env("MFA_USER", "bob")
        .env("PASSKEY_ISSUER", &pk_issuer)
        .env("PASSKEY_CLIENT", &pk_client_id)
        .env("PASSKEY_REDIRECT", &pk_redirect)
        .env("PASSKEY_USER", "carol")
        .env("STEP_UP_USER", "carol")
        .env("ABANDON_USER", "dave")
        .env("PASSWORD", PASSWORD)
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), node.output())
        .await
        .expect("the browser scenarios did not finish within 240 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "browser scenarios failed:\n{stdout}\nserver log:\n{}\npasskey server log:\n{}",
        s.log(),
        pk.log()
    );
    for f in SCREENSHOTS {
        let path = shots.join(f);
        assert!(path.exists(), "no screenshot {}", path.display());
        println!("screenshot: {}", path.display());
    }
    assert!(stdout.matches("\nok - ").count() + usize::from(stdout.starts_with("ok - ")) >= 7);
    // Neither passwords nor codes nor cookies reach the server's log.
    let log = s.log();
    assert!(!log.contains(PASSWORD));
    assert!(!log.contains("tsr_ac_"));
    assert!(!log.contains("tessera_session="));
}
