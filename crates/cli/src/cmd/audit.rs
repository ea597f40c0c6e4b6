//! `tessera audit`: read the audit log, newest first, optionally for one user and since a
//! time. Events never hold a token, secret or password.

use clap::{Args, Subcommand};
use serde_json::json;
use tessera_token::{Clock, SystemClock, UnixTime};

use crate::cmd::Global;
use crate::exit::CliError;

/// Options of `tessera audit`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    filter: AuditFilter,
    #[command(subcommand)]
    command: Option<AuditCommand>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// The same as `tessera audit` (kept for scripts).
    List(AuditFilter),
}

#[derive(Debug, Args)]
struct AuditFilter {
    /// Only events of this user (login name).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Only events since this time: RFC 3339 UTC (2026-11-01T00:00:00Z), Unix seconds,
    /// or an age such as 90s, 15m, 1h, 7d.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    since: Option<UnixTime>,
    /// How many events at most (the newest).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON (one array).
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(global: &Global, args: AuditArgs) -> Result<(), CliError> {
    let f = match args.command {
        Some(AuditCommand::List(f)) => f,
        None => args.filter,
    };
    let events = global
        .admin()
        .await?
        .audit_query(f.user.as_deref(), f.since, f.limit)
        .await?;
    if f.json {
        let list: Vec<_> = events
            .iter()
            .map(|e| {
                let detail: serde_json::Value =
                    serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
                json!({ "at": e.at.secs(), "kind": e.kind, "client_id": e.client_id, "user_id": e.user_id, "detail": detail })
            })
            .collect();
        println!("{}", serde_json::Value::from(list));
    } else {
        for e in events {
            println!(
                "{} {:<22} client={} user={} {}",
                e.at.secs(),
                e.kind,
                e.client_id.as_deref().unwrap_or("-"),
                e.user_id.as_deref().unwrap_or("-"),
                e.detail
            );
        }
    }
    Ok(())
}

/// `--since`: an age (`15m`), Unix seconds, or an RFC 3339 UTC time.
fn parse_since(s: &str) -> Result<UnixTime, String> {
    let now = SystemClock.now();
    since_at(s, now)
}

fn since_at(s: &str, now: UnixTime) -> Result<UnixTime, String> {
    const HINT: &str = "expected an age (90s, 15m, 1h, 7d), Unix seconds, or 2026-11-01T00:00:00Z";
    if let Some((n, unit)) = s
        .char_indices()
        .last()
        .and_then(|(i, c)| s[..i].parse::<u64>().ok().map(|n| (n, c)))
    {
        let secs = match unit {
            's' => Some(n),
            'm' => n.checked_mul(60),
            'h' => n.checked_mul(3600),
            'd' => n.checked_mul(86400),
            _ => None,
        };
        if let Some(secs) = secs {
            let back = i64::try_from(secs).map_err(|_| HINT.to_owned())?;
            return Ok(UnixTime::from_secs(now.secs().saturating_sub(back)));
        }
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(UnixTime::from_secs(secs));
    }
    rfc3339_utc(s).ok_or_else(|| HINT.to_owned())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC only) to Unix seconds.
fn rfc3339_utc(s: &str) -> Option<UnixTime> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || !(b[19] == b'Z' || b[19] == b'z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, sec) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), proleptic Gregorian.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(UnixTime::from_secs(days * 86400 + h * 3600 + mi * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_ages_unix_seconds_and_rfc3339() {
        let now = UnixTime::from_secs(1_800_000_000);
        assert_eq!(since_at("90s", now).unwrap().secs(), 1_800_000_000 - 90);
        assert_eq!(since_at("15m", now).unwrap().secs(), 1_800_000_000 - 900);
        assert_eq!(since_at("1h", now).unwrap().secs(), 1_800_000_000 - 3600);
        assert_eq!(
            since_at("7d", now).unwrap().secs(),
            1_800_000_000 - 7 * 86400
        );
        assert_eq!(since_at("1700000000", now).unwrap().secs(), 1_700_000_000);
        assert_eq!(since_at("1970-01-01T00:00:00Z", now).unwrap().secs(), 0);
        assert_eq!(
            since_at("2026-11-01T00:00:00Z", now).unwrap().secs(),
            1_793_491_200
        );
        assert_eq!(
            since_at("2000-03-01T12:30:05Z", now).unwrap().secs(),
            951_913_805
        );
        for bad in [
            "",
            "h",
            "5y",
            "2026-13-01T00:00:00Z",
            "2026-11-01 00:00:00",
            "soon",
        ] {
            assert!(since_at(bad, now).is_err(), "{bad}");
        }
    }
}
