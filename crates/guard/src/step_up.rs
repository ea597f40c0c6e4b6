//! The per-route step-up layers (RFC 9470): [`RequireAcr`] (a minimum `acr`, optionally
//! within a maximum age) and [`RequireAuthAge`] (a maximum age of `auth_time`), in the
//! style of [`crate::RequireScope`]. Both run [`crate::Guard::check_authentication`] on
//! the identity the guard established and refuse with 401
//! `insufficient_user_authentication`, the challenge naming `acr_values` and `max_age`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::assurance::AuthRequirement;
use crate::{Guard, GuardError, extract};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A minimum `acr` for a route, as a layer:
/// `.route("/notes/{id}", delete(h).route_layer(RequireAcr::new("urn:tessera:acr:mfa").within(Duration::from_secs(300))))`.
#[derive(Clone, Debug)]
pub struct RequireAcr {
    requirement: Arc<AuthRequirement>,
}

impl RequireAcr {
    /// At least `acr` on the guard's ladder ([`crate::GuardBuilder::acr_ladder`]).
    pub fn new(acr: impl Into<String>) -> Self {
        RequireAcr {
            requirement: Arc::new(AuthRequirement::acr(acr)),
        }
    }

    /// And an authentication at most `max_age` old.
    pub fn within(self, max_age: Duration) -> Self {
        RequireAcr {
            requirement: Arc::new((*self.requirement).clone().within(max_age)),
        }
    }
}

/// A maximum age of the user's authentication for a route, as a layer:
/// `.route_layer(RequireAuthAge::new(Duration::from_secs(300)))`.
#[derive(Clone, Debug)]
pub struct RequireAuthAge {
    requirement: Arc<AuthRequirement>,
}

impl RequireAuthAge {
    /// An authentication (`auth_time`) at most `max_age` old.
    pub fn new(max_age: Duration) -> Self {
        RequireAuthAge {
            requirement: Arc::new(AuthRequirement::max_age(max_age)),
        }
    }
}

impl<S> Layer<S> for RequireAcr {
    type Service = RequireAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuthService {
            requirement: self.requirement.clone(),
            inner,
        }
    }
}

impl<S> Layer<S> for RequireAuthAge {
    type Service = RequireAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuthService {
            requirement: self.requirement.clone(),
            inner,
        }
    }
}

/// The service of [`RequireAcr`] and [`RequireAuthAge`].
#[derive(Clone, Debug)]
pub struct RequireAuthService<S> {
    requirement: Arc<AuthRequirement>,
    inner: S,
}

impl<S> Service<Request<Body>> for RequireAuthService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let requirement = self.requirement.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let identity = match extract::identity(&mut parts).await {
                Ok(Some(id)) => id,
                Ok(None) => {
                    return Ok(extract::reject(&parts, GuardError::MissingToken).into_response());
                }
                Err(rejection) => return Ok(rejection.into_response()),
            };
            // `identity` succeeded, so a guard is in the extensions (the layer's, or one
            // installed as an extension); without one, refuse as unconfigured.
            let Some(guard) = parts.extensions.get::<Guard>().cloned() else {
                return Ok(extract::reject(&parts, GuardError::NotConfigured).into_response());
            };
            if let Err(e) = guard.check_authentication(&identity, &requirement) {
                return Ok(extract::refuse(&parts, e).into_response());
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}
