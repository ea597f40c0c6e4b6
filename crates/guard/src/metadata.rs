//! RFC 9728 protected-resource metadata: the document a client or an authorization server
//! reads at `/.well-known/oauth-protected-resource` to learn which authorization servers
//! this API trusts, its scopes, and whether it takes DPoP-bound tokens.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header;
use serde::Serialize;
use tessera_token::dpop::PROOF_ALGS;

use crate::dpop::DpopPolicy;
use crate::source::TokenSources;
use crate::{BuildError, Guard};

/// The well-known path segment of RFC 9728 section 3.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// RFC 9728 section 2 metadata, serialized as served. Build it with
/// [`ResourceMetadata::new`] and hand it to [`crate::GuardBuilder::resource_metadata`];
/// the guard sets the members its own configuration decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceMetadata {
    /// The resource identifier (an https URL without query or fragment).
    pub resource: String,
    /// Issuer identifiers of the authorization servers whose tokens this API accepts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Scopes the API uses in authorization requests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How a token may be sent: `header` always, `body` with form-body tokens (set by the
    /// guard).
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name of the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A page documenting the API for developers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// Proof algorithms accepted (RFC 9449 section 5.1; set by the guard, empty when
    /// DPoP is off).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether every token must be DPoP-bound (set by the guard).
    pub dpop_bound_access_tokens_required: bool,
    #[serde(skip)]
    url: String,
}

impl ResourceMetadata {
    /// Metadata for the resource identified by `resource` (e.g. `https://api.example`).
    pub fn new(resource: impl Into<String>) -> Self {
        ResourceMetadata {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
            url: String::new(),
        }
    }

    /// Adds an authorization server (its issuer identifier).
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Sets the scopes the API uses.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the human-readable name.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// The URL the document is served at: the well-known segment inserted between the
    /// resource's host and its path (RFC 9728 section 3.1).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path the document is served at on this host.
    pub fn path(&self) -> String {
        let path = url::Url::parse(&self.resource)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        format!("{WELL_KNOWN_PATH}{path}")
    }

    /// Checks the resource identifier and fills the members the guard decides.
    pub(crate) fn settle(
        &mut self,
        policy: DpopPolicy,
        sources: &TokenSources,
    ) -> Result<(), BuildError> {
        let url = crate::net::config_url(&self.resource, "resource_metadata.resource")?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(BuildError::Invalid(
                "resource_metadata.resource: a resource identifier has no query or fragment (RFC 9728 section 1.2)",
            ));
        }
        for issuer in &self.authorization_servers {
            crate::net::config_url(issuer, "resource_metadata.authorization_servers")?;
        }
        let origin = url.origin().ascii_serialization();
        self.url = format!("{origin}{}", self.path());
        self.bearer_methods_supported = vec!["header".into()];
        if sources.accepts_form_body() {
            self.bearer_methods_supported.push("body".into());
        }
        self.dpop_signing_alg_values_supported = match policy {
            DpopPolicy::Disabled => Vec::new(),
            _ => PROOF_ALGS.iter().map(|a| (*a).to_owned()).collect(),
        };
        self.dpop_bound_access_tokens_required = policy == DpopPolicy::Required;
        Ok(())
    }
}

impl Guard {
    /// A router serving this guard's RFC 9728 metadata at [`ResourceMetadata::path`]
    /// (public: merge it outside the guard layer); empty when none is configured.
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let Some(meta) = self.resource_metadata() else {
            return Router::new();
        };
        let body = serde_json::to_string(meta).unwrap_or_else(|_| "{}".into());
        let serve = move || {
            let body = body.clone();
            async move {
                let r: Response = (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    body,
                )
                    .into_response();
                r
            }
        };
        Router::new().route(&meta.path(), get(serve))
    }
}
