//! Starting, stopping and cleaning up a PostgreSQL cluster for one test process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where the PostgreSQL server binaries are looked for, after `PATH`.
const PG_BIN_DIRS: [&str; 3] = [
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
];

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A PostgreSQL server for tests: either one we started, or an external one.
#[derive(Debug)]
pub enum Postgres {
    /// A cluster this process started; stopped and deleted when dropped.
    Started(PgCluster),
    /// The server named by `TESSERA_TEST_DATABASE_URL`.
    External(String),
}

impl Postgres {
    /// URL of the server's `postgres` database (or the external URL as given).
    pub fn url(&self) -> String {
        match self {
            Postgres::Started(c) => c.url("postgres"),
            Postgres::External(url) => url.clone(),
        }
    }

    /// Creates a fresh, uniquely named database and returns its URL, so tests sharing one
    /// server do not see each other's rows.
    pub fn fresh_database(&self, prefix: &str) -> Result<String, String> {
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let admin = self.url();
        run_psql(&admin, &format!("CREATE DATABASE \"{name}\""))?;
        Ok(match self {
            Postgres::Started(c) => c.url(&name),
            Postgres::External(url) => replace_database(url, &name),
        })
    }
}

/// Gives the calling test a PostgreSQL server, or `None` with a printed reason (skip).
///
/// Under `CI=true` a missing server panics with the reason instead: CI never skips.
pub fn postgres() -> Option<Postgres> {
    if let Ok(url) = std::env::var("TESSERA_TEST_DATABASE_URL") {
        return Some(Postgres::External(url));
    }
    match PgCluster::start() {
        Ok(c) => Some(Postgres::Started(c)),
        Err(why) => {
            let msg = format!(
                "no PostgreSQL for this test: {why}. Install PostgreSQL server binaries \
                 (initdb, pg_ctl) or set TESSERA_TEST_DATABASE_URL"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            None
        }
    }
}

/// A PostgreSQL cluster in a temporary directory, listening on a loopback port.
///
/// Dropping it stops the server and deletes the directory. A watchdog process does the same
/// if the test process dies first, so no cluster outlives its test run.
#[derive(Debug)]
pub struct PgCluster {
    base: PathBuf,
    port: u16,
    bin: PathBuf,
    as_postgres_user: bool,
}

impl PgCluster {
    /// Runs `initdb` and starts the server, waiting until it accepts connections.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin_dir()
            .ok_or("initdb and pg_ctl not found on PATH or in /usr/lib/postgresql")?;
        let base = std::env::temp_dir().join(format!(
            "tessera-pg-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
        // PostgreSQL refuses to run as root: run it as the `postgres` user when we are root.
        let as_postgres_user = is_root();
        let cluster = PgCluster {
            base,
            port: free_port()?,
            bin,
            as_postgres_user,
        };
        spawn_watchdog(&cluster);
        if as_postgres_user {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.base))?;
        }
        cluster.pg(
            "initdb",
            &[
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ],
            Some(&cluster.data_dir()),
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast shutdown), keeping its data: for database-outage tests.
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"])
    }

    /// Starts the server again on the same port and data.
    pub fn start_server(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.base.display()
        );
        let log = self.base.join("server.log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            "-l",
            &log.to_string_lossy(),
        ])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if run_psql(&self.url("postgres"), "SELECT 1").is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "server did not accept connections; see {}",
            log.display()
        ))
    }

    fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-D"];
        let data = self.data_dir();
        let data = data.to_string_lossy();
        all.push(&data);
        all.extend_from_slice(args);
        self.pg("pg_ctl", &all, None)
    }

    fn pg(&self, tool: &str, args: &[&str], last: Option<&Path>) -> Result<(), String> {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args);
        if let Some(p) = last {
            cmd.arg(p);
        }
        // Run from a directory the postgres user may read.
        cmd.current_dir(&self.base);
        run(&mut cmd)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn run_psql(url: &str, sql: &str) -> Result<(), String> {
    run(Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .stdout(Stdio::null()))
}

/// Same URL, another database path.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        PG_BIN_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A detached shell that waits for this process to exit, then stops the cluster and removes
/// its directory: clean-up even when a test process is killed.
fn spawn_watchdog(c: &PgCluster) {
    let stop = if c.as_postgres_user {
        format!("runuser -u postgres -- {}", c.bin.join("pg_ctl").display())
    } else {
        c.bin.join("pg_ctl").display().to_string()
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {stop} -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{base}'",
        pid = std::process::id(),
        data = c.data_dir().display(),
        base = c.base.display(),
    );
    let _ = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_in_a_url() {
        assert_eq!(
            replace_database("postgres://u:p@h:5432/db?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h", "t1"), "postgres://h/t1");
    }

    #[test]
    fn a_cluster_starts_answers_restarts_and_cleans_up() {
        let Some(pg) = postgres() else { return };
        let url = pg.fresh_database("testkit").unwrap();
        run_psql(&url, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)").unwrap();
        if let Postgres::Started(cluster) = &pg {
            cluster.stop().unwrap();
            assert!(
                run_psql(&url, "SELECT 1").is_err(),
                "stopped server still answers"
            );
            cluster.start_server().unwrap();
            // Data survives a restart.
            run_psql(&url, "SELECT x FROM t WHERE x = 1").unwrap();
            let base = cluster.base.clone();
            drop(pg);
            assert!(!base.exists(), "cluster directory left behind");
        }
    }
}
