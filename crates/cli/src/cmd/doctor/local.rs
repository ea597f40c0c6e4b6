//! Checks of the configuration and the data directory (no network).

use std::path::Path;
use std::time::Duration;

use tessera_server::ServerConfig;
use tessera_server::admin::{Admin, KeyInfo};
use tessera_server::keys;
use tessera_server::secrets::MASTER_KEY_ENV;
use tessera_server::store::KeyState;
use tessera_token::{Algorithm, Clock, SystemClock};

use super::Finding;

const DAY: u64 = 86_400;

/// Every local check, in a stable order.
pub(super) async fn check(c: &ServerConfig) -> Vec<Finding> {
    let mut out = vec![transport(c), issuer(c)];
    out.extend(lifetimes(c));
    out.push(throttling(c));
    out.push(rotation_setting(c));
    out.extend(master_key(&c.store.data_dir));
    out.extend(key_age(c).await);
    out.push(database_clock(c).await);
    out
}

/// Skew between this host and the database server (PostgreSQL `clock_timestamp()`).
async fn database_clock(c: &ServerConfig) -> Finding {
    if c.store.database.is_none() {
        return Finding::ok(
            "SQLite: the database shares this host's clock",
            "clock-skew",
        );
    }
    let time = match Admin::open(c).await {
        Ok(admin) => admin
            .store()
            .database_time()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match time {
        Ok(Some(db)) => {
            super::skew_finding("database", db, super::this_host_time(), Duration::ZERO)
        }
        Ok(None) => Finding::ok("the database shares this host's clock", "clock-skew"),
        Err(e) => Finding::fail(
            format!("cannot read the database clock: {e}"),
            "check the database URL and that PostgreSQL is reachable",
            "clock-skew",
        ),
    }
}

fn transport(c: &ServerConfig) -> Finding {
    match c.serving.check_transport() {
        Err(_) => Finding::fail(
            format!(
                "listen = {} is not loopback and serves plain HTTP",
                c.serving.listen
            ),
            "set tls_cert and tls_key, or listen on 127.0.0.1 behind a TLS-terminating proxy",
            "https",
        ),
        Ok(true) => Finding::warn(
            format!("plain HTTP on {} (dangerous_allow_http)", c.serving.listen),
            "only behind a TLS-terminating proxy on a trusted network; prefer tls_cert/tls_key",
            "https",
        ),
        Ok(false) if c.serving.tls.is_some() => {
            Finding::ok("HTTPS served by tessera (tls_cert, tls_key)", "https")
        }
        Ok(false) => Finding::ok(
            format!("plain HTTP only on loopback ({})", c.serving.listen),
            "https",
        ),
    }
}

fn issuer(c: &ServerConfig) -> Finding {
    match &c.serving.issuer {
        Some(i) if i.starts_with("https://") => {
            Finding::ok(format!("issuer {i} is https"), "https")
        }
        Some(i) => Finding::warn(
            format!("issuer {i} is http (allowed on loopback only: development)"),
            "set issuer to the public https URL clients and resource servers use",
            "https",
        ),
        None => Finding::warn(
            "issuer not set: it will be derived from the bound address",
            "set issuer to the public https URL, e.g. issuer = \"https://auth.example.com\"",
            "https",
        ),
    }
}

fn lifetimes(c: &ServerConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let at = c.tokens.access_token_ttl.as_secs();
    out.push(if at <= 900 {
        Finding::ok(
            format!("access tokens live {at} s (at most 15 min)"),
            "stolen-access-token",
        )
    } else {
        Finding::warn(
            format!("access tokens live {at} s: a stolen one is usable that long"),
            "set access_token_ttl_secs to 900 or less (600 is the default)",
            "stolen-access-token",
        )
    });
    out.push(Finding::ok(
        "refresh tokens rotate on every use; reuse revokes the family (always on)",
        "stolen-refresh-token",
    ));
    let grace = c.tokens.refresh_reuse_grace.as_secs();
    if grace > 10 {
        out.push(Finding::warn(
            format!("refresh_reuse_grace_secs = {grace}: a stolen refresh token used within {grace} s of its owner is not detected"),
            "keep refresh_reuse_grace_secs at 0 to 10",
            "stolen-refresh-token",
        ));
    }
    let abs = c.tokens.refresh_absolute_ttl.as_secs();
    out.push(if abs <= 90 * DAY {
        Finding::ok(
            format!("refresh families end after {} days", abs / DAY),
            "stolen-refresh-token",
        )
    } else {
        Finding::warn(
            format!("refresh families live {} days", abs / DAY),
            "set refresh_token_absolute_ttl_secs to 90 days (7776000) or less",
            "stolen-refresh-token",
        )
    });
    out
}

fn throttling(c: &ServerConfig) -> Finding {
    let t = &c.login.throttle;
    if t.per_account <= 10 && t.per_ip <= 100 {
        Finding::ok(
            format!(
                "login throttling on: {} failures per account, {} per IP, per {} s",
                t.per_account,
                t.per_ip,
                t.window.as_secs()
            ),
            "brute-force",
        )
    } else {
        Finding::warn(
            format!(
                "login throttling is loose: {} failures per account, {} per IP",
                t.per_account, t.per_ip
            ),
            "set login_failures_per_account to 10 or less and login_failures_per_ip to 100 or less",
            "brute-force",
        )
    }
}

fn rotation_setting(c: &ServerConfig) -> Finding {
    match c.signing.key_rotation_period {
        None => Finding::warn(
            "automatic signing-key rotation is off (key_rotation_period_secs = 0)",
            "set key_rotation_period_secs (e.g. 7776000, 90 days), or run `tessera keys rotate` on a schedule",
            "leaked-signing-key",
        ),
        Some(p) if p.as_secs() > 180 * DAY => Finding::warn(
            format!("signing keys rotate only every {} days", p.as_secs() / DAY),
            "set key_rotation_period_secs to 90 days (7776000) or less",
            "leaked-signing-key",
        ),
        Some(p) => Finding::ok(
            format!("signing keys rotate every {} days", p.as_secs() / DAY),
            "leaked-signing-key",
        ),
    }
}

fn master_key(data_dir: &Path) -> Vec<Finding> {
    if std::env::var_os(MASTER_KEY_ENV).is_some() {
        return vec![Finding::ok(
            format!("master key from {MASTER_KEY_ENV}"),
            "master-key",
        )];
    }
    let path = data_dir.join("master.key");
    let Ok(meta) = std::fs::metadata(&path) else {
        return vec![Finding::warn(
            format!("{} does not exist yet", path.display()),
            "it is created (mode 0600) on first start; back it up with the database",
            "master-key",
        )];
    };
    let mut out = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        out.push(if mode & 0o077 == 0 {
            Finding::ok(format!("{} is mode {mode:o}", path.display()), "master-key")
        } else {
            Finding::fail(
                format!(
                    "{} is mode {mode:o}: other users can read the master key",
                    path.display()
                ),
                format!("chmod 600 {}", path.display()),
                "master-key",
            )
        });
        if let Ok(dir) = std::fs::metadata(data_dir) {
            let dmode = dir.permissions().mode() & 0o777;
            if dmode & 0o077 != 0 {
                out.push(Finding::warn(
                    format!("data directory {} is mode {dmode:o}", data_dir.display()),
                    format!("chmod 700 {}", data_dir.display()),
                    "master-key",
                ));
            }
        }
    }
    #[cfg(not(unix))]
    drop(meta);
    out
}

