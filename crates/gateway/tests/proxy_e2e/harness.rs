//! The pieces of a proxy-mode e2e test: the real `tessera` binary (authorization server),
//! a FastAPI app under uvicorn (a venv created once under the target directory), and the
//! real `tessera-gateway` binary in proxy mode. A small local copy of what
//! crates/cli/tests/e2e/harness.rs does for the server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest wait for a process to come up or a condition to hold.
pub const WAIT: Duration = Duration::from_secs(60);

/// The `tessera` binary next to the gateway's in the target directory (`cargo build -p
/// tessera` puts it there). Missing: the test fails under CI and is skipped elsewhere.
pub fn tessera_bin() -> Option<PathBuf> {
    let gateway = PathBuf::from(env!("CARGO_BIN_EXE_tessera-gateway"));
    let bin = gateway.with_file_name("tessera");
    if bin.exists() {
        return Some(bin);
    }
    skip(&format!(
        "{} is missing: run `cargo build -p tessera` first",
        bin.display()
    ));
    None
}

/// Fails under CI (`CI=true`), prints SKIPPED elsewhere.
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// A process killed (by its PID, through `Child`) on drop, its stderr collected.
pub struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    /// Spawns `cmd` and waits (at most [`WAIT`]) for a stderr line `ready` accepts; returns
    /// what it extracted from that line.
    fn spawn(mut cmd: Command, ready: fn(&str) -> Option<String>) -> (Proc, String) {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(found) = ready(&line) {
                    let _ = tx.send(found);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let proc = Proc { child, log };
        match rx.recv_timeout(WAIT) {
            Ok(found) => (proc, found),
            Err(_) => panic!("process did not start; log:\n{}", proc.log()),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `tessera serve` on a fresh SQLite data directory.
pub struct Issuer {
    bin: PathBuf,
    pub base: String,
    dir: tempfile::TempDir,
    _proc: Proc,
}

impl Issuer {
    pub fn start(bin: PathBuf) -> Issuer {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_ISSUER")
            .env_remove("TESSERA_LISTEN");
        let (proc, base) = Proc::spawn(cmd, |l| l.strip_prefix("listening on ").map(str::to_owned));
        Issuer {
            bin,
            base,
            dir,
            _proc: proc,
        }
    }

    /// Runs the CLI on this server's data directory; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out: Output = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(args)
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_MASTER_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tessera {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Adds a confidential client-credentials client; returns (client_id, secret).
    pub fn add_client(&self, name: &str, scope: &str, audience: Option<&str>) -> (String, String) {
        let mut args = vec![
            "client",
            "add",
            name,
            "--grant-types",
            "client_credentials",
            "--scope",
            scope,
            "--json",
        ];
        if let Some(aud) = audience {
            args.extend(["--audience", aud]);
        }
        let v: Value = serde_json::from_str(&self.cli(&args)).unwrap();
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// `tessera token mint` (signed by the server's key, not recorded as issued).
    pub fn mint(&self, client: &str, scope: &str, audience: &str, ttl: u64) -> String {
        self.cli(&[
            "token",
            "mint",
            "--client",
            client,
            "--scope",
            scope,
            "--audience",
            audience,
            "--ttl",
            &ttl.to_string(),
            "--issuer",
            &self.base,
        ])
        .trim()
        .to_owned()
    }

    /// A client-credentials token from `/token`.
    pub async fn token(&self, client: &(String, String), scope: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/token", self.base))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// Revokes `token` as `client` (RFC 7009).
    pub async fn revoke(&self, client: &(String, String), token: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/revoke", self.base))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// A Python with FastAPI, uvicorn, websockets and PyJWT: `TESSERA_TEST_PYTHON` if set,
/// else a venv created once under the target directory from PyPI. Unavailable: fails
/// under CI, skipped elsewhere.
pub fn python() -> Option<String> {
    if let Ok(python) = std::env::var("TESSERA_TEST_PYTHON") {
        return Some(python);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fastapi-venv");
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args([
                "-c",
                "import fastapi, uvicorn, websockets, jwt, cryptography",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready(&python) {
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
            }
        };
        let made = run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).and_then(|()| {
            run(Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "fastapi",
                "uvicorn",
                "websockets",
                "pyjwt[crypto]",
            ]))
        });
        if let Err(why) = made {
            skip(&format!(
                "the FastAPI upstream needs python3 with venv and PyPI access: {why}"
            ));
            return None;
        }
    }
    Some(python.to_string_lossy().into_owned())
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The FastAPI app of `tests/fastapi/app.py` under uvicorn.
pub struct Upstream {
    pub base: String,
    pub port: u16,
    _proc: Proc,
}

impl Upstream {
    /// Starts the app on `port`; `gateway` is the gateway's URL (for the identity-JWT
    /// check route).
    pub fn start(python: &str, port: u16, gateway: &str) -> Upstream {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fastapi");
        Self::start_app(python, port, Path::new(dir), "app:app", gateway)
    }

    /// Starts the ASGI app `app` (`module:attribute`) found in `dir` on `port`.
    pub fn start_app(python: &str, port: u16, dir: &Path, app: &str, gateway: &str) -> Upstream {
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(python);
        cmd.args([
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--log-level",
            "info",
        ])
        .args(["--port", &port.to_string()])
        .arg("--app-dir")
        .arg(dir)
        .env("GATEWAY_URL", gateway)
        .env("SELF_URL", &base);
        let (proc, _) = Proc::spawn(cmd, |l| l.contains("Uvicorn running on").then(String::new));
        Upstream {
            base,
            port,
            _proc: proc,
        }
    }

    /// The paths the app has received so far (asked directly, not through the gateway).
    pub async fn seen(&self) -> Vec<String> {
        let v: Value = reqwest::get(format!("{}/_seen", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["paths"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .filter(|p| p != "/_seen")
            .collect()
    }
}

/// The real `tessera-gateway` binary in proxy mode on a free loopback port.
pub struct Gateway {
    pub base: String,
    pub addr: SocketAddr,
    _config: tempfile::NamedTempFile,
    proc: Proc,
}

impl Gateway {
    /// Starts the binary on `toml` (`{listen}`/`{public}` filled in here) with `env` added
    /// to its environment; returns once it says it is listening (start-up reads the
    /// revocation feed first, so it is ready then).
    pub async fn start(toml: &str, env: &[(&str, &str)]) -> Gateway {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let base = format!("http://{addr}");
        let text = toml
            .replace("{listen}", &addr.to_string())
            .replace("{public}", &base);
        let mut config = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut config, text.as_bytes()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera-gateway"));
        cmd.arg("--config")
            .arg(config.path())
            .env_remove("TESSERA_GATEWAY_CONFIG")
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (proc, _) = Proc::spawn(cmd, |l| l.strip_prefix("listening on ").map(str::to_owned));
        Gateway {
            base,
            addr,
            _config: config,
            proc,
        }
    }

    /// What the gateway has logged so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// Waits (at most `within`) until `done` holds; false if it never did.
pub async fn eventually<F, Fut>(within: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
