//! Reverse-proxy mode: every request is decided by [`Gateway::decide`] on its head; an
//! allowed one goes to the upstream over a keep-alive HTTP/1.1 pool (hyper-util's client)
//! with its bodies streamed both ways, hop-by-hop headers removed, the client's identity
//! headers stripped before the gateway's own are added, and `X-Forwarded-*` set. A denied
//! request never reaches the upstream. WebSocket upgrades pass through once allowed (no
//! other protocol: an `h2c` tunnel would carry requests the gateway never sees), within
//! a cap on open tunnels, an idle timeout and a lifetime bounded by the token's (`exp`, and
//! `auth_time + max_age` on a route with `max_age_secs`; a short one without a token). The
//! gateway also answers its identity-JWT JWKS and the RFC 9728 metadata itself.

mod headers;
mod upgrade;

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CONNECTION, CONTENT_TYPE, UPGRADE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Extensions, HeaderName, HeaderValue, StatusCode, Uri, Version};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::GatewayConfig;
use crate::decide::{Decision, Gateway};
use crate::identity_jwt::{IdentityJwt, IdentityJwtError, JWKS_PATH};

/// Largest response head the upstream may send (status line and headers); a larger one is
/// answered 502 rather than buffered.
const MAX_UPSTREAM_HEAD: usize = 64 * 1024;

/// The gateway's liveness probe in proxy mode (never proxied).
pub const HEALTHZ_PATH: &str = "/.well-known/tessera-gateway/healthz";

/// The gateway's readiness probe in proxy mode (never proxied).
pub const READYZ_PATH: &str = "/.well-known/tessera-gateway/readyz";

/// Idle keep-alive connections to the upstream are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Why proxy mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `mode = "proxy"` without a `[proxy]` section.
    #[error("proxy mode needs a [proxy] section")]
    NotConfigured,
    /// The upstream URL is not `http://host[:port]`.
    #[error("proxy.upstream {0:?}: {1}")]
    Upstream(String, &'static str),
    /// The identity JWT signer could not be built.
    #[error(transparent)]
    IdentityJwt(#[from] IdentityJwtError),
}

struct Proxy {
    gateway: Arc<Gateway>,
    client: Client<HttpConnector, Body>,
    scheme: Scheme,
    authority: Authority,
    response_timeout: Duration,
    trust_forwarded: bool,
    max_body: Option<u64>,
    proto: HeaderValue,
    /// `public_base_url`'s host[:port], sent as `X-Forwarded-Host` when set.
    public_host: Option<HeaderValue>,
    jwt: Option<(HeaderName, IdentityJwt)>,
    upgrades: Vec<String>,
    tunnels: upgrade::Tunnels,
}

/// The proxy-mode router: the gateway's own endpoints (its liveness and readiness probes,
/// the identity-JWT JWKS when enabled, the RFC 9728 metadata when configured) and, for everything else, decide-then-forward.
/// Serve it with upgrades enabled (WebSockets) and with `ConnectInfo<SocketAddr>` (for
/// `X-Forwarded-For`; without it the header carries no client address).
pub fn router(gateway: Arc<Gateway>, config: &GatewayConfig) -> Result<Router, ProxyError> {
    let proxy_config = config.proxy.as_ref().ok_or(ProxyError::NotConfigured)?;
    let (scheme, authority) = check_upstream(&proxy_config.upstream)?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(proxy_config.connect_timeout()));
    connector.set_nodelay(true);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE)
        .http1_max_buf_size(MAX_UPSTREAM_HEAD);
    let client = builder.build(connector);
    let public = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    // Checked at load (scheme, host, optional path), so it parses.
    let public_host = config
        .public_base_url
        .as_deref()
        .and_then(|url| url.parse::<Uri>().ok())
        .and_then(|url| url.authority().cloned())
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let proto = if public.starts_with("https:") {
        HeaderValue::from_static("https")
    } else {
        HeaderValue::from_static("http")
    };
    let jwt = if config.identity.jwt {
        let name =
            HeaderName::from_bytes(format!("{}Identity", config.identity.header_prefix).as_bytes())
                .map_err(|_| IdentityJwtError::Key("the identity header name is invalid".into()))?;
        let audience = format!("{scheme}://{authority}");
        let signer = IdentityJwt::new(&config.identity, public.trim_end_matches('/'), &audience)?;
        Some((name, signer))
    } else {
        None
    };
    let metadata = gateway.guard().metadata_router();
    let proxy = Arc::new(Proxy {
        gateway,
        client,
        scheme,
        authority,
        response_timeout: proxy_config.response_timeout(),
        trust_forwarded: proxy_config.trust_forwarded,
        max_body: proxy_config.max_body_bytes,
        proto,
        public_host,
        jwt,
        upgrades: proxy_config.upgrades.clone(),
        tunnels: upgrade::Tunnels::new(
            proxy_config.max_tunnels,
            Duration::from_secs(proxy_config.tunnel_idle_timeout_secs),
            Duration::from_secs(proxy_config.tunnel_max_lifetime_secs),
            Duration::from_secs(proxy_config.tunnel_public_lifetime_secs),
        ),
    });
    // Liveness and readiness (the same gate as forward-auth's /readyz: 503 until the
    // revocation feed is read and while it is stale), under the gateway's own prefix so
    // the upstream keeps /healthz and /readyz.
    let mut router = Router::new()
        .route(HEALTHZ_PATH, get(|| async { "ok" }))
        .route(READYZ_PATH, get(readyz));
    if proxy.jwt.is_some() {
        router = router.route(JWKS_PATH, get(jwks));
    }
    Ok(router.fallback(forward).with_state(proxy).merge(metadata))
}

