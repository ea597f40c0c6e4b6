//! Refusals are logged with reason, kid and iss; never with the token or credentials.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tessera_guard::RevocationList;
use tessera_token::UnixTime;

use crate::common::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refusals_name_reason_kid_and_iss_never_the_token() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _g = tracing::subscriber::set_default(subscriber);

    let k = key("kid-live");
    let list = Arc::new(RevocationList::new());
    list.revoke_jti("gone", UnixTime::from_secs(NOW + 600));
    let app = app(&static_guard(&k, clock()).revocation(list).build().unwrap());
    let forged = token(&key("kid-forged"), json!({}));
    let bad_sig = token(&key("kid-live"), json!({}));
    let revoked = token(&k, json!({"jti": "gone"}));
    let good = token(&k, json!({}));
    let tokens = [&forged, &bad_sig, &revoked, &good];
    for t in tokens {
        send(&app, get_with("/me", &[("authorization", &bearer(t))])).await;
    }
    send(&app, get_with(&format!("/me?access_token={good}"), &[])).await;
    send(&app, get_with("/me", &[("cookie", &format!("at={good}"))])).await;

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("bearer token refused"), "{logs}");
    assert!(
        logs.contains("signature does not verify") && logs.contains("kid-forged"),
        "{logs}"
    );
    assert!(
        logs.contains("token revoked") && logs.contains(ISS),
        "{logs}"
    );
    assert!(
        logs.contains("access tokens in the URL are not accepted"),
        "{logs}"
    );
    for t in tokens {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token reached the log: {logs}");
    }
}
