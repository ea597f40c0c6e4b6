//! WebSocket (and any HTTP/1.1 `Upgrade`) pass-through: once the upstream answers 101, both
//! connections are taken over from hyper and bytes are copied both ways until either side
//! closes.

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// The protocol a request asks to upgrade to: `Upgrade` with `upgrade` among the
/// `Connection` options (RFC 9110 section 7.8).
pub(crate) fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|o| o.trim().eq_ignore_ascii_case("upgrade"));
    if !asks {
        return None;
    }
    headers.get(UPGRADE).cloned()
}

/// Copies bytes between the client's and the upstream's upgraded connections until either
/// closes (a task of its own: the 101 must reach the client first).
pub(crate) fn splice(client: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "an upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "an upgraded connection ended with an error");
        }
    });
}
