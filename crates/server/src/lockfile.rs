//! The data directory's lock: `serve` on SQLite holds an exclusive `flock` on the data
//! directory itself while it runs, so a second server on the same directory stops at
//! start-up instead of sharing the database (operations.md: one process per SQLite
//! directory). The lock is on the directory, not on a file in it: deleting a file (the
//! `tessera.lock` that only records the holder's PID, for the refusal message) does not
//! release it. The kernel releases the lock when the process exits, however it exits
//! (`kill -9` included), so nothing stale ever blocks a restart. Operator commands do not
//! take it: they may run beside the server. `flock` is independent of the POSIX record
//! locks SQLite takes on `tessera.db`, and is not reliable on network filesystems.

use std::fs::File;
use std::path::Path;

use crate::Error;

/// File name, inside the data directory, of the holder's PID (information only).
pub(crate) const LOCK_FILE: &str = "tessera.lock";

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct DirLock {
    _dir: File,
}

impl DirLock {
    /// Takes the lock of `dir` without waiting; [`Error::Config`] naming the directory
    /// (and the PID recorded by the holder) when another process holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, Error> {
        let handle = File::open(dir)
            .map_err(|e| Error::Io(format!("cannot open {}: {e}", dir.display())))?;
        let path = dir.join(LOCK_FILE);
        if !try_lock(&handle, dir)? {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .map_or(String::new(), |pid| format!(" (pid {pid})"));
            return Err(Error::Config(format!(
                "another tessera server{holder} is running on the data directory {}: it holds \
                 the directory's lock; stop it first or give this one another --data-dir \
                 (several servers share one database only on PostgreSQL, see \
                 docs/operations.md)",
                dir.display(),
            )));
        }
        write_pid(&path);
        Ok(DirLock { _dir: handle })
    }
}

/// Records this process's PID in `path`, for the message a second server prints; best
/// effort (the lock on the directory is what counts).
fn write_pid(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    if let Ok(mut f) = options.open(path) {
        use std::io::Write;
        let _ = writeln!(f, "{}", std::process::id());
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: true when taken, false when another open file holds it.
#[cfg(target_os = "linux")]
fn try_lock(file: &File, dir: &Path) -> Result<bool, Error> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(Error::Io(format!(
            "cannot lock the data directory {}: {e}; keep a SQLite data directory on a local \
             filesystem (not NFS)",
            dir.display()
        ))),
    }
}

/// Elsewhere the lock is not taken (Tessera's supported platform is Linux).
#[cfg(not(target_os = "linux"))]
fn try_lock(_: &File, _: &Path) -> Result<bool, Error> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        #[cfg(target_os = "linux")]
        {
            let e = DirLock::acquire(dir.path()).unwrap_err().to_string();
            assert!(e.contains("another tessera server"), "{e}");
            assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
            assert!(matches!(
                DirLock::acquire(dir.path()),
                Err(Error::Config(_))
            ));
        }
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }

    /// Review of item 12: the lock was on `tessera.lock`, so deleting that file let a
    /// second server start on the same database.
    #[cfg(target_os = "linux")]
    #[test]
    fn deleting_the_pid_file_does_not_release_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DirLock::acquire(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        let e = DirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(e.contains("another tessera server"), "{e}");
    }
}
