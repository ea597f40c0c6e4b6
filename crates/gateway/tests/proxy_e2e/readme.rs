//! The README's FastAPI example, run as shown: `docs/examples/fastapi-gateway.toml` and
//! `docs/examples/fastapi_app.py` (which the README includes verbatim) with only the three
//! addresses and the feed client's id replaced, behind the real `tessera-gateway` binary
//! and the real `tessera` server.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Gateway, Issuer, Upstream, free_port, python, tessera_bin};
use crate::{challenge, ws_handshake_at, ws_read};

const TOML: &str = include_str!("../../../../docs/examples/fastapi-gateway.toml");
const APP: &str = include_str!("../../../../docs/examples/fastapi_app.py");

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn the_readme_shows_the_fastapi_example_files_verbatim() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for (lang, file, name) in [
        ("toml", TOML, "fastapi-gateway.toml"),
        ("python", APP, "fastapi_app.py"),
    ] {
        assert!(
            readme.contains(&format!("```{lang}\n{file}```")),
            "README.md must show docs/examples/{name} verbatim in a ```{lang} block"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_fastapi_example_runs_as_shown() {
    let (Some(bin), Some(python)) = (tessera_bin(), python()) else {
        return;
    };
    let issuer = Issuer::start(bin);
    let feed = issuer.add_client("notes-gateway", "", None);
    let caller = issuer.add_client("notes-cli", "notes:read", Some("notes-api"));
    let port = free_port();
    for (from, count) in [
        ("127.0.0.1:9000", 2),
        ("http://127.0.0.1:8080", 1),
        ("http://127.0.0.1:8000", 1),
        ("\"notes-gateway\"", 1),
    ] {
        assert_eq!(TOML.matches(from).count(), count, "{from}");
    }
    let toml = TOML
        .replace("127.0.0.1:9000", "{listen}")
        .replace("http://127.0.0.1:8080", &issuer.base)
        .replace("http://127.0.0.1:8000", &format!("http://127.0.0.1:{port}"))
        .replace("\"notes-gateway\"", &format!("{:?}", feed.0));
    let gateway = Gateway::start(&toml, &[("NOTES_GATEWAY_SECRET", &feed.1)]).await;
    assert!(
        toml.contains("public_base_url = \"http://{listen}\""),
        "the public URL is the gateway's"
    );
    let _app = Upstream::start_app(
        &python,
        port,
        &repo().join("docs/examples"),
        "fastapi_app:app",
        &gateway.base,
    );
    let http = reqwest::Client::new();
    let token = issuer.token(&caller, "notes:read").await;

    let r = http
        .get(format!("{}/notes", gateway.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"owner": caller.0, "scope": ["notes:read"]}));

    let r = http
        .get(format!("{}/notes", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).starts_with("Bearer"), "{}", challenge(&r));
    // A path no route names: default = "deny".
    let r = http
        .get(format!("{}/admin", gateway.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (_, head) = ws_handshake_at(gateway.addr, None).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (mut ws, head) = ws_handshake_at(gateway.addr, Some(&token)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(ws_read(&mut ws).await, format!("hello {}", caller.0));
}
