//! The configuration as written: [`FileConfig`], every key optional, the same keys in the
//! TOML file, as `TESSERA_*` variables and as `--set key=value`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::layer;
use crate::Error;

/// The optional TOML file (`--config FILE`). Every field is optional; unknown fields are
/// refused so a typo does not silently fall back to a default. Each field is also the
/// environment variable `TESSERA_<FIELD>` and `--set field=VALUE`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    // --- storage ---
    /// Data directory (database, `master.key`).
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://...`); unset for SQLite in the data directory.
    pub database: Option<String>,

    // --- network: listening, TLS, proxies, browsers ---
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Issuer URL (`iss`), e.g. `https://auth.example.com`.
    pub issuer: Option<String>,
    /// TLS certificate chain (PEM); with `tls_key`, the server speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8, SEC1 or PKCS#1).
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy only).
    pub dangerous_allow_http: Option<bool>,
    /// `Strict-Transport-Security` max-age, seconds (default one year; 0 sends none).
    pub hsts_max_age_secs: Option<u64>,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For` names the client (default none).
    pub trusted_proxies: Option<Vec<String>>,
    /// Browser origins allowed to call /token, /revoke, the JWKS and discovery (default none).
    pub cors_allowed_origins: Option<Vec<String>>,
    /// How long in-flight requests may run after SIGTERM, seconds (default 30).
    pub shutdown_timeout_secs: Option<u64>,
    /// Lame-duck phase on SIGTERM: `/readyz` answers 503 while the server keeps serving
    /// this long before it stops accepting, seconds (default 5; 0: stop at once).
    pub shutdown_delay_secs: Option<u64>,
    /// Longest wait for a request head, seconds, also between keep-alive requests
    /// (default 10).
    pub header_read_timeout_secs: Option<u64>,
    /// Longest time to receive a request body after its head, seconds (default 30).
    pub request_timeout_secs: Option<u64>,
    /// Open connections served at once (default 512); a few more are admitted for
    /// `/healthz` and `/readyz` only, the rest are closed at once.
    pub max_connections: Option<usize>,
    /// A separate address serving `/metrics` (then the main listener does not).
    pub metrics_listen: Option<String>,
    /// A file holding the bearer token `/metrics` requires (default none: open).
    pub metrics_token_file: Option<PathBuf>,
    /// Open connections one source (IPv4 address, IPv6 /64) may hold at once (default 32,
    /// at most an eighth of `max_connections`); one prefix (IPv4 /24, IPv6 /48) four times
    /// as many; `trusted_proxies` are not limited.
    pub max_connections_per_ip: Option<usize>,

    // --- tokens ---
    /// Access-token lifetime in seconds (default 600).
    pub access_token_ttl_secs: Option<u64>,
    /// Refresh-token idle lifetime in seconds (default 14 days).
    pub refresh_token_idle_ttl_secs: Option<u64>,
    /// Refresh-token family absolute lifetime in seconds (default 90 days).
    pub refresh_token_absolute_ttl_secs: Option<u64>,
    /// Grace window for concurrent reuse of one refresh token, 0..=60 s (default 0).
    pub refresh_reuse_grace_secs: Option<u64>,

    // --- signing keys ---
    /// Signing algorithm of new keys: EdDSA (default), ES256 or RS256.
    pub signing_alg: Option<String>,
    /// Publish a new signing key when the newest is this old, seconds (default 90 days;
    /// 0: only `tessera keys rotate`).
    pub key_rotation_period_secs: Option<u64>,
    /// How long resource servers may cache the JWKS, seconds (default 300); a new key is
    /// published this long before it signs.
    pub jwks_cache_ttl_secs: Option<u64>,
    /// How often the server reloads keys from the store and applies their lifecycle,
    /// seconds (default 10).
    pub key_refresh_interval_secs: Option<u64>,
    /// How long a server keeps a client record it read, seconds (default 5, at most 300;
    /// 0 reads the store on every request): a removed client or a rotated-away secret
    /// stops working within this bound.
    pub client_cache_ttl_secs: Option<u64>,

    // --- passwords and throttling ---
    /// Password hashes computed at once (default: number of CPUs).
    pub password_hash_concurrency: Option<usize>,
    /// Scheduling of the hashing threads: "idle" (default; Linux `SCHED_IDLE`, a login
    /// storm never delays other requests, logins wait while the CPU is saturated) or
    /// "nice" (nice 10: logins keep about a tenth of a contended core).
    pub password_hash_priority: Option<String>,
    /// Failed logins of one account from one source network within the window before
    /// that network is throttled for that account (default 5).
    pub login_failures_per_account: Option<u32>,
    /// Failed logins from one source network (an IPv4 address, an IPv6 /64) within the
    /// window before throttling (default 50).
    pub login_failures_per_ip: Option<u32>,
    /// Window for counting failed logins, seconds (default 900).
    pub login_failure_window_secs: Option<u64>,
    /// Longest throttling block, seconds (default 900).
    pub login_max_block_secs: Option<u64>,
    /// `/revoke` requests that write (the client's own token, not yet revoked) per minute
    /// per client, each node on its own (default 600, 1 to 1000000); beyond it 429 with
    /// `Retry-After`.
    pub revoke_requests_per_minute: Option<u32>,
    /// Push subscriptions to the revocation feed one client may hold open at once, per
    /// node (default 64, 1 to 100000); beyond it 429 with `Retry-After`.
    pub feed_subscriptions_per_client: Option<u32>,
    /// Push subscriptions this node holds open at once, over all clients (default half of
    /// `max_connections`, 1 to three quarters of it); beyond it 503 with `Retry-After`.
    pub feed_subscriptions_max: Option<usize>,
    /// Longest life of one push subscription, seconds (default 300, 1 to 540); it then
    /// ends with a final event and the guard subscribes again from its cursor.
    pub feed_subscription_max_secs: Option<u64>,
    /// Keep-alive comment on an idle push subscription every this many seconds (default
    /// 15, 1 to 30), so dead peers are noticed on both sides.
    pub feed_keepalive_secs: Option<u64>,
    /// Password checks that may wait for a hashing thread (default 32, 0 to 10000); past
    /// that a login is answered 503 `temporarily_unavailable` with `Retry-After` at once.
    pub password_hash_queue: Option<usize>,
    /// Second factors at browser sign-in: "off", "optional" (default) or "required".
    pub mfa: Option<String>,
    /// The WebAuthn relying party id of passkeys; default: the issuer's host. Must be
    /// that host or a parent domain of it.
    pub passkey_rp_id: Option<String>,
    /// Allowance for the clocks of replicas against each other at `/authorize`, seconds
    /// (default 5, 0 to 60): a sign-in asked to be fresh (`prompt=login`, `max_age=0`)
    /// counts when made at most this long before the request arrived.
    pub authorize_clock_leeway_secs: Option<u64>,

    // --- DPoP (RFC 9449) ---
    /// How far a DPoP proof's `iat` may be from now, either side, seconds (default 60,
    /// 1 to 300), plus `dpop_leeway_secs`.
    pub dpop_proof_window_secs: Option<u64>,
    /// Allowance for a DPoP client's clock, seconds (default 5, 0 to 60).
    pub dpop_leeway_secs: Option<u64>,
    /// Every DPoP proof at /token must carry a server nonce (default false): otherwise
    /// 400 `use_dpop_nonce` with a `DPoP-Nonce` header to retry with.
    pub dpop_require_nonce: Option<bool>,

    // --- browser sign-in ---
    /// Authorization-code lifetime, seconds (default 60, 1 to 600).
    pub authorization_code_ttl_secs: Option<u64>,
    /// Browser sign-in session lifetime, seconds (default 8 hours).
    pub session_ttl_secs: Option<u64>,

    // --- housekeeping ---
    /// How long audit events are kept before the janitor deletes them, days (default 90).
    pub audit_retention_days: Option<u64>,
}

impl FileConfig {
    /// Reads and checks a TOML config file (no environment, no flags).
    pub fn read(path: &Path) -> Result<Self, Error> {
        layer(Some(path), &|_| None, &[])
    }

    /// The file (if any), then `TESSERA_*` variables of the process, then `--set`
    /// assignments.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Self, Error> {
        layer(path, &|var| std::env::var(var).ok(), sets)
    }
}
