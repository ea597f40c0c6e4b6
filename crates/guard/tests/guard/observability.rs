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

/// Makes a thread-local capture see every event, whichever test thread reaches a callsite
/// first. tracing caches each callsite's interest process-wide; with at most one
/// dispatcher registered, a callsite first reached by a thread without a subscriber is
/// cached as "never" for every thread, and the capture below came back empty about one
/// run in six. A global no-op `Registry` (interested in everything) means there is always
/// a second dispatcher, so interest is the union of all of them.
fn global_subscriber_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
}

#[tokio::test]
async fn refusals_name_reason_kid_and_iss_never_the_token() {
    global_subscriber_once();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _g = tracing::subscriber::set_default(subscriber);
    // Callsites registered by other threads before this dispatcher existed are
    // re-evaluated against it.
    tracing::callsite::rebuild_interest_cache();

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

#[tokio::test]
async fn refusals_are_counted_by_reason_in_the_metrics_facade() {
    // `#[tokio::test]` runs on this thread only, so a thread-local recorder sees it all.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _g = metrics::set_default_local_recorder(&recorder);

    let k = key("kid-live");
    let list = Arc::new(RevocationList::new());
    list.revoke_jti("gone", UnixTime::from_secs(NOW + 600));
    let app = app(&static_guard(&k, clock()).revocation(list).build().unwrap());
    let revoked = token(&k, json!({"jti": "gone"}));
    let good = token(&k, json!({}));
    send(&app, get_with("/me", &[])).await;
    send(&app, get_with("/me", &[])).await;
    send(
        &app,
        get_with("/me", &[("authorization", &bearer(&revoked))]),
    )
    .await;
    let forged = token(&key("kid-forged"), json!({}));
    send(
        &app,
        get_with("/me", &[("authorization", &bearer(&forged))]),
    )
    .await;
    send(&app, get_with("/me", &[("authorization", &bearer(&good))])).await;

    let text = handle.render();
    let sample = |reason: &str| {
        let prefix = format!("{}{{reason=\"{reason}\"}} ", tessera_guard::REFUSALS_METRIC);
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.parse::<u64>().unwrap())
    };
    assert_eq!(sample("missing_token"), Some(2), "{text}");
    assert_eq!(sample("revoked"), Some(1), "{text}");
    assert_eq!(
        sample("unknown_key").or(sample("bad_signature")),
        Some(1),
        "{text}"
    );
    let total: u64 = text
        .lines()
        .filter(|l| l.starts_with(tessera_guard::REFUSALS_METRIC))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 4, "the accepted request is not a refusal: {text}");
}
