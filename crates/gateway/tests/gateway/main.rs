//! The gateway's integration tests, one binary: forward-auth decisions for each proxy's
//! header convention (in process), the listener's limits (loopback sockets), start-up
//! with the issuer down, and nginx `auth_request` in front of an upstream with the real
//! `tessera` server (end to end).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod common;
mod forward_auth;
mod nginx;
mod serving;
mod startup;
