//! nginx `auth_request` (the Debian package) in front of a tiny upstream that echoes the
//! headers it received, with the real `tessera` server as issuer and the real
//! `tessera-gateway` answering the sub-requests, configured as docs/gateway.md says.
//! Skipped with a message when nginx or the `tessera` binary is missing, unless CI=true.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest wait for a process to come up; what does not happen fails at this bound.
const WAIT: Duration = Duration::from_secs(60);
/// How long a revocation may take to reach the gateway before the test fails (the goal
/// is under a second; the bound leaves room for a loaded machine).
const REVOCATION_BOUND: Duration = Duration::from_secs(3);
const GATEWAY: &str = env!("CARGO_BIN_EXE_tessera-gateway");
const SECRET_VAR: &str = "TESSERA_GATEWAY_FEED_SECRET";

/// A child process, killed by its PID (through `Child`) on drop, with its stderr kept.
struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `cmd`, collecting stderr; returns the process and the first line that
    /// starts with "listening on " (without the prefix), if `wait_for_url`.
    fn start(mut cmd: Command, wait_for_url: bool) -> (Proc, Option<String>) {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the process");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let (tx, rx) = mpsc::channel();
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
        let proc = Proc { child, log };
        let url = wait_for_url.then(|| match rx.recv_timeout(WAIT) {
            Ok(url) => url,
            Err(_) => panic!("process did not start; log:\n{}", proc.log()),
        });
        (proc, url)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `tessera` and `nginx` binaries, or `None` (skip) with a message; under CI=true a
/// missing one fails the test.
fn binaries() -> Option<(PathBuf, PathBuf)> {
    let tessera = Path::new(GATEWAY).parent().unwrap().join("tessera");
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let missing = match (&nginx, tessera.exists()) {
        (None, _) => Some("nginx is not installed (apt-get install nginx-light)".to_owned()),
        (_, false) => Some(format!(
            "{} is not built (cargo build -p tessera)",
            tessera.display()
        )),
        _ => None,
    };
    if let Some(why) = missing {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and {why}");
        }
        eprintln!("skipping the nginx end-to-end test: {why}");
        return None;
    }
    Some((tessera, nginx?))
}

/// A port nothing listens on now.
async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The upstream: answers every request with the method, URI and headers it received, and
/// counts requests.
async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let app = Router::new().fallback(move |req: Request| {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                    )
                })
                .collect();
            axum::Json(json!({
                "method": req.method().as_str(),
                "uri": req.uri().to_string(),
                "headers": headers,
            }))
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// The nginx example the README and docs/gateway.md show (they include this file's text;
/// [`the_docs_show_the_nginx_example_the_test_runs`] checks it), with the API at
/// `127.0.0.1:8000` and the gateway at `127.0.0.1:9000`.
const EXAMPLE: &str = include_str!("../../../../docs/examples/nginx-gateway.conf");

/// nginx's configuration: the example with the test's addresses, in a server block of the
/// test's own prefix.
fn nginx_conf(prefix: &Path, port: u16, gateway: &str, upstream: SocketAddr) -> String {
    assert_eq!(EXAMPLE.matches("http://127.0.0.1:8000").count(), 1);
    assert_eq!(EXAMPLE.matches("http://127.0.0.1:9000").count(), 2);
    let locations = EXAMPLE
        .replace("http://127.0.0.1:8000", &format!("http://{upstream}"))
        .replace("http://127.0.0.1:9000", gateway);
    let p = prefix.display();
    format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"#
    )
}

#[test]
fn the_docs_show_the_nginx_example_the_test_runs() {
    for doc in ["README.md", "docs/gateway.md"] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(doc),
        )
        .unwrap();
        assert!(
            text.contains(&format!("```nginx\n{EXAMPLE}```")),
            "{doc} must show docs/examples/nginx-gateway.conf verbatim in a ```nginx block"
        );
    }
}

