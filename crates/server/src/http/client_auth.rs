//! Client authentication at the token, revocation and introspection endpoints (RFC 6749
//! section 2.3.1): HTTP Basic or `client_secret_post`, or a bare `client_id` for public
//! clients where the caller allows it. Secrets are `tsr_cs_` tokens compared by SHA-256
//! hash: high-entropy, so no slow hash is needed. Client records come from the
//! [`crate::client_cache`] when read recently, so a busy client costs no store read.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tessera_token::{OpaqueToken, TokenKind};
use zeroize::Zeroizing;

use crate::grants::Params;
use crate::http::AppState;
use crate::http::form::{decode_component, has_nul};
use crate::oauth::OAuthError;
use crate::store::ClientRecord;

/// How public clients are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Public {
    /// A registered public client may identify itself with `client_id` alone.
    Allowed,
    /// Only confidential clients with a valid secret.
    Refused,
}

/// Authenticates the client of a request.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    public: Public,
) -> Result<Arc<ClientRecord>, OAuthError> {
    if let Some((id, secret)) = basic_credentials(headers)? {
        if params.get("client_secret").is_some() {
            return Err(OAuthError::invalid_request(
                "use only one client authentication method",
            ));
        }
        if params.get("client_id").is_some_and(|p| p != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Authorization header",
            ));
        }
        return confidential(state, &id, &secret).await;
    }
    match (params.get("client_id"), params.get("client_secret")) {
        (Some(id), Some(secret)) => confidential(state, id, secret).await,
        (Some(id), None) => {
            let client = lookup(state, id, Read::Cached).await?;
            match client {
                Some(c) if c.is_public() && public == Public::Allowed => {
                    tracing::Span::current().record("client_id", c.id.as_str());
                    Ok(c)
                }
                _ => Err(OAuthError::InvalidClient),
            }
        }
        (None, _) => Err(OAuthError::InvalidClient),
    }
}

/// Client id and secret from `Authorization: Basic`; `None` without the header.
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<(String, Zeroizing<String>)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::InvalidClient;
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = Zeroizing::new(STANDARD.decode(rest.trim()).map_err(|_| bad())?);
    let text = std::str::from_utf8(&decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let id = decode_component(id).ok_or_else(bad)?;
    let secret = Zeroizing::new(decode_component(secret).ok_or_else(bad)?);
    if id.is_empty() || has_nul(&id) || has_nul(&secret) {
        return Err(bad());
    }
    Ok(Some((id, secret)))
}

/// Authenticates a confidential client by id and secret.
pub(crate) async fn confidential(
    state: &AppState,
    id: &str,
    secret: &str,
) -> Result<Arc<ClientRecord>, OAuthError> {
    let fail = OAuthError::InvalidClient;
    let presented =
        OpaqueToken::parse_kind(secret, TokenKind::ClientSecret).map_err(|_| fail.clone())?;
    let presented = presented.hash();
    let mut client = lookup(state, id, Read::Cached).await?;
    if client
        .as_ref()
        .is_some_and(|c| c.secret_hash != Some(presented))
    {
        // Perhaps the secret was rotated since the record was cached: read it again.
        client = lookup(state, id, Read::Fresh).await?;
    }
    match client {
        Some(c) if c.secret_hash == Some(presented) => {
            tracing::Span::current().record("client_id", c.id.as_str());
            Ok(c)
        }
        _ => Err(fail),
    }
}

/// Whether a cached record will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Cached,
    Fresh,
}

/// The client `id`: from the cache if read within the TTL, else from the store (and then
/// cached). Unknown ids are not cached.
async fn lookup(
    state: &AppState,
    id: &str,
    read: Read,
) -> Result<Option<Arc<ClientRecord>>, OAuthError> {
    let now = state.clock.now();
    if read == Read::Cached
        && let Some(c) = state.clients.get(id, now)
    {
        return Ok(Some(c));
    }
    match state.store.client(id).await? {
        Some(c) => {
            let c = Arc::new(c);
            state.clients.put(Arc::clone(&c), now);
            Ok(Some(c))
        }
        None => {
            state.clients.forget(id);
            Ok(None)
        }
    }
}
