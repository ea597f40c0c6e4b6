//! `tessera-gateway`: the guard of `tessera-guard` in front of an API written in any
//! language. One [`Gateway`] (guard + route table + identity headers) decides every
//! request; the modes only differ in how the request reaches it and where it goes next:
//! [`forward_auth`] answers a proxy's sub-request (nginx `auth_request`, Traefik
//! `ForwardAuth`, Envoy `ext_authz`), [`proxy`] forwards the request to the upstream itself.
//!
//! Layers: `main` → `startup` (building the gateway), `serve` (connections) → modes (`forward_auth`, `proxy`) → [`decide`] → `routes`, `identity`,
//! `config` → `tessera-guard`.

pub mod config;
pub mod decide;
pub mod forward_auth;
pub mod identity;
pub mod identity_jwt;
pub mod proxy;
pub mod routes;
pub mod serve;
pub mod startup;

pub use config::GatewayConfig;
pub use decide::{Allowed, Decision, Gateway};
