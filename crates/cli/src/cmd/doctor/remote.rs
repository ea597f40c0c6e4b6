//! Checks of a running deployment over HTTP: transport, HSTS, discovery, the JWK Set
//! and the server's clock.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::Finding;

/// HSTS max-age below this is a warning (180 days).
const HSTS_MIN: u64 = 15_552_000;

pub(super) async fn check(url: &str, ca: Option<&Path>) -> Vec<Finding> {
    let mut out = Vec::new();
    let https = url.starts_with("https://");
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    out.push(if https {
        Finding::ok("served over https", "https")
    } else if tessera_server::config::is_loopback_host(authority) {
        Finding::warn(
            "plain http on loopback (development only)",
            "serve https in production",
            "https",
        )
    } else {
        Finding::fail(
            format!("{url} is plain http"),
            "serve https: tls_cert/tls_key, or a TLS-terminating proxy",
            "https",
        )
    });
    let client = match client(ca) {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::fail(
                e,
                "give a readable PEM file to --ca",
                "https",
            ));
            return out;
        }
    };
    let meta_url = format!("{url}/.well-known/oauth-authorization-server");
    let resp = match client.get(&meta_url).send().await {
        Ok(r) => r,
        Err(e) => {
            out.push(Finding::fail(
                format!("discovery not reachable: {}", error_chain(&e)),
                "check the URL, that the server runs, and (self-signed/private CA) --ca",
                "https",
            ));
            return out;
        }
    };
    let started = super::this_host_time();
    if https {
        out.push(hsts(resp.headers()));
    }
    out.push(clock(resp.headers(), started));
    let status = resp.status();
    let meta: Value = match resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(v) if status.is_success() => v,
        _ => {
            out.push(Finding::fail(
                format!("discovery answered {status} without metadata"),
                "point --url at the issuer (the base URL, without a path)",
                "https",
            ));
            return out;
        }
    };
    out.push(match meta["issuer"].as_str() {
        Some(i) if i == url => Finding::ok(format!("discovery issuer is {i}"), "https"),
        Some(i) => Finding::warn(
            format!("discovery says issuer {i}, not {url}"),
            "set issuer to the URL clients use; tokens carry it as iss",
            "https",
        ),
        None => Finding::fail(
            "discovery has no issuer",
            "upgrade or fix the server",
            "https",
        ),
    });
    out.push(id_token_algs(&meta));
    let Some(jwks_uri) = meta["jwks_uri"].as_str() else {
        out.push(Finding::fail(
            "discovery has no jwks_uri",
            "upgrade or fix the server",
            "leaked-signing-key",
        ));
        return out;
    };
    if https && !jwks_uri.starts_with("https://") {
        out.push(Finding::fail(
            format!("jwks_uri {jwks_uri} is not https"),
            "set issuer to the https URL",
            "ssrf-through-jwks-urls",
        ));
    }
    out.push(jwks(&client, jwks_uri).await);
    out
}

fn client(ca: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    if let Some(path) = ca {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read --ca {}: {e}", path.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("--ca {} is not a PEM certificate: {e}", path.display()))?;
        b = b.add_root_certificate(cert);
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

fn hsts(headers: &reqwest::header::HeaderMap) -> Finding {
    let age = headers
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(';')
                .filter_map(|d| d.trim().strip_prefix("max-age="))
                .find_map(|a| a.trim_matches('"').parse::<u64>().ok())
        });
    match age {
        Some(a) if a >= HSTS_MIN => Finding::ok(format!("HSTS max-age={a}"), "https"),
        Some(a) => Finding::warn(
            format!("HSTS max-age={a} is short"),
            "set hsts_max_age_secs to 31536000 (one year)",
            "https",
        ),
        None => Finding::warn(
            "no Strict-Transport-Security header",
            "leave hsts_max_age_secs at its default, or add HSTS at the proxy",
            "https",
        ),
    }
}

fn clock(headers: &reqwest::header::HeaderMap, local: SystemTime) -> Finding {
    let Some(date) = headers
        .get("date")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return Finding::warn(
            "no Date header: clock not compared",
            "check NTP on the server host",
            "clock-skew",
        );
    };
    // Date has one-second resolution: allow it.
    super::skew_finding("server", date, local, Duration::from_secs(1))
}

async fn jwks(client: &reqwest::Client, uri: &str) -> Finding {
    let body = match client.get(uri).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.ok(),
        _ => None,
    };
    let Some(v) = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
        return Finding::fail(
            format!("JWKS {uri} not reachable or not JSON"),
            "check the server and its proxy",
            "leaked-signing-key",
        );
    };
    let keys = v["keys"].as_array().cloned().unwrap_or_default();
    let private = ["d", "p", "q", "dp", "dq", "qi", "k"];
    if keys
        .iter()
        .any(|k| private.iter().any(|m| k.get(*m).is_some()))
    {
        return Finding::fail(
            "the JWKS publishes private key material",
            "take the server offline, rotate every key (`tessera keys rotate`), and report a bug",
            "leaked-signing-key",
        );
    }
    if keys.is_empty() {
        Finding::fail(
            "the JWKS has no keys",
            "run `tessera keys rotate` and check the server log",
            "leaked-signing-key",
        )
    } else {
        Finding::ok(
            format!(
                "JWKS publishes {} public key(s), no private members",
                keys.len()
            ),
            "leaked-signing-key",
        )
    }
}

/// Relying parties expect RS256 ID tokens unless configured otherwise (OpenID Connect
/// Discovery section 3); an unsigned one must never be offered.
fn id_token_algs(meta: &Value) -> Finding {
    let algs: Vec<&str> = meta["id_token_signing_alg_values_supported"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if algs.iter().any(|a| a.eq_ignore_ascii_case("none")) {
        Finding::fail(
            "discovery offers unsigned (none) ID tokens",
            "upgrade or fix the server",
            "leaked-signing-key",
        )
    } else if algs.contains(&"RS256") {
        Finding::ok(
            format!("ID tokens offered as {}", algs.join(", ")),
            "leaked-signing-key",
        )
    } else {
        Finding::fail(
            "discovery offers no RS256 ID tokens, which relying parties expect by default",
            "upgrade the server (it creates an RS256 key at start)",
            "leaked-signing-key",
        )
    }
}
