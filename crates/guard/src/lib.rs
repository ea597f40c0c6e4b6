//! Tessera's resource-server guard for axum 0.8 / tower 0.5: the equivalent of FastAPI's
//! `OAuth2PasswordBearer` + `Depends(get_current_user)`, with validation done right.
//!
//! Build a [`Guard`] once (verifier, [`tessera_token::Validation`] with issuer and
//! audience, options), wrap routes in [`Guard::layer`], and take [`Auth`], [`MaybeAuth`]
//! or [`Scoped`] in handlers; [`RequireScope`] adds a scope to a route as a layer.
//! Refusals are RFC 6750 responses built in one place ([`Guard::error_response`]); the
//! extractors refuse with the typed [`AuthRejection`], which becomes that same response.
//! DPoP-bound tokens (RFC 9449) are taken with their proofs by default ([`DpopPolicy`]);
//! [`RequireDpop`] requires them on a route; [`RequireAcr`] and [`RequireAuthAge`] ask
//! for a stronger or more recent sign-in (RFC 9470 step-up); [`ResourceMetadata`] is served (RFC 9728)
//! by [`Guard::metadata_router`] and named in every challenge.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tessera_guard::{Auth, Guard, RemoteIssuer, RequireScope, Verifier};
//! use tessera_token::Validation;
//!
//! # fn app() -> Result<Router, tessera_guard::BuildError> {
//! let guard = Guard::builder(
//!     Verifier::remote(RemoteIssuer::new("https://auth.example"))?,
//!     Validation::access_token("https://auth.example", "notes-api"),
//! )
//! .build()?;
//! async fn me(auth: Auth) -> String {
//!     auth.sub.clone().unwrap_or_default()
//! }
//! let app = Router::new()
//!     .route("/me", get(me))
//!     .route("/notes", get(me).route_layer(RequireScope::all(["notes:read"])))
//!     .layer(guard.layer())
//!     .route("/healthz", get(|| async { "ok" })); // public: added after the layer
//! # Ok(app) }
//! ```

mod assurance;
mod builder;
mod cache;
mod challenge;
mod dpop;
mod error;
mod extract;
mod feed;
mod guard;
mod identity;
mod layer;
mod metadata;
mod net;
mod revocation;
mod scope;
mod source;
mod sse;
mod step_up;
mod verifier;

pub use assurance::{AcrLadder, AuthRequirement, TESSERA_ACR_VALUES};
pub use builder::GuardBuilder;
pub use dpop::{DpopPolicy, DpopReplayCache};
pub use error::{AuthRejection, BuildError, FetchError, GuardError};
pub use extract::{Auth, MaybeAuth, NoCustomClaims, ScopeSpec, Scoped};
pub use feed::RevocationFeed;
pub use guard::Guard;
pub use identity::{Identity, Origin};
pub use layer::{
    GuardLayer, GuardService, RequireDpop, RequireDpopService, RequireScope, RequireScopeService,
};
pub use metadata::{ResourceMetadata, WELL_KNOWN_PATH};
pub use revocation::{RevocationCheck, RevocationList};
pub use scope::ScopeRequirement;
pub use source::{CookieSource, Csrf, TokenSources, query_has_access_token};
pub use step_up::{RequireAcr, RequireAuthAge, RequireAuthService};
pub use tessera_token::{Clock, ManualClock, SystemClock};
/// The guard's refusal counter, recorded through the [`metrics`] facade with a `reason`
/// label ([`GuardError::reason`]). It costs nothing until the application installs a
/// recorder (e.g. `metrics-exporter-prometheus`), which then exports it with its own.
pub const REFUSALS_METRIC: &str = "tessera_guard_refusals_total";

pub use verifier::{AuthorizationServerMetadata, Introspection, RemoteIssuer, Verifier, discover};
