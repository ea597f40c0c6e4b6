//! Starting the server, running the CLI, and speaking HTTP to it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");
pub const PASSWORD: &str = "correct horse battery";

/// Every secret the suite has seen: passwords, client secrets, tokens, Basic credentials,
/// master keys, cookies. Every server runs at trace level (unless a test sets
/// `TESSERA_LOG`) and, when dropped, its whole log is checked against this list: a secret
/// in any server log fails the test that owned the server (docs/operations.md, Logs).
static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

/// Adds a secret to the registry (values shorter than 8 characters are ignored: they
/// would match by chance and no real secret is that short).
pub fn register_secret(secret: &str) {
    if secret.len() < 8 {
        return;
    }
    let mut all = SECRETS.get_or_init(Default::default).lock().unwrap();
    if !all.iter().any(|s| s == secret) {
        all.push(secret.to_owned());
    }
}

/// Registers the secret members of a JSON response or CLI output (tokens, client secrets).
pub fn register_secrets_in(v: &Value) {
    for member in [
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "code",
        "token",
    ] {
        if let Some(s) = v.get(member).and_then(Value::as_str) {
            register_secret(s);
            // A JWT's signature alone is as telling as the whole token.
            if let Some(sig) = s.rsplit('.').next().filter(|_| s.contains('.')) {
                register_secret(sig);
            }
        }
    }
}

/// The registered secrets found in `log`.
pub fn secrets_in(log: &str) -> Vec<String> {
    let all = SECRETS.get_or_init(Default::default).lock().unwrap();
    all.iter()
        .filter(|s| log.contains(s.as_str()))
        .cloned()
        .collect()
}