struct Stack {
    _server: Proc,
    _server_dir: tempfile::TempDir,
    gateway: Proc,
    _nginx: Proc,
    _nginx_dir: tempfile::TempDir,
    tessera: PathBuf,
    data_dir: PathBuf,
    base: String,
    front: String,
    front_addr: SocketAddr,
    seen: Arc<AtomicUsize>,
    /// (id, secret) of the API's client (audience notes-api) and another API's client.
    svc: (String, String),
    other: (String, String),
    http: reqwest::Client,
}

/// `tessera --data-dir DIR ARGS` must succeed; returns stdout.
fn cli(tessera: &Path, data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(tessera)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn add_client(
    tessera: &Path,
    data_dir: &Path,
    name: &str,
    scope: &str,
    aud: &[&str],
) -> (String, String) {
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
    for a in aud {
        args.extend(["--audience", a]);
    }
    let v: Value = serde_json::from_str(&cli(tessera, data_dir, &args)).unwrap();
    (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().unwrap().to_owned(),
    )
}

impl Stack {
    async fn start() -> Option<Stack> {
        let (tessera, nginx) = binaries()?;
        // The authorization server.
        let server_dir = tempfile::tempdir().unwrap();
        let data_dir = server_dir.path().join("data");
        let mut cmd = Command::new(&tessera);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_ISSUER")
            .env_remove("TESSERA_LISTEN");
        let (server, base) = Proc::start(cmd, true);
        let base = base.unwrap();
        let svc = add_client(
            &tessera,
            &data_dir,
            "svc",
            "notes:read notes:write",
            &["notes-api"],
        );
        let other = add_client(&tessera, &data_dir, "other", "notes:read", &["other-api"]);
        let rs = add_client(&tessera, &data_dir, "gateway-feed", "", &[]);
        // The upstream, and nginx's port (the gateway's public URL names it).
        let (upstream, seen) = upstream().await;
        let port = free_port().await;
        let front = format!("http://127.0.0.1:{port}");
        // The gateway.
        let gw_dir = server_dir.path().join("gateway");
        std::fs::create_dir_all(&gw_dir).unwrap();
        let config = format!(
            r#"
listen = "127.0.0.1:0"
mode = "forward_auth"
issuer = "{base}"
audience = "notes-api"
public_base_url = "{front}"
realm = "notes"
leeway_secs = 0

[forward_auth]
proxy = "nginx"

[revocation]
client_id = "{rs_id}"
client_secret_env = "{SECRET_VAR}"

[[route]]
path = "/public"
public = true

[[route]]
methods = ["GET"]
path = "/notes"
scopes = ["notes:read"]

[[route]]
methods = ["POST"]
path = "/notes"
scopes = ["notes:write"]

[[route]]
path = "/export"
scopes = ["notes:read"]
dpop = "require"
"#,
            rs_id = rs.0
        );
        let config_path = gw_dir.join("gateway.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut cmd = Command::new(GATEWAY);
        cmd.arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "trace")
            .env(SECRET_VAR, &rs.1);
        let (gateway, gw_url) = Proc::start(cmd, true);
        let gw_url = gw_url.unwrap();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = http.get(format!("{gw_url}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "gateway not ready; log:\n{}",
                gateway.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // nginx, as the test's own process with its own prefix.
        let nginx_dir = tempfile::tempdir().unwrap();
        for d in [
            "tmp/body",
            "tmp/proxy",
            "tmp/fastcgi",
            "tmp/uwsgi",
            "tmp/scgi",
        ] {
            std::fs::create_dir_all(nginx_dir.path().join(d)).unwrap();
        }
        let conf = nginx_dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx_conf(nginx_dir.path(), port, &gw_url, upstream)).unwrap();
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(nginx_dir.path())
            .arg("-e")
            .arg(nginx_dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf);
        let (nginx, _) = Proc::start(cmd, false);
        let front_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(front_addr).await.is_err() {
            let error_log =
                std::fs::read_to_string(nginx_dir.path().join("error.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}\n{error_log}",
                nginx.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(Stack {
            _server: server,
            _server_dir: server_dir,
            gateway,
            _nginx: nginx,
            _nginx_dir: nginx_dir,
            tessera,
            data_dir,
            base,
            front,
            front_addr,
            seen,
            svc,
            other,
            http,
        })
    }

    /// A client-credentials token of `client` for `scope`.
    async fn token(&self, client: &(String, String), scope: &str) -> String {
        let r = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(status, 200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// GET (or `method`) `path` through nginx with `headers`.
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.front));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(" | ");
        let body = r.text().await.unwrap();
        Answer {
            status,
            challenge,
            upstream: serde_json::from_str(&body).unwrap_or(Value::Null),
        }
    }

    /// Sends `target` as-is (no client-side path normalisation) and returns the status.
    async fn raw_status(&self, target: &str) -> u16 {
        let mut s = TcpStream::connect(self.front_addr).await.unwrap();
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.front_addr
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        text.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

struct Answer {
    status: u16,
    challenge: String,
    /// What the upstream echoed (Null when the request did not reach it).
    upstream: Value,
}

impl Answer {
    fn upstream_header(&self, name: &str) -> Option<&str> {
        self.upstream["headers"][name].as_str()
    }
}

#[tokio::test]
async fn nginx_passes_valid_tokens_with_the_identity_and_refuses_the_rest() {
    let Some(s) = Stack::start().await else {
        return;
    };
    let read = s.token(&s.svc, "notes:read").await;
    let auth = format!("Bearer {read}");

    // Valid: the upstream sees the identity, not the token.
    let ok = s
        .call("GET", "/notes/7?x=1", &[("authorization", &auth)])
        .await;
    assert_eq!(ok.status, 200, "valid token");
    assert_eq!(ok.upstream_header("x-auth-subject"), Some(s.svc.0.as_str()));
    assert_eq!(
        ok.upstream_header("x-auth-client-id"),
        Some(s.svc.0.as_str())
    );
    assert_eq!(ok.upstream_header("x-auth-scope"), Some("notes:read"));
    assert_eq!(ok.upstream_header("authorization"), None);
    assert_eq!(ok.upstream["uri"], "/notes/7?x=1");

    // Spoofed identity headers from the client: the upstream sees the gateway's.
    let spoofed = s
        .call(
            "GET",
            "/notes",
            &[
                ("authorization", &auth),
                ("x-auth-subject", "admin"),
                ("x-auth-scope", "notes:admin"),
                ("x-auth-client-id", "admin-console"),
                ("x_auth_subject", "admin"),
            ],
        )
        .await;
    assert_eq!(spoofed.status, 200);
    assert_eq!(
        spoofed.upstream_header("x-auth-client-id"),
        Some(s.svc.0.as_str())
    );
    // nginx drops names with `_` (underscores_in_headers off by default).
    assert_eq!(spoofed.upstream_header("x_auth_subject"), None);
    assert_eq!(
        spoofed.upstream_header("x-auth-subject"),
        Some(s.svc.0.as_str())
    );
    assert_eq!(spoofed.upstream_header("x-auth-scope"), Some("notes:read"));
    // ... and on a public route, none at all.
    let public = s
        .call(
            "GET",
            "/public/page",
            &[
                ("x-auth-subject", "admin"),
                ("x-auth-client-id", "x"),
                ("dpop", "a-proof"),
            ],
        )
        .await;
    assert_eq!(public.status, 200);
    assert_eq!(
        public.upstream_header("dpop"),
        None,
        "the example clears DPoP"
    );
    assert_eq!(
        public.upstream_header("x-auth-subject"),
        None,
        "{}",
        public.upstream
    );
    assert_eq!(public.upstream_header("x-auth-client-id"), None);

    let before = s.seen.load(Ordering::SeqCst);
    // Missing: 401 with the bare challenge.
    let missing = s.call("GET", "/notes", &[]).await;
    assert_eq!(missing.status, 401, "missing token");
    assert!(
        missing.challenge.starts_with("Bearer realm=\"notes\""),
        "{}",
        missing.challenge
    );
    assert!(
        !missing.challenge.contains("error="),
        "{}",
        missing.challenge
    );
    // Wrong audience: 401 invalid_token.
    let other = s.token(&s.other, "notes:read").await;
    let r = s
        .call(
            "GET",
            "/notes",
            &[("authorization", &format!("Bearer {other}"))],
        )
        .await;
    assert_eq!(r.status, 401, "wrong audience");
    assert!(
        r.challenge.contains("error=\"invalid_token\""),
        "{}",
        r.challenge
    );
    // Wrong scope: 403 insufficient_scope, the challenge passed through.
    let r = s.call("POST", "/notes", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 403, "wrong scope");
    assert!(
        r.challenge.contains("error=\"insufficient_scope\""),
        "{}",
        r.challenge
    );
    assert!(
        r.challenge.contains("scope=\"notes:write\""),
        "{}",
        r.challenge
    );
    // A DPoP-required route with a bearer token: 401, the error on the DPoP challenge.
    let r = s.call("GET", "/export", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 401, "bearer on a DPoP route");
    assert!(r.challenge.contains("DPoP"), "{}", r.challenge);
    // No route: 403.
    let r = s.call("GET", "/admin", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 403, "no route");
    // Ambiguous paths: nginx would route `/public/../notes` as /notes, the gateway
    // refuses to judge it (400, which nginx answers as 500): never the upstream.
    for target in [
        "/public/../notes",
        "/public/%2e%2e/notes",
        "/public/..%2fnotes",
    ] {
        let status = s.raw_status(target).await;
        assert!(status >= 400, "{target}: {status}");
    }
    assert_eq!(
        s.seen.load(Ordering::SeqCst),
        before,
        "a refused request reached the upstream"
    );
    // Expired: minted for one second (the gateway allows no leeway here).
    let expired = cli(
        &s.tessera,
        &s.data_dir,
        &[
            "token",
            "mint",
            "--issuer",
            &s.base,
            "--client",
            &s.svc.0,
            "--audience",
            "notes-api",
            "--scope",
            "notes:read",
            "--ttl",
            "1",
        ],
    );
    let expired = format!("Bearer {}", expired.trim());
    let deadline = Instant::now() + WAIT;
    loop {
        let r = s
            .call("GET", "/notes", &[("authorization", &expired)])
            .await;
        if r.status == 401 {
            assert!(
                r.challenge.contains("error=\"invalid_token\""),
                "{}",
                r.challenge
            );
            break;
        }
        assert_eq!(r.status, 200, "minted token before expiry");
        assert!(Instant::now() < deadline, "the minted token never expired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The metadata through nginx.
    let meta = s
        .http
        .get(format!("{}/.well-known/oauth-protected-resource", s.front))
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), 200);

    // Tokens never reach the gateway's log (it ran at trace level).
    let log = s.gateway.log();
    for t in [&read, &other] {
        assert!(!log.contains(t.as_str()), "a token in the gateway's log");
    }
}

#[tokio::test]
async fn nginx_refuses_a_revoked_token_once_the_push_reaches_the_gateway() {
    let Some(s) = Stack::start().await else {
        return;
    };
    let token = s.token(&s.svc, "notes:read").await;
    let auth = format!("Bearer {token}");
    // Warm the gateway's cache.
    for _ in 0..3 {
        assert_eq!(
            s.call("GET", "/notes", &[("authorization", &auth)])
                .await
                .status,
            200
        );
    }
    let r = s
        .http
        .post(format!("{}/revoke", s.base))
        .basic_auth(&s.svc.0, Some(&s.svc.1))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + REVOCATION_BOUND;
    loop {
        let r = s.call("GET", "/notes", &[("authorization", &auth)]).await;
        if r.status == 401 {
            assert!(
                r.challenge.contains("error=\"invalid_token\""),
                "{}",
                r.challenge
            );
            break;
        }
        assert_eq!(r.status, 200);
        assert!(
            Instant::now() < deadline,
            "revoked token still allowed after {REVOCATION_BOUND:?}; gateway log:\n{}",
            s.gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