async fn key_age(c: &ServerConfig) -> Vec<Finding> {
    if c.store.database.is_none() && !c.store.data_dir.join("tessera.db").exists() {
        return vec![Finding::warn(
            "no store yet: signing keys not checked",
            "start the server once (it creates the database and the first key)",
            "leaked-signing-key",
        )];
    }
    let read = async {
        let admin = Admin::open(c).await?;
        let keys = admin.keys().await?;
        Ok::<_, tessera_server::Error>((keys, admin.algorithms_in_use().await?))
    };
    let (keys, algs) = match read.await {
        Ok(k) => k,
        Err(e) => {
            return vec![Finding::fail(
                format!("cannot read the signing keys: {e}"),
                "check the database URL, the master key and the data directory",
                "leaked-signing-key",
            )];
        }
    };
    let now = SystemClock.now().secs();
    // One finding per algorithm in use: access tokens, ID tokens, and any other with an
    // active key (chosen by clients), as the server rotates them all.
    algs.into_iter()
        .map(|alg| alg_key_age(c, &keys, alg, now))
        .collect()
}

fn alg_key_age(c: &ServerConfig, keys: &[KeyInfo], alg: Algorithm, now: i64) -> Finding {
    let name = alg.name();
    let role = if alg == c.signing.signing_alg {
        ""
    } else if alg == keys::ID_TOKEN_ALG {
        " (ID tokens)"
    } else {
        " (chosen by clients)"
    };
    let newest = keys
        .iter()
        .filter(|k| matches!(k.state, KeyState::Active | KeyState::Published) && k.alg == name)
        .map(|k| k.created_at.secs())
        .max();
    let Some(created) = newest else {
        let what = format!("no active {name} signing key{role}");
        if alg == c.signing.signing_alg {
            return Finding::fail(
                what,
                "run `tessera keys rotate` (or start the server)",
                "leaked-signing-key",
            );
        }
        // A store from before ID tokens were RS256: the next server start creates it.
        return Finding::warn(
            what,
            format!("start the server (it creates one) or run `tessera keys rotate --alg {name}`"),
            "leaked-signing-key",
        );
    };
    let age = Duration::from_secs(now.saturating_sub(created).max(0) as u64);
    let limit = c
        .signing
        .key_rotation_period
        .unwrap_or(Duration::from_secs(90 * DAY));
    // The server publishes within one key refresh interval of the period; allow a day.
    if age > limit + Duration::from_secs(DAY) {
        Finding::warn(
            format!(
                "the newest {name} signing key{role} is {} days old (rotation period {} days)",
                age.as_secs() / DAY,
                limit.as_secs() / DAY
            ),
            "run `tessera keys rotate`; if automatic rotation is on, check that a server is running",
            "leaked-signing-key",
        )
    } else {
        Finding::ok(
            format!(
                "newest {name} signing key{role} is {} days old",
                age.as_secs() / DAY
            ),
            "leaked-signing-key",
        )
    }
}
