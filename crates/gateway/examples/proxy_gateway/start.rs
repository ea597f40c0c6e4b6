//! Builds the proxy-mode router from a [`GatewayConfig`] the way the example resource server
//! builds its guard (discovery, JWKS, the revocation feed with the secret from the named
//! environment variable). A stand-in for the binary's `startup.rs` (issue 18 section 2),
//! shared by the `proxy_gateway` example and the proxy e2e tests.

use std::sync::Arc;

use tessera_gateway::identity::IdentityHeaders;
use tessera_gateway::routes::Routes;
use tessera_gateway::{Gateway, GatewayConfig};
use tessera_guard::{
    Guard, RemoteIssuer, ResourceMetadata, RevocationFeed, SystemClock, Verifier, discover,
};
use tessera_token::{SecretString, Validation};

/// The router for `config`, whose `public_base_url` must be set (the caller fills it from
/// the bound address); `env` reads an environment variable (the feed secret's).
pub(crate) async fn proxy_router(
    config: &GatewayConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<axum::Router, Box<dyn std::error::Error + Send + Sync>> {
    let public = config
        .public_base_url
        .clone()
        .ok_or("public_base_url must be set")?;
    let mut builder = Guard::builder(
        Verifier::remote(RemoteIssuer::new(&config.issuer))?,
        Validation::access_token(&config.issuer, &config.audience),
    )
    .cache_capacity(config.cache_capacity)
    .public_base_url(public.clone())
    .resource_metadata(ResourceMetadata::new(public).authorization_server(config.issuer.clone()));
    if let Some(realm) = &config.realm {
        builder = builder.realm(realm.clone());
    }
    if let Some(feed) = &config.revocation {
        let secret = env(&feed.client_secret_env)
            .ok_or_else(|| format!("{} is not set", feed.client_secret_env))?;
        let endpoint = discover(&config.issuer)
            .await?
            .tessera_revocation_feed_endpoint
            .ok_or("the issuer publishes no revocation feed")?;
        let feed = Arc::new(RevocationFeed::new(
            &endpoint,
            feed.client_id.clone(),
            SecretString::new(secret),
        )?);
        builder = builder.revocation(feed.list());
        feed.spawn(Arc::new(SystemClock));
    }
    let guard = builder.build()?;
    if let Err(e) = guard.warm_up().await {
        tracing::warn!(error = %e, "could not fetch the issuer's keys yet");
    }
    let gateway = Gateway::new(
        guard,
        Routes::new(&config.routes, config.default)?,
        IdentityHeaders::new(&config.identity)?,
    );
    Ok(tessera_gateway::proxy::router(Arc::new(gateway), config)?)
}
