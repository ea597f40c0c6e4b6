//! The findings of an attacker's review of proxy mode, each as the reviewer reproduced it:
//! an `h2c` upgrade on a public route opening a raw tunnel past the route table, a 101 to
//! another protocol than the one asked, tunnels without a cap, idle timeout or lifetime,
//! encoded, cased and `;` paths skipping a route, a body cut off by `max_body_bytes`
//! answered 502, a transfer coding the upstream would misread, and a private key file
//! others can read. The upstream here is a raw one (`RawUpstream`) that answers 101 to any
//! request carrying `Upgrade` and then echoes, as Hypercorn does for `h2c`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Gateway, Issuer, free_port, tessera_bin};
use crate::{Fixture, raw};

/// An upstream answering 101 to any request with an `Upgrade` header (with the protocol
/// asked for, or `h2c` for paths starting `/liar`) and then echoing every byte prefixed
/// with `TUNNEL:`; any other request gets 200 with the request head as its body. Every
/// head is recorded.
struct RawUpstream {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(Self::serve(conn, Arc::clone(&log)));
            }
        });
        RawUpstream { addr, heads }
    }

    async fn serve(mut c: TcpStream, log: Arc<Mutex<Vec<String>>>) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        log.lock().unwrap().push(head.clone());
        let lower = head.to_ascii_lowercase();
        let asked = lower
            .lines()
            .find_map(|l| l.strip_prefix("upgrade:"))
            .map(|p| p.trim().to_owned());
        let Some(asked) = asked else {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                head.len()
            );
            let _ = c.write_all(answer.as_bytes()).await;
            return;
        };
        let protocol = if lower.starts_with("get /liar") {
            "h2c"
        } else {
            asked.as_str()
        };
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
        );
        if c.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        loop {
            match c.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut out = b"TUNNEL:".to_vec();
                    out.extend_from_slice(&chunk[..n]);
                    if c.write_all(&out).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// The gateway binary in front of `upstream`: `/healthz`, `/ws`, `/liar` public, anything
/// else needs a token of `issuer` (a dead address when `None`: then the gateway answers
/// 503 to requests needing a token and serves public ones). `proxy` adds `[proxy]` keys.
async fn gateway(upstream: &RawUpstream, issuer: Option<&Issuer>, proxy: &str) -> Gateway {
    let issuer = issuer.map_or_else(
        || format!("http://127.0.0.1:{}", free_port()),
        |i| i.base.clone(),
    );
    let toml = format!(
        "listen = \"{{listen}}\"\nmode = \"proxy\"\nissuer = \"{issuer}\"\naudience = \"api\"\n\
         public_base_url = \"{{public}}\"\ndefault = \"authenticated\"\n\
         [proxy]\nupstream = \"http://{}\"\n{proxy}\n\
         [[route]]\npath = \"/healthz\"\npublic = true\n\
         [[route]]\npath = \"/ws\"\npublic = true\n\
         [[route]]\npath = \"/liar\"\npublic = true\n",
        upstream.addr
    );
    Gateway::start(&toml, &[]).await
}

/// Sends a WebSocket handshake for `path`; returns the stream and the answer's head.
async fn upgrade(addr: SocketAddr, path: &str, token: Option<&str>) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// Sends `msg` through an open tunnel and reads the echo; false if the tunnel is closed.
async fn echoes(s: &mut TcpStream, msg: &str) -> bool {
    if s.write_all(msg.as_bytes()).await.is_err() {
        return false;
    }
    let want = format!("TUNNEL:{msg}");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want.len() {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    got == want.as_bytes()
}

/// Waits (at most `within`) for the peer to close `s`; keeps the tunnel busy with a
/// message every 200 ms when `busy`, so only a lifetime can close it.
async fn closed_within(s: &mut TcpStream, within: Duration, busy: bool) -> bool {
    let deadline = Instant::now() + within;
    let mut i = 0;
    while Instant::now() < deadline {
        if busy {
            i += 1;
            if !echoes(s, &format!("m{i}")).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
            if let Ok(Ok(0) | Err(_)) = read {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upgrade_on_a_public_route_opens_no_tunnel_past_the_route_table() {
    let upstream = RawUpstream::start().await;
    let gw = gateway(&upstream, None, "").await;
    // The reviewer's request, with a protected request right behind it: were a tunnel
    // opened, the second would reach the upstream unjudged.
    let requests = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n\
        Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n\
        GET /admin HTTP/1.1\r\nHost: x\r\nX-Auth-Subject: root\r\nConnection: close\r\n\r\n";
    let answer = raw(gw.addr, requests, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.contains("101 Switching") && !answer.contains("TUNNEL:"),
        "{answer}"
    );
    // The second request was judged by the gateway: a token is needed.
    assert!(
        answer.contains("HTTP/1.1 401") || answer.contains("HTTP/1.1 503"),
        "{answer}"
    );
    let heads = upstream.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let seen = heads[0].to_ascii_lowercase();
    assert!(seen.starts_with("get /healthz"), "{seen}");
    assert!(
        !seen.contains("upgrade") && !seen.contains("http2-settings"),
        "{seen}"
    );

    // A WebSocket upgrade other than by GET is not passed either.
    let post = b"POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Content-Length: 0\r\n\r\n";
    let answer = raw(gw.addr, post, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!upstream.heads()[1].to_ascii_lowercase().contains("upgrade"));

    // A WebSocket on GET is passed, and only to the protocol asked for: a 101 to h2c is 502
    // and the client's connection is closed.
    let (mut s, head) = upgrade(gw.addr, "/ws", None).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(echoes(&mut s, "hello").await);
    let (mut s, head) = upgrade(gw.addr, "/liar", None).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert!(closed_within(&mut s, Duration::from_secs(10), false).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_are_capped_and_closed_when_idle() {
    let upstream = RawUpstream::start().await;
    let gw = gateway(
        &upstream,
        None,
        "max_tunnels = 1\ntunnel_idle_timeout_secs = 1\ntunnel_max_lifetime_secs = 600",
    )
    .await;
    let (mut first, head) = upgrade(gw.addr, "/ws", None).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(echoes(&mut first, "one").await);
    let (_, head) = upgrade(gw.addr, "/ws", None).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    // Silent for longer than the idle timeout: closed, and its slot given back.
    assert!(closed_within(&mut first, Duration::from_secs(15), false).await);
    let mut reopened = false;
    for _ in 0..50 {
        let (mut s, head) = upgrade(gw.addr, "/ws", None).await;
        if head.starts_with("HTTP/1.1 101") {
            reopened = echoes(&mut s, "again").await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "the closed tunnel's slot was not given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_tunnel_is_closed_at_its_lifetime() {
    let upstream = RawUpstream::start().await;
    let gw = gateway(
        &upstream,
        None,
        "tunnel_idle_timeout_secs = 600\ntunnel_max_lifetime_secs = 2",
    )
    .await;
    let (mut s, head) = upgrade(gw.addr, "/ws", None).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(closed_within(&mut s, Duration::from_secs(20), true).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_opened_with_a_token_is_closed_when_the_token_expires() {
    let Some(bin) = tessera_bin() else {
        return;
    };
    let issuer = Issuer::start(bin);
    let (client, _) = issuer.add_client("svc", "a", Some("api"));
    let upstream = RawUpstream::start().await;
    let gw = gateway(
        &upstream,
        Some(&issuer),
        "tunnel_idle_timeout_secs = 600\ntunnel_max_lifetime_secs = 600",
    )
    .await;
    // Valid for 3 s (the guard's 30 s leeway still accepts it after that).
    let token = issuer.mint(&client, "a", "api", 3);
    let (mut s, head) = upgrade(gw.addr, "/chat", Some(&token)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(echoes(&mut s, "hi").await);
    assert!(closed_within(&mut s, Duration::from_secs(20), true).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_cased_and_parameter_paths_never_skip_a_route() {
    let Some(f) = Fixture::start_with(|c| {
        format!("{c}\n[[route]]\npath = \"/notes/admin\"\nscopes = [\"admin\"]\n")
    })
    .await
    else {
        return;
    };
    let token = f.token("a").await; // no `admin` scope
    for (path, status) in [
        ("/admin/users", "403"),
        ("/%61dmin/users", "400"),
        ("/Admin/users", "403"),
        ("/ADMIN/users", "403"),
        ("/admin;x/users", "400"),
        ("/public/%2e%2e/admin", "400"),
        ("/public/..;/admin", "400"),
        ("/notes/%61dmin", "400"),
        ("/notes/Admin", "403"),
    ] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw(f.gateway.addr, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {answer}"
        );
    }
    let seen = f.upstream.seen().await;
    assert!(
        !seen
            .iter()
            .any(|p| p.to_ascii_lowercase().contains("admin")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_coding_other_than_chunked_is_400() {
    let upstream = RawUpstream::start().await;
    let gw = gateway(&upstream, None, "").await;
    let req = b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\
        Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let answer = raw(gw.addr, req, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let plain = b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let answer = raw(gw.addr, plain, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(upstream.heads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_key_file_others_can_read_is_warned_about_at_start() {
    let upstream = RawUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.pem");
    let pem = tessera_token::SigningKey::generate(tessera_token::Algorithm::Es256)
        .unwrap()
        .to_pkcs8_pem()
        .unwrap();
    std::fs::write(&key, pem.as_bytes()).unwrap();
    let identity = format!(
        "[identity]\njwt = true\njwt_key_file = \"{}\"\n",
        key.display()
    );
    for (mode, warned) in [(0o600, false), (0o644, true)] {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = (mode, warned);
        let toml = format!(
            "listen = \"{{listen}}\"\nmode = \"proxy\"\nissuer = \"http://127.0.0.1:{}\"\n\
             audience = \"api\"\npublic_base_url = \"{{public}}\"\n{identity}\
             [proxy]\nupstream = \"http://{}\"\n",
            free_port(),
            upstream.addr
        );
        let gw = Gateway::start(&toml, &[]).await;
        #[cfg(unix)]
        assert_eq!(
            gw.log()
                .contains("jwt_key_file can be read or written by group or others"),
            warned,
            "{mode:o}: {}",
            gw.log()
        );
        drop(gw);
    }
}

/// Third review: hyper passes `delete` on as it is, and Werkzeug and Django upper-case it
/// and run the `DELETE` handler; a `DELETE`-only route must not be skipped for the broader
/// public one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_case_method_is_400_and_never_reaches_the_upstream() {
    let upstream = RawUpstream::start().await;
    let routes = "[[route]]\nmethods = [\"DELETE\"]\npath = \"/notes\"\nscopes = [\"admin\"]\n\
                  [[route]]\npath = \"/notes\"\npublic = true\n";
    let gw = gateway(&upstream, None, routes).await;
    for method in ["delete", "Delete", "dELETE"] {
        let req = format!("{method} /notes/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw(gw.addr, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{method}: {answer}");
    }
    let ok = raw(
        gw.addr,
        b"GET /notes/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let heads = upstream.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].starts_with("GET /notes/1"), "{heads:?}");
}

/// Third review: `X-Forwarded-Host` was the client's `Host` unchecked. With
/// `public_base_url` it is that URL's host whatever the client sends; without it, the
/// client's one `Host` of the form host[:port], and anything else is 400 before the
/// upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_host_is_the_public_host_or_one_plain_host() {
    let upstream = RawUpstream::start().await;
    let gw = gateway(&upstream, None, "").await;
    let answer = raw(
        gw.addr,
        b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let head = upstream.heads().pop().unwrap().to_ascii_lowercase();
    assert!(
        head.contains(&format!("x-forwarded-host: {}\r\n", gw.addr)),
        "{head}"
    );
    assert!(!head.contains("evil"), "{head}");

    let upstream = RawUpstream::start().await;
    let toml = format!(
        "listen = \"{{listen}}\"\nmode = \"proxy\"\nissuer = \"http://127.0.0.1:{}\"\n\
         audience = \"api\"\n[proxy]\nupstream = \"http://{}\"\n\
         [[route]]\npath = \"/\"\npublic = true\n",
        free_port(),
        upstream.addr
    );
    let gw = Gateway::start(&toml, &[]).await;
    for hosts in [
        "Host: a@evil.example\r\n",
        "Host: evil.example/x\r\n",
        "Host: evil.example:x\r\n",
        "Host: a.example\r\nHost: b.example\r\n",
        "",
    ] {
        let req = format!("GET /x HTTP/1.1\r\n{hosts}Connection: close\r\n\r\n");
        let answer = raw(gw.addr, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{hosts:?}: {answer}");
    }
    assert!(upstream.heads().is_empty(), "{:?}", upstream.heads());
    let answer = raw(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: api.example:8443\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let head = upstream.heads().pop().unwrap().to_ascii_lowercase();
    assert!(
        head.contains("x-forwarded-host: api.example:8443\r\n"),
        "{head}"
    );
}

/// Third review: a tunnel opened without a token (a public route) lived until
/// `tunnel_max_lifetime_secs`; it now ends at `tunnel_public_lifetime_secs`, busy or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_public_tunnel_is_closed_at_the_public_lifetime() {
    let upstream = RawUpstream::start().await;
    let gw = gateway(
        &upstream,
        None,
        "tunnel_idle_timeout_secs = 600\ntunnel_max_lifetime_secs = 600\ntunnel_public_lifetime_secs = 2",
    )
    .await;
    let (mut s, head) = upgrade(gw.addr, "/ws", None).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(echoes(&mut s, "hi").await);
    assert!(closed_within(&mut s, Duration::from_secs(20), true).await);
}
