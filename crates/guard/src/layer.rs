//! The tower layers: [`GuardLayer`] authenticates every request of the routes it wraps,
//! [`RequireScope`] adds a per-route scope requirement, [`RequireDpop`] a per-route
//! requirement of a DPoP-bound token.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Request, header};
use http_body_util::{BodyExt, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::challenge::Scheme;
use crate::dpop::{DPOP, DPOP_REQUIRED};
use crate::extract;
use crate::source::{self, Found};
use crate::{Guard, GuardError, Identity, ScopeRequirement};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Largest form body inspected for an `access_token` parameter.
const MAX_FORM_BODY: usize = 64 * 1024;

/// What the layer leaves in the request extensions for the extractors.
#[derive(Clone)]
pub(crate) struct Authenticated(pub(crate) Arc<Identity>);

/// Which guard put the [`Authenticated`] identity there: a second layer of the same guard
/// (an optional layer on the app and a required one on a nested router) passes the
/// request on instead of checking it again, which would spend its DPoP proof twice.
#[derive(Clone)]
pub(crate) struct AuthenticatedBy(Guard);

/// Marks a request the optional layer found anonymous (no token at all).
#[derive(Clone, Copy)]
pub(crate) struct Anonymous;

/// A layer that authenticates requests with a [`Guard`]. [`Guard::layer`] refuses
/// requests without a valid token; [`Guard::optional_layer`] lets anonymous requests
/// through (a bad token is still refused).
#[derive(Clone, Debug)]
pub struct GuardLayer {
    guard: Guard,
    required: bool,
}

impl Guard {
    /// A layer refusing every request without a valid bearer token (401/400).
    pub fn layer(&self) -> GuardLayer {
        GuardLayer {
            guard: self.clone(),
            required: true,
        }
    }

    /// A layer authenticating requests that carry a token and letting those without
    /// one through as anonymous ([`crate::MaybeAuth`] then yields `None`).
    pub fn optional_layer(&self) -> GuardLayer {
        GuardLayer {
            guard: self.clone(),
            required: false,
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            guard: self.guard.clone(),
            required: self.required,
            inner,
        }
    }
}

/// The service of [`GuardLayer`].
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    guard: Guard,
    required: bool,
    inner: S,
}

/// Marks the credential-bearing headers (a DPoP proof included: it is replayable for a
/// minute) sensitive, so `Debug` and tracing of the request never print them.
fn mark_sensitive(req: &mut Request<Body>) {
    for name in [
        header::AUTHORIZATION,
        header::COOKIE,
        header::PROXY_AUTHORIZATION,
        DPOP,
    ] {
        if let http::header::Entry::Occupied(mut e) = req.headers_mut().entry(name) {
            for v in e.iter_mut() {
                v.set_sensitive(true);
            }
        }
    }
}

