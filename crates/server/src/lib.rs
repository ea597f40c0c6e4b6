//! Tessera's OAuth 2 authorization server.
//!
//! The token endpoint (RFC 6749) with the client credentials, password and refresh token
//! grants, RFC 9068 JWT access tokens signed with keys sealed at rest (bound to the
//! client's key with DPoP, RFC 9449, when it sends a proof), discovery and the
//! JWK Set; storage behind narrow traits with an embedded SQLite backend and a PostgreSQL
//! backend for several replicas; and the
//! operator operations the `tessera` CLI runs ([`admin`]).
//!
//! Layout (docs/architecture.md): [`http`] (the router, one module per endpoint, its
//! `AppState`) → the domain (`grants`, `dpop`, `login`, `tokens`, `oidc`, `throttle`, [`keys`],
//! [`password`], [`secrets`], all taking `&Core`) → [`store`] (records and traits; SQL
//! only in its backends) → `tessera-token`. Time comes from a [`Clock`].

pub mod admin;
mod audit;
mod client_addr;
mod client_cache;
mod clock;
pub mod config;
mod dpop;
mod error;
mod feed;
pub mod http;
mod ids;
pub mod keys;
mod lockfile;
mod login;
pub mod metrics;
mod mfa;
mod oauth;
mod oidc;
mod passkeys;
pub mod password;
mod rate_limit;
pub mod secrets;
mod server;
mod serving;
mod state;
pub mod store;
mod throttle;
pub mod tls;
mod tokens;
mod upkeep;

mod grants;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::ThrottlePolicy;
pub use config::{DatabaseUrl, FileConfig, Overrides, ServerConfig};
pub use error::Error;
pub use http::AppState;
pub use oauth::OAuthError;
pub use server::{Server, Stop, prepare_data_dir};
pub use state::Core;
