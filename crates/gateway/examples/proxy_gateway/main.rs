//! Stand-in for `tessera-gateway --config FILE` in proxy mode until the binary's start-up
//! (`startup.rs`, `serve.rs`, issue 18 section 2) lands: builds the router with
//! [`start::proxy_router`] and serves it with upgrades and the client's address.
//! `bench/gateway.sh` runs it.
//!
//! ```sh
//! cargo run -p tessera-gateway --example proxy_gateway -- gateway.toml
//! ```

mod start;

use std::net::SocketAddr;

use tessera_gateway::GatewayConfig;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: proxy_gateway CONFIG")?;
    let mut config = GatewayConfig::load(path.as_ref())?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    config
        .public_base_url
        .get_or_insert_with(|| format!("http://{addr}"));
    let app = start::proxy_router(&config, |k| std::env::var(k).ok()).await?;
    eprintln!("listening on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