impl<S> Service<Request<Body>> for GuardService<S>
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

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let required = self.required;
        mark_sensitive(&mut req);
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            if parts.extensions.get::<Authenticated>().is_some()
                && parts
                    .extensions
                    .get::<AuthenticatedBy>()
                    .is_some_and(|by| Arc::ptr_eq(&by.0.0, &guard.0))
            {
                return inner.call(Request::from_parts(parts, body)).await;
            }
            match guard.cached(&parts) {
                Some(Ok(identity)) => {
                    parts.extensions.insert(guard.clone());
                    parts.extensions.insert(AuthenticatedBy(guard.clone()));
                    parts.extensions.insert(Authenticated(identity));
                    return inner.call(Request::from_parts(parts, body)).await;
                }
                Some(Err(e)) => return Ok(guard.error_response_to(&parts, &e)),
                None => {}
            }
            let found = match source::from_parts(&parts, guard.sources()) {
                Ok(f) => f,
                Err(e) => return Ok(refuse(&guard, &parts, &e)),
            };
            let (token, body) = match found {
                Found::Token(t, scheme) => (Some((t, scheme)), body),
                Found::Nothing => (None, body),
                Found::MaybeInForm => {
                    let bytes = match Limited::new(body, MAX_FORM_BODY).collect().await {
                        Ok(c) => c.to_bytes(),
                        Err(_) => {
                            let e = GuardError::InvalidRequest(
                                "form body too large or unreadable".into(),
                            );
                            return Ok(refuse(&guard, &parts, &e));
                        }
                    };
                    match source::from_form(&bytes, guard.sources()) {
                        Ok(t) => (t.map(|t| (t, Scheme::Bearer)), Body::from(bytes)),
                        Err(e) => return Ok(refuse(&guard, &parts, &e)),
                    }
                }
            };
            parts.extensions.insert(guard.clone());
            match token {
                Some((t, scheme)) => match guard.verify_presented(&parts, &t, scheme).await {
                    Ok(identity) => {
                        parts.extensions.insert(AuthenticatedBy(guard.clone()));
                        parts.extensions.insert(Authenticated(identity));
                    }
                    // verify_presented() has logged the refusal with kid/iss.
                    Err(e) => return Ok(guard.error_response_to(&parts, &e)),
                },
                None if required => {
                    return Ok(refuse(&guard, &parts, &GuardError::MissingToken));
                }
                None => {
                    parts.extensions.insert(Anonymous);
                }
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}

fn refuse(guard: &Guard, parts: &http::request::Parts, e: &GuardError) -> Response {
    guard.log(e, None);
    guard.error_response_to(parts, e)
}

/// A per-route scope requirement, as a layer: `get(handler.layer(RequireScope::all(["notes:read"])))`
/// or `.route_layer(...)`. It uses the identity the [`GuardLayer`] established, or
/// authenticates itself with the [`Guard`] the layer left in the extensions.
#[derive(Clone, Debug)]
pub struct RequireScope {
    requirement: Arc<ScopeRequirement>,
}

impl RequireScope {
    /// Every one of `scopes` is needed.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        RequireScope {
            requirement: Arc::new(ScopeRequirement::all(scopes)),
        }
    }

    /// Any one of `scopes` is enough.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        RequireScope {
            requirement: Arc::new(ScopeRequirement::any(scopes)),
        }
    }
}

impl<S> Layer<S> for RequireScope {
    type Service = RequireScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopeService {
            requirement: self.requirement.clone(),
            inner,
        }
    }
}

/// The service of [`RequireScope`].
#[derive(Clone, Debug)]
pub struct RequireScopeService<S> {
    requirement: Arc<ScopeRequirement>,
    inner: S,
}

impl<S> Service<Request<Body>> for RequireScopeService<S>
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
            if let Err(e) = requirement.check(identity.scope.as_ref()) {
                return Ok(extract::refuse(&parts, e).into_response());
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}

/// A per-route requirement of a DPoP-bound token, as a layer:
/// `.route("/transfer", post(h).route_layer(RequireDpop))`. A bearer token is refused
/// with `invalid_token` and a `DPoP` challenge only; a request without a token (under an
/// optional layer) gets 401 with the bare challenges, no error code. The guard already refuses a bound
/// token without its valid proof, so a bound identity here is a proven one.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequireDpop;

impl<S> Layer<S> for RequireDpop {
    type Service = RequireDpopService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireDpopService { inner }
    }
}

/// The service of [`RequireDpop`].
#[derive(Clone, Debug)]
pub struct RequireDpopService<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for RequireDpopService<S>
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
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let bound = match extract::identity(&mut parts).await {
                Ok(Some(id)) => id.cnf.as_ref().is_some_and(|c| c.jkt.is_some()),
                // No credentials: a bare challenge, no error code (RFC 6750 section 3.1).
                Ok(None) => {
                    return Ok(extract::reject(&parts, GuardError::MissingToken).into_response());
                }
                Err(rejection) => return Ok(rejection.into_response()),
            };
            if !bound {
                let e = GuardError::TokenBinding(DPOP_REQUIRED);
                return Ok(extract::refuse(&parts, e).into_response());
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}