/// A running `tessera serve`; killed (by its PID, through `Child`) on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
    pub http: reqwest::Client,
    /// The PostgreSQL URL given with `--database`; `None` for SQLite in the data dir.
    pub database: Option<String>,
    /// The `TESSERA_MASTER_KEY` the server was started with, passed to the CLI helpers too
    /// (every command checks the master key against the database).
    master_key: Option<String>,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with("", &[])
    }

    /// Starts with a TOML config (empty for none) and extra environment variables.
    pub fn start_with(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_on(None, config, env)
    }

    /// Starts on the PostgreSQL database `url` (`tessera serve --database URL`); the
    /// CLI helpers then pass `--database URL` too.
    pub fn start_postgres(url: &str) -> Self {
        Self::start_on(Some(url), "", &[])
    }

    /// Starts on `database` (PostgreSQL URL, or `None` for SQLite) with a TOML config
    /// (empty for none) and extra environment variables.
    pub fn start_on(database: Option<&str>, config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_at("127.0.0.1:0", database, config, env)
    }

    /// [`Self::start_on`] listening on `listen` (e.g. a port picked beforehand, for an
    /// issuer that names it).
    pub fn start_at(
        listen: &str,
        database: Option<&str>,
        config: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        register_secret(PASSWORD);
        let mut cmd = Command::new(BIN);
        cmd.env("TESSERA_LOG", "trace")
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", listen])
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_ISSUER")
            .env_remove("TESSERA_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = database {
            cmd.args(["--database", url]);
        }
        if !config.is_empty() {
            let path = dir.path().join("tessera.toml");
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(path);
        }
        for (k, v) in env {
            if k.contains("KEY") || k.contains("SECRET") || k.contains("PASSWORD") {
                register_secret(v);
            }
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start tessera serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            dir,
            log,
            http: reqwest::Client::new(),
            database: database.map(str::to_owned),
            master_key: env
                .iter()
                .find(|(k, _)| *k == "TESSERA_MASTER_KEY")
                .map(|(_, v)| (*v).to_owned()),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => server.base = url,
            Err(_) => panic!("server did not start; log:\n{}", server.log()),
        }
        server
    }

    /// Kills the server and hands back its directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Sends a signal (`"TERM"`, `"HUP"`, ...) to the server with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Whether the server process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (at most `within`) for the server to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once `done` holds for it (lines written before a response was sent may
    /// still be on their way through the pipe when the response arrives); after 10 s,
    /// the log as it is.
    pub fn log_until(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if done(&log) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs `tessera --data-dir DIR ARGS...` with optional standard input.
    /// The server's config file and database are passed too, when it has them.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let config = self.dir.path().join("tessera.toml");
        let mut all = Vec::new();
        if config.exists() {
            all.extend(["--config", config.to_str().unwrap()]);
        }
        if let Some(url) = &self.database {
            all.extend(["--database", url.as_str()]);
        }
        all.extend_from_slice(args);
        let env: Vec<(&str, &str)> = self
            .master_key
            .iter()
            .map(|k| ("TESSERA_MASTER_KEY", k.as_str()))
            .collect();
        run_cli_with(&self.data_dir(), &all, stdin, &env)
    }

    /// Runs the CLI and requires success; returns stdout.
    pub fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "tessera {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `tessera client add NAME --grant-types G --scope S --json` -> (client_id, secret).
    pub fn add_client(
        &self,
        name: &str,
        grants: &str,
        scope: &str,
        extra: &[&str],
    ) -> (String, Option<String>) {
        let mut args = vec![
            "client",
            "add",
            name,
            "--grant-types",
            grants,
            "--scope",
            scope,
            "--json",
        ];
        args.extend_from_slice(extra);
        let v: Value = serde_json::from_str(&self.cli_ok(&args, None)).unwrap();
        register_secrets_in(&v);
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().map(str::to_owned),
        )
    }

    pub fn add_user(&self, name: &str, password: &str) {
        register_secret(password);
        self.cli_ok(
            &["user", "add", name, "--password-stdin"],
            Some(&format!("{password}\n")),
        );
    }

    /// POSTs a form to /token, optionally with HTTP Basic.
    pub async fn token(&self, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Reply {
        self.post_form("/token", form, basic).await
    }

    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Reply {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((id, secret)) = basic {
            req = req.header("authorization", basic_header(id, secret));
        }
        Reply::from(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, basic: Option<(&str, &str)>) -> Reply {
        let mut req = self.http.get(self.url(path));
        if let Some((id, secret)) = basic {
            req = req.header("authorization", basic_header(id, secret));
        }
        Reply::from(req.send().await.unwrap()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(key) = std::fs::read_to_string(self.data_dir().join("master.key")) {
            register_secret(key.trim());
        }
        let leaked = secrets_in(&self.log());
        if !leaked.is_empty() && !std::thread::panicking() {
            panic!(
                "{} secret(s) reached the server log (first: {:.12}...); log:\n{}",
                leaked.len(),
                leaked[0],
                self.log()
            );
        }
    }
}

/// The claims of a JWT, read without verifying it (for assertions on what was issued).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

pub fn basic_header(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    register_secret(secret);
    register_secret(&encoded);
    format!("Basic {encoded}")
}

pub fn run_cli(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run_cli_with(data_dir, args, stdin, &[])
}

/// [`run_cli`] with environment variables `env` (e.g. the deployment's
/// `TESSERA_MASTER_KEY`).
pub fn run_cli_with(
    data_dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// A response: status, headers, JSON body (Null when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        for cookie in headers.get_all("set-cookie") {
            let pair = cookie
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("");
            register_secret(pair.split_once('=').map_or("", |(_, v)| v));
        }
        let bytes = resp.bytes().await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        register_secrets_in(&json);
        Reply {
            status,
            headers,
            json,
        }
    }

    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    /// Asserts an OAuth error response with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{:?}", self.json);
        assert_eq!(self.error(), code, "{:?}", self.json);
        assert_eq!(self.headers["cache-control"], "no-store");
    }

    pub fn str(&self, member: &str) -> String {
        self.json[member]
            .as_str()
            .unwrap_or_else(|| panic!("no {member} in {:?}", self.json))
            .to_owned()
    }
}

/// Verifies an access token against the server's JWKS and returns its claims.
pub async fn verify(server: &Server, token: &str, audience: &str) -> tessera_token::VerifiedClaims {
    let jwks = server.get("/jwks.json", None).await;
    let set = tessera_token::JwkSet::from_json(jwks.json.to_string().as_bytes()).unwrap();
    let keys = tessera_token::KeySet::from_jwks(&set).unwrap();
    let policy = tessera_token::Validation::access_token(server.base.clone(), audience);
    let now = tessera_token::Clock::now(&tessera_token::SystemClock);
    keys.verify(token, &policy, now).unwrap()
}
