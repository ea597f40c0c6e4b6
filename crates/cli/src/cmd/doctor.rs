//! `tessera doctor`: checks a configuration, its data directory and a running deployment
//! against the practices in docs/security.md, and prints each finding with its fix.

mod local;
mod remote;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::Args;
use tessera_server::Overrides;

use crate::cmd::Global;
use crate::exit::CliError;

/// Options of `tessera doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Base URL of a running deployment to check (default: the configured issuer, when
    /// it is https).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Also trust this PEM CA certificate when connecting (a private CA or self-signed
    /// certificate).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Only check the configuration and data directory; no HTTP.
    #[arg(long, conflicts_with = "url")]
    offline: bool,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome: what was found, and for warnings and failures, the fix and the
/// section of docs/security.md that explains why.
#[derive(Debug)]
pub(crate) struct Finding {
    level: Level,
    what: String,
    fix: Option<String>,
    section: &'static str,
}

impl Finding {
    pub(crate) fn ok(what: impl Into<String>, section: &'static str) -> Self {
        Finding {
            level: Level::Ok,
            what: what.into(),
            fix: None,
            section,
        }
    }

    pub(crate) fn warn(
        what: impl Into<String>,
        fix: impl Into<String>,
        section: &'static str,
    ) -> Self {
        Finding {
            level: Level::Warn,
            what: what.into(),
            fix: Some(fix.into()),
            section,
        }
    }

    pub(crate) fn fail(
        what: impl Into<String>,
        fix: impl Into<String>,
        section: &'static str,
    ) -> Self {
        Finding {
            level: Level::Fail,
            what: what.into(),
            fix: Some(fix.into()),
            section,
        }
    }

    fn print(&self) {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("[{tag}] {}", self.what);
        if let Some(fix) = &self.fix {
            println!("       fix: {fix} (docs/security.md#{})", self.section);
        }
    }
}

/// This host's wall clock to the nanosecond, to compare another clock against: the skew
/// check is about the wall clock itself, so it reads it rather than a seconds-only `Clock`.
#[allow(
    clippy::disallowed_methods,
    reason = "clock-skew checks measure this host's wall clock itself"
)]
pub(crate) fn this_host_time() -> SystemTime {
    SystemTime::now()
}

/// Clock skew that is only worth a warning, and the skew that fails the check.
const SKEW_WARN: Duration = Duration::from_secs(5);
const SKEW_FAIL: Duration = Duration::from_secs(60);

/// The finding for `whose` clock reading `theirs` against ours, allowing `resolution`.
pub(crate) fn skew_finding(
    whose: &str,
    theirs: SystemTime,
    ours: SystemTime,
    resolution: Duration,
) -> Finding {
    let skew = match ours.duration_since(theirs) {
        Ok(d) => d,
        Err(e) => e.duration(),
    }
    .saturating_sub(resolution);
    let secs = skew.as_secs();
    let fix = "run NTP (chrony, systemd-timesyncd) on every host";
    if skew <= SKEW_WARN {
        Finding::ok(
            format!("{whose} clock within {}s of this host", SKEW_WARN.as_secs()),
            "clock-skew",
        )
    } else if skew <= SKEW_FAIL {
        Finding::warn(
            format!("{whose} clock {secs} s off this host"),
            fix,
            "clock-skew",
        )
    } else {
        Finding::fail(
            format!("{whose} clock {secs} s off this host: tokens look expired or not yet valid"),
            fix,
            "clock-skew",
        )
    }
}

pub(crate) async fn run(global: &Global, args: DoctorArgs) -> Result<(), CliError> {
    let mut findings = Vec::new();
    println!("configuration and data directory:");
    let config = match global.config(Overrides::default()) {
        Ok(c) => Some(c),
        Err(e) => {
            findings.push(Finding::fail(
                format!("the configuration does not load: {}", e.message),
                "fix the key named above; `tessera config example` documents every key",
                "deployer-checklist",
            ));
            None
        }
    };
    if let Some(config) = &config {
        findings.extend(local::check(config).await);
    }
    let shown = findings.len();
    findings.iter().for_each(Finding::print);
    let url = match (&args.url, &config) {
        _ if args.offline => None,
        (Some(u), _) => Some(u.trim_end_matches('/').to_owned()),
        (None, Some(c)) => c
            .serving
            .issuer
            .clone()
            .filter(|i| i.starts_with("https://")),
        (None, None) => None,
    };
    if let Some(url) = url {
        println!("deployment {url}:");
        findings.extend(remote::check(&url, args.ca.as_deref()).await);
        findings[shown..].iter().for_each(Finding::print);
    } else if !args.offline {
        println!("deployment: not checked (give --url https://..., or set an https issuer)");
    }
    let fails = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warns = findings.iter().filter(|f| f.level == Level::Warn).count();
    println!(
        "{fails} failed, {warns} warnings, {} ok",
        findings.len() - fails - warns
    );
    if fails > 0 {
        return Err(CliError::runtime(format!(
            "doctor: {fails} check(s) failed; see the fixes above"
        )));
    }
    Ok(())
}
