//! The axum extractors: [`Auth`] (a valid token is required), [`MaybeAuth`] (optional),
//! [`Scoped`] (a valid token with a route's scope). Public routes use none of them.
//!
//! They read the identity the [`crate::GuardLayer`] established; on routes no layer
//! covers they verify lazily with a [`Guard`] found in the request extensions (put
//! there by the layer, or by `axum::Extension(guard)`).

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use serde::de::{Deserialize, DeserializeOwned, Deserializer, IgnoredAny};
use tessera_token::Error as TokenError;

use crate::challenge::Scheme;
use crate::layer::{Anonymous, Authenticated};
use crate::{AuthRejection, Guard, GuardError, Identity, ScopeRequirement};

/// The verified caller, with the token's custom claims deserialized into `T`.
///
/// ```ignore
/// async fn me(auth: Auth<MyClaims>) -> String { format!("{:?} {}", auth.sub, auth.custom.tenant) }
/// ```
#[derive(Debug, Clone)]
pub struct Auth<T = NoCustomClaims> {
    /// The verified claims.
    pub identity: Arc<Identity>,
    /// The custom claims as the application's own type.
    pub custom: T,
}

impl<T> Deref for Auth<T> {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.identity
    }
}

/// The default custom-claims type of [`Auth`]: accepts and ignores anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoCustomClaims;

impl<'de> Deserialize<'de> for NoCustomClaims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| NoCustomClaims)
    }
}

/// [`Auth`] when a token came, `None` when none did. A token that is present but
/// invalid is still refused: a bad token is not an anonymous request.
#[derive(Debug, Clone)]
pub struct MaybeAuth<T = NoCustomClaims>(pub Option<Auth<T>>);

/// A scope requirement known at compile time, for [`Scoped`]. Declare one with
/// [`crate::scope_requirement!`].
pub trait ScopeSpec: Send + Sync + 'static {
    /// The scopes.
    const SCOPES: &'static [&'static str];
    /// `true`: all of them are needed; `false`: any one is enough.
    const ALL: bool;
}

/// `R`'s requirement as a value, checked by [`ScopeRequirement::check`] like any other.
/// Built from `SCOPES` and `ALL` only, so what a declaration reads is what is enforced.
fn requirement<R: ScopeSpec>() -> ScopeRequirement {
    let scopes = R::SCOPES.iter().copied();
    if R::ALL {
        ScopeRequirement::all(scopes)
    } else {
        ScopeRequirement::any(scopes)
    }
}

/// [`Auth`] on a route that also needs the scope `R` (403 `insufficient_scope` if not,
/// decided by [`ScopeRequirement::check`]).
#[derive(Debug, Clone)]
pub struct Scoped<R, T = NoCustomClaims> {
    /// The verified caller.
    pub auth: Auth<T>,
    _requirement: PhantomData<fn() -> R>,
}

impl<R, T> Deref for Scoped<R, T> {
    type Target = Auth<T>;

    fn deref(&self) -> &Auth<T> {
        &self.auth
    }
}

/// Declares a [`ScopeSpec`] type: `scope_requirement!(pub NotesRead = all["notes:read"]);`
/// or `any[...]`.
#[macro_export]
macro_rules! scope_requirement {
    ($(#[$m:meta])* $vis:vis $name:ident = all [$($s:literal),+ $(,)?]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::ScopeSpec for $name {
            const SCOPES: &'static [&'static str] = &[$($s),+];
            const ALL: bool = true;
        }
    };
    ($(#[$m:meta])* $vis:vis $name:ident = any [$($s:literal),+ $(,)?]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::ScopeSpec for $name {
            const SCOPES: &'static [&'static str] = &[$($s),+];
            const ALL: bool = false;
        }
    };
}

/// The identity for this request: established by the layer, or verified now with the
/// guard in the extensions.
pub(crate) async fn identity(parts: &mut Parts) -> Result<Option<Arc<Identity>>, AuthRejection> {
    if let Some(Authenticated(id)) = parts.extensions.get::<Authenticated>() {
        return Ok(Some(id.clone()));
    }
    let Some(guard) = parts.extensions.get::<Guard>().cloned() else {
        tracing::error!(
            "tessera-guard extractor used on a route without a guard layer or Extension(guard)"
        );
        return Err(reject(parts, GuardError::NotConfigured));
    };
    if parts.extensions.get::<Anonymous>().is_some() {
        return Ok(None);
    }
    match guard.authenticate(parts).await {
        Ok(Some(id)) => {
            parts.extensions.insert(Authenticated(id.clone()));
            Ok(Some(id))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(guard.rejection(e, Scheme::of(&parts.headers))),
    }
}

/// The refusal for `err`, shaped by the guard's settings when one is installed (else by
/// the builder's defaults: realm `api`, JSON body).
pub(crate) fn reject(parts: &Parts, err: GuardError) -> AuthRejection {
    let scheme = Scheme::of(&parts.headers);
    match parts.extensions.get::<Guard>() {
        Some(g) => g.rejection(err, scheme),
        None => AuthRejection::new(err, Arc::default(), scheme),
    }
}

/// [`reject`], after logging the refusal with the installed guard.
pub(crate) fn refuse(parts: &Parts, err: GuardError) -> AuthRejection {
    if let Some(g) = parts.extensions.get::<Guard>() {
        g.log(&err, None);
    }
    reject(parts, err)
}

/// Deserializes the custom claims; a token whose claims do not fit is `invalid_token`.
fn with_custom<T: DeserializeOwned>(
    parts: &Parts,
    identity: Arc<Identity>,
) -> Result<Auth<T>, AuthRejection> {
    match identity.extra_as::<T>() {
        Ok(custom) => Ok(Auth { identity, custom }),
        Err(_) => Err(refuse(
            parts,
            GuardError::InvalidToken(TokenError::InvalidClaim("custom claims")),
        )),
    }
}

impl<S, T> FromRequestParts<S> for Auth<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AuthRejection> {
        match identity(parts).await? {
            Some(id) => with_custom(parts, id),
            None => Err(reject(parts, GuardError::MissingToken)),
        }
    }
}

impl<S, T> OptionalFromRequestParts<S> for Auth<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, AuthRejection> {
        match identity(parts).await? {
            Some(id) => with_custom(parts, id).map(Some),
            None => Ok(None),
        }
    }
}

impl<S, T> FromRequestParts<S> for MaybeAuth<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        <Auth<T> as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(MaybeAuth)
    }
}

impl<S, R, T> FromRequestParts<S> for Scoped<R, T>
where
    S: Send + Sync,
    R: ScopeSpec,
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let auth = <Auth<T> as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        if let Err(e) = requirement::<R>().check(auth.scope.as_ref()) {
            return Err(refuse(parts, e));
        }
        Ok(Scoped {
            auth,
            _requirement: PhantomData,
        })
    }
}
