//! Interop: the `oauth2` crate (oauth2-rs 5, the common Rust OAuth client) against the real
//! server: client credentials with HTTP Basic and in the body, password, refresh, errors.

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, ClientId, ClientSecret, RequestTokenError, ResourceOwnerPassword,
    ResourceOwnerUsername, Scope, TokenResponse, TokenUrl,
};

use crate::harness::{PASSWORD, Server};

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn server_error<E: std::error::Error + 'static>(
    e: RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> BasicErrorResponseType {
    match e {
        RequestTokenError::ServerResponse(r) => r.error().clone(),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

#[tokio::test]
async fn oauth2_rs_client_gets_refreshes_and_reads_errors() {
    let s = Server::start();
    let (id, secret) = s.add_client(
        "web",
        "client_credentials,password,refresh_token",
        "a b",
        &[],
    );
    s.add_user("alice", PASSWORD);
    let client = BasicClient::new(ClientId::new(id))
        .set_client_secret(ClientSecret::new(secret.unwrap()))
        .set_token_uri(TokenUrl::new(s.url("/token")).unwrap());
    let http = http();

    let cc = client
        .exchange_client_credentials()
        .add_scope(Scope::new("a".into()))
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(cc.scopes().unwrap(), &vec![Scope::new("a".into())]);
    assert_eq!(cc.expires_in().unwrap().as_secs(), 600);
    assert!(cc.refresh_token().is_none());
    // client_secret_post.
    let post = client.clone().set_auth_type(AuthType::RequestBody);
    post.exchange_client_credentials()
        .request_async(&http)
        .await
        .unwrap();

    let user = ResourceOwnerUsername::new("alice".into());
    let tok = client
        .exchange_password(&user, &ResourceOwnerPassword::new(PASSWORD.into()))
        .request_async(&http)
        .await
        .unwrap();
    let rt = tok.refresh_token().unwrap().clone();
    let next = client
        .exchange_refresh_token(&rt)
        .request_async(&http)
        .await
        .unwrap();
    assert_ne!(next.refresh_token().unwrap().secret(), rt.secret());

    let wrong = ResourceOwnerPassword::new("not the password".into());
    let e = client
        .exchange_password(&user, &wrong)
        .request_async(&http)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), BasicErrorResponseType::InvalidGrant);
    let e = client
        .exchange_refresh_token(&rt)
        .request_async(&http)
        .await
        .unwrap_err();
    assert_eq!(
        server_error(e),
        BasicErrorResponseType::InvalidGrant,
        "reuse"
    );
    let e = client
        .exchange_client_credentials()
        .add_scope(Scope::new("admin".into()))
        .request_async(&http)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), BasicErrorResponseType::InvalidScope);
    let bad = client
        .clone()
        .set_client_secret(ClientSecret::new("tsr_cs_wrong".into()));
    let e = bad
        .exchange_client_credentials()
        .request_async(&http)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), BasicErrorResponseType::InvalidClient);
}

/// A Python with PyJWT: `TESSERA_TEST_PYTHON` if set, else a venv this test creates once
/// under the target directory (`python3 -m venv` + `pip install pyjwt[crypto]` from PyPI).
/// If neither works the test fails under CI (`CI=true`) and is skipped with the reason
/// elsewhere.
pub(crate) fn pyjwt_python() -> Option<String> {
    if let Ok(python) = std::env::var("TESSERA_TEST_PYTHON") {
        return Some(python);
    }
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyjwt-venv");
    let python = venv.join("bin/python");
    let ready = |p: &std::path::Path| {
        std::process::Command::new(p)
            .args(["-c", "import jwt, cryptography"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let result = if ready(&python) {
        Ok(())
    } else {
        create_pyjwt_venv(&venv, &python)
    };
    match result.and_then(|()| {
        if ready(&python) {
            Ok(())
        } else {
            Err("PyJWT does not import in the venv".to_owned())
        }
    }) {
        Ok(()) => Some(python.to_string_lossy().into_owned()),
        Err(why) => {
            let msg = format!("PyJWT interop needs python3 with venv and PyPI access: {why}");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            None
        }
    }
}

fn create_pyjwt_venv(venv: &std::path::Path, python: &std::path::Path) -> Result<(), String> {
    let run = |cmd: &mut std::process::Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    };
    run(std::process::Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(venv))?;
    run(std::process::Command::new(python).args([
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "pyjwt[crypto]",
    ]))
}

/// PyJWT (`PyJWKClient` + `jwt.decode`) verifies our tokens from the JWKS, for EdDSA and
/// ES256, and refuses another audience.
#[tokio::test]
async fn pyjwt_verifies_tokens_from_the_jwks() {
    let Some(python) = pyjwt_python() else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/pyjwt_verify.py");
    for config in ["", "signing_alg = \"ES256\"\n"] {
        let s = Server::start_with(config, &[]);
        let (id, secret) = s.add_client("svc", "client_credentials", "a", &["--audience", "api"]);
        let r = s
            .token(
                &[("grant_type", "client_credentials")],
                Some((&id, &secret.unwrap())),
            )
            .await;
        let token = r.str("access_token");
        let run = |aud: &str| {
            let mut child = std::process::Command::new(&python)
                .args([script, &s.base, aud])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(token.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        };
        let ok = run("api");
        assert!(
            ok.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let claims: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
        assert_eq!(claims["client_id"], id.as_str());
        assert!(
            !run("other-api").status.success(),
            "PyJWT must refuse another audience"
        );
    }
}
