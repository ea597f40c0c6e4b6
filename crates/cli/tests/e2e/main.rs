//! End-to-end tests: the real `tessera` binary on 127.0.0.1:0 with a temporary data
//! directory, driven through its CLI and over HTTP. One test binary, one module per area.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod authorize;
mod browser;
mod cli;
mod config;
mod cookie_mode;
mod doctor;
mod dpop_guard;
mod dpop_server;
mod guard;
mod hardening_idtoken;
mod hardening_login;
mod hardening_operator;
mod hardening_revoke;
mod hardening_serving;
mod hardening_users;
mod interop;
mod key_eligibility;
mod keys;
mod meta;
mod mfa_totp;
mod observe;
mod passkey_abuse;
mod passkeys;
mod postgres;
mod push_revocation;
mod refresh;
mod replicas;
mod revocation;
mod security;
mod shutdown;
mod step_up;
mod tls;
mod token;