/// Splits `http://host[:port]` (a trailing `/` allowed; no path, query or userinfo);
/// `--check` runs it too.
pub fn check_upstream(url: &str) -> Result<(Scheme, Authority), ProxyError> {
    let bad = |why| ProxyError::Upstream(url.to_owned(), why);
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(bad(
            "must be http:// (TLS to the upstream is not built in; the upstream is meant to be on loopback or a private network)",
        ));
    }
    let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not carry credentials"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad(
            "must not have a path or query: requests keep their own",
        ));
    }
    Ok((Scheme::HTTP, authority))
}

async fn readyz(State(proxy): State<Arc<Proxy>>) -> Response {
    proxy.gateway.readiness()
}

async fn jwks(State(proxy): State<Arc<Proxy>>) -> Response {
    let body = proxy
        .jwt
        .as_ref()
        .map(|(_, j)| j.jwks().to_owned())
        .unwrap_or_default();
    (
        [
            (CONTENT_TYPE, "application/jwk-set+json"),
            (http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn plain(status: StatusCode, why: &'static str) -> Response {
    (status, why).into_response()
}

/// Decides, then forwards: the fallback of [`router`].
async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    if headers::ambiguous_framing(&parts.headers) {
        return plain(StatusCode::BAD_REQUEST, "ambiguous message framing");
    }
    if headers::unsupported_coding(&parts.headers) {
        return plain(
            StatusCode::BAD_REQUEST,
            "only Transfer-Encoding: chunked is accepted",
        );
    }
    // X-Forwarded-Host: public_base_url's host, else the client's one well-formed Host
    // (anything else could put a host of the client's choosing into the upstream's links).
    let host = match &proxy.public_host {
        Some(host) => host.clone(),
        None => match headers::single_host(&parts.headers) {
            Some(host) => host,
            None => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "exactly one Host header of the form host[:port] is required",
                );
            }
        },
    };
    let allowed = match proxy.gateway.decide(&parts).await {
        Decision::Allow(allowed) => allowed,
        Decision::Deny(response) => return response,
    };
    if let (Some(max), Some(len)) = (proxy.max_body, headers::content_length(&parts.headers))
        && len > max
    {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let protocol = upgrade::requested(&parts.method, &parts.headers, &proxy.upgrades);
    let tunnel = match &protocol {
        Some(_) => match proxy.tunnels.slot() {
            Some(slot) => Some(slot),
            None => {
                tracing::warn!("max_tunnels upgraded connections are open; refused one more");
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many upgraded connections are open",
                );
            }
        },
        None => None,
    };
    let mut extensions = std::mem::take(&mut parts.extensions);
    let client_upgrade = protocol
        .as_ref()
        .and_then(|_| extensions.remove::<OnUpgrade>());
    let client_ip = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());

    let out = &mut parts.headers;
    headers::remove_hop_by_hop(out);
    proxy.gateway.strip_incoming(out);
    for (name, value) in &allowed.headers {
        out.insert(name.clone(), value.clone());
    }
    if let (Some((name, signer)), Some(identity)) = (&proxy.jwt, &allowed.identity)
        && let Some(value) = signer.header_for(identity.claims(), proxy.gateway.guard().now())
    {
        out.insert(name.clone(), value);
    }
    headers::set_forwarded(
        out,
        client_ip,
        &proxy.proto,
        Some(host),
        proxy.trust_forwarded,
    );
    if let Some(protocol) = &protocol {
        out.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        out.insert(UPGRADE, protocol.clone());
    }
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = match Uri::builder()
        .scheme(proxy.scheme.clone())
        .authority(proxy.authority.clone())
        .path_and_query(path)
        .build()
    {
        Ok(uri) => uri,
        Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request target"),
    };
    parts.version = Version::HTTP_11;
    parts.extensions = Extensions::new();
    // Set when a body without a length runs past `max_body_bytes`: the upload then fails,
    // and the client gets 413 rather than the 502 of a failed upstream.
    let too_large = Arc::new(AtomicBool::new(false));
    let body = match proxy.max_body {
        Some(max) => {
            let flag = Arc::clone(&too_large);
            Body::new(
                Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)).map_err(move |e| {
                    if e.is::<LengthLimitError>() {
                        flag.store(true, Ordering::Relaxed);
                    }
                    e
                }),
            )
        }
        None => body,
    };
    let authorised = allowed.identity.as_ref().map(|i| {
        let now = proxy.gateway.guard().now();
        upgrade::authorised_for(now, i.exp, i.auth_time, allowed.max_age)
    });

    let sent = tokio::time::timeout(
        proxy.response_timeout,
        proxy.client.request(http::Request::from_parts(parts, body)),
    )
    .await;
    let mut response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(_)) if too_large.load(Ordering::Relaxed) => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Ok(Err(e)) => return upstream_failed(&e),
        Err(_) => {
            tracing::warn!("the upstream did not answer in time");
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                "the upstream did not answer in time",
            );
        }
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        // Dropping `response` un-upgraded closes the upstream connection.
        let (Some(client), Some(asked), Some(slot)) = (client_upgrade, protocol, tunnel) else {
            tracing::warn!("the upstream switched protocols unasked");
            return bad_switch("the upstream answered with an unrequested upgrade");
        };
        let accepted = response.headers().get(UPGRADE).cloned();
        if !upgrade::switched_to(&asked, accepted.as_ref()) {
            tracing::warn!("the upstream switched to another protocol than the one asked");
            return bad_switch("the upstream switched to another protocol");
        }
        let upstream_side = hyper::upgrade::on(&mut response);
        let (mut head, _) = response.into_parts();
        headers::remove_hop_by_hop(&mut head.headers);
        head.headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        head.headers.insert(UPGRADE, asked);
        let lifetime = proxy.tunnels.lifetime(authorised);
        proxy.tunnels.splice(client, upstream_side, slot, lifetime);
        return Response::from_parts(head, Body::empty());
    }
    let (mut head, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut head.headers);
    Response::from_parts(head, Body::new(body))
}

