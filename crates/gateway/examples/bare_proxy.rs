//! The floor of `bench/gateway.sh`: a bare hyper proxy hop (hyper's HTTP/1 server, the URI
//! rewritten to the upstream, `Connection` dropped, hyper-util's keep-alive client) with no
//! decision, no identity headers and no router, and the tiny upstream both proxies forward
//! to (answers `ok` to everything).
//!
//! ```sh
//! bare_proxy upstream 127.0.0.1:9000
//! bare_proxy proxy 127.0.0.1:9001 127.0.0.1:9000
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bare_proxy upstream LISTEN | bare_proxy proxy LISTEN UPSTREAM";
    let listen: SocketAddr = args.get(2).ok_or(usage)?.parse()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    match args.get(1).map(String::as_str) {
        Some("upstream") => loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let service = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        },
        Some("proxy") => {
            let authority: Authority = args.get(3).ok_or(usage)?.parse()?;
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let client: Client<HttpConnector, Incoming> =
                Client::builder(TokioExecutor::new()).build(connector);
            loop {
                let (stream, _) = listener.accept().await?;
                let client = client.clone();
                let authority = authority.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        forward(client.clone(), authority.clone(), req)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
        _ => Err(usage.into()),
    }
}

/// One hop: the URI pointed at the upstream, `Connection` and `Host` dropped, sent.
async fn forward(
    client: Client<HttpConnector, Incoming>,
    authority: Authority,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let (mut parts, body) = req.into_parts();
    let mut uri = Uri::builder().scheme(Scheme::HTTP).authority(authority);
    if let Some(path) = parts.uri.path_and_query().cloned() {
        uri = uri.path_and_query(path);
    }
    // Scheme, authority and a request's own path always build a URI.
    if let Ok(uri) = uri.build() {
        parts.uri = uri;
    }
    parts.headers.remove(http::header::CONNECTION);
    parts.headers.remove(http::header::HOST);
    client.request(Request::from_parts(parts, body)).await
}
