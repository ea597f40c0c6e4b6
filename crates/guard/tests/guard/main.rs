//! Integration tests of tessera-guard, one binary: in-process router tests and tests
//! against real loopback HTTP servers (fake issuer, introspection, revocation feed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod dpop;
mod feed;
mod introspection;
mod observability;
mod remote;
mod responses;
mod sources;
mod step_up;
