//! The OpenID Connect userinfo endpoint (Core section 5.3), protected by tessera-guard
//! in-process: the same token rules (RFC 6750 `Bearer`, RFC 9449 `DPoP` with a proof
//! whose `htu` is the issuer's `/userinfo`) and both challenges as any resource server,
//! verified with the server's own key ring. The token must carry scope `openid`
//! and name the issuer as an audience (the authorization code grant adds it for
//! `openid`); revoked grants and disabled users get `invalid_token`.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_guard::{DpopReplayCache, Guard, GuardError, Verifier};
use tessera_token::Validation;

use crate::http::AppState;
use crate::http::error::no_store;
use crate::keys::KeyRing;

/// The userinfo guard, rebuilt when the key ring changes (rotation, reload); every guard
/// it builds shares one DPoP replay cache, so a rebuild does not make the proofs the
/// previous guard accepted usable again.
pub(crate) struct UserinfoGuard {
    current: Mutex<Option<(Arc<KeyRing>, Guard)>>,
    replay: DpopReplayCache,
}

/// Capacity of the userinfo guard's DPoP replay cache, in proofs (the guard's default).
const USERINFO_REPLAY_CAPACITY: usize = 100_000;

impl Default for UserinfoGuard {
    fn default() -> Self {
        UserinfoGuard {
            current: Mutex::default(),
            replay: DpopReplayCache::new(USERINFO_REPLAY_CAPACITY),
        }
    }
}

impl std::fmt::Debug for UserinfoGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserinfoGuard")
    }
}

impl UserinfoGuard {
    fn get(&self, state: &AppState) -> Option<Guard> {
        let ring = state.keys.current();
        let mut slot = match self.current.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some((r, g)) = slot.as_ref()
            && Arc::ptr_eq(r, &ring)
        {
            return Some(g.clone());
        }
        let validation = Validation::access_token(state.issuer.clone(), state.issuer.clone());
        let guard = Guard::builder(Verifier::keys(ring.verifier().clone()), validation)
            .realm("tessera")
            .public_base_url(state.issuer.clone())
            .dpop_replay_cache(self.replay.clone())
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the userinfo guard"))
            .ok()?;
        *slot = Some((ring, guard.clone()));
        Some(guard)
    }
}

/// OpenID Connect userinfo response (Core section 5.3.2).
// The served type is the documented type. Members in alphabetical order: the bytes the
// former `json!` map (sorted) produced.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserinfoResponse {
    /// With scope `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<String>,
    sub: String,
}

/// `GET` or `POST /userinfo`.
#[utoipa::path(
    method(get, post),
    path = "/userinfo",
    tag = "browser",
    responses(
        (status = 200, description = "Claims about the signed-in user", body = UserinfoResponse),
        (status = 401, description = "RFC 6750 `invalid_token`, or RFC 9449 `invalid_dpop_proof` (`Bearer` and `DPoP` challenges)", headers(("WWW-Authenticate" = String))),
        (status = 403, description = "RFC 6750 `insufficient_scope` (needs `openid`)", headers(("WWW-Authenticate" = String))),
        (status = 503, description = "The store is unreachable", headers(("Retry-After" = u64))),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn userinfo(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let Some(guard) = state.userinfo_guard.get(&state) else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let (parts, _) = request.into_parts();
    let identity = match guard.authenticate(&parts).await {
        Ok(Some(i)) => i,
        Ok(None) => return guard.error_response_to(&parts, &GuardError::MissingToken),
        Err(e) => return guard.error_response_to(&parts, &e),
    };
    if !identity.has_scope("openid") {
        return guard.error_response_to(
            &parts,
            &GuardError::InsufficientScope {
                scope: "openid".into(),
            },
        );
    }
    match state
        .store
        .is_revoked(identity.jti.as_deref(), identity.sid.as_deref())
        .await
    {
        Ok(false) => {}
        Ok(true) => return guard.error_response_to(&parts, &GuardError::Revoked),
        Err(_) => {
            return guard.error_response_to(&parts, &GuardError::Unavailable("store unavailable"));
        }
    }
    let Some(sub) = identity.sub.as_deref() else {
        return guard.error_response_to(&parts, &GuardError::Revoked);
    };
    let user = match state.store.user_by_id(sub).await {
        Ok(Some(u)) if !u.disabled => u,
        Ok(_) => return guard.error_response_to(&parts, &GuardError::Revoked),
        Err(_) => {
            return guard.error_response_to(&parts, &GuardError::Unavailable("store unavailable"));
        }
    };
    let body = UserinfoResponse {
        preferred_username: identity.has_scope("profile").then_some(user.name),
        sub: user.id,
    };
    let mut response = Json(body).into_response();
    no_store(response.headers_mut());
    response
}