/// 502 for a 101 the gateway will not splice, closing the client's connection (its
/// bytes after the request are not HTTP the gateway would judge).
fn bad_switch(why: &'static str) -> Response {
    let mut response = plain(StatusCode::BAD_GATEWAY, why);
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 504 when connecting timed out, 502 for everything else (refused, reset, a response
/// hyper would not parse such as an oversized head).
fn upstream_failed(e: &hyper_util::client::legacy::Error) -> Response {
    let mut cause = e.source();
    let mut timed_out = false;
    while let Some(c) = cause {
        timed_out |= c
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        cause = c.source();
    }
    tracing::warn!(error = %e, source = ?e.source(), "the upstream request failed");
    if timed_out {
        plain(
            StatusCode::GATEWAY_TIMEOUT,
            "the upstream did not answer in time",
        )
    } else {
        plain(
            StatusCode::BAD_GATEWAY,
            "the upstream is unreachable or answered badly",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_is_an_http_origin_without_path_query_or_credentials() {
        let (scheme, authority) = check_upstream("http://127.0.0.1:8000/").unwrap();
        assert_eq!(
            (scheme.as_str(), authority.as_str()),
            ("http", "127.0.0.1:8000")
        );
        assert!(check_upstream("http://api.internal").is_ok());
        for bad in [
            "https://127.0.0.1:8000",
            "http://127.0.0.1:8000/api",
            "http://127.0.0.1:8000/?x=1",
            "http://user:pw@127.0.0.1:8000",
            "127.0.0.1:8000",
            "",
        ] {
            assert!(check_upstream(bad).is_err(), "{bad}");
        }
    }
}
