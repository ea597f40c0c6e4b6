//! Authorization server metadata discovery: RFC 8414, then OpenID Connect Discovery.

use serde::Deserialize;
use url::Url;

use crate::FetchError;
use crate::net::{read_body, transport, url_allowed};

/// The members of the issuer's metadata the guard uses (RFC 8414 section 2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier; must equal the configured issuer.
    pub issuer: String,
    /// Where the JWK Set is.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// RFC 7662 introspection endpoint.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// Tessera's revocation feed (see `docs/revocation-feed.md`).
    #[serde(default)]
    pub tessera_revocation_feed_endpoint: Option<String>,
}

/// Fetches `issuer`'s metadata: `/.well-known/oauth-authorization-server` inserted
/// before the issuer's path (RFC 8414 section 3.1), then OIDC's
/// `{issuer}/.well-known/openid-configuration`. The document's `issuer` must equal
/// `issuer` exactly (RFC 8414 section 3.3).
pub async fn discover(issuer: &str) -> Result<AuthorizationServerMetadata, FetchError> {
    let client = crate::net::default_client().map_err(|e| FetchError::Transport(e.to_string()))?;
    discover_with(&client, issuer).await
}

pub(crate) async fn discover_with(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<AuthorizationServerMetadata, FetchError> {
    let url = Url::parse(issuer).map_err(|_| FetchError::Invalid("issuer is not a URL"))?;
    if !url_allowed(&url) {
        return Err(FetchError::InsecureUrl(issuer.to_owned()));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    let mut rfc8414 = url.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    rfc8414.set_query(None);
    let oidc = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .map_err(|_| FetchError::Invalid("issuer is not a URL"))?;
    let first = fetch_metadata(client, rfc8414).await;
    let meta = match first {
        Ok(m) => m,
        Err(e) => fetch_metadata(client, oidc).await.map_err(|_| e)?,
    };
    if meta.issuer != issuer {
        return Err(FetchError::IssuerMismatch);
    }
    Ok(meta)
}

async fn fetch_metadata(
    client: &reqwest::Client,
    url: Url,
) -> Result<AuthorizationServerMetadata, FetchError> {
    let resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| transport(&e))?;
    let body = read_body(resp).await?;
    serde_json::from_slice(&body).map_err(|_| FetchError::Invalid("metadata is not valid JSON"))
}
