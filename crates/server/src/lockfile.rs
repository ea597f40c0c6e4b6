//! The data directory's lock: `serve` on SQLite holds an exclusive `flock` on
//! `DIR/tessera.lock` while it runs, so a second server on the same directory stops at
//! start-up instead of sharing the database (operations.md: one process per SQLite
//! directory). The kernel releases the lock when the process exits, however it exits
//! (`kill -9` included), so a stale lock file never blocks a restart. Operator commands do
//! not take it: they may run beside the server.

use std::fs::File;
use std::path::Path;

use crate::Error;

/// File name of the lock inside the data directory.
pub(crate) const LOCK_FILE: &str = "tessera.lock";

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` without waiting; [`Error::Config`] naming the directory
    /// (and the PID written by the holder) when another process holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(LOCK_FILE);
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))?;
        if !try_lock(&file)? {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .map_or(String::new(), |pid| format!(" (pid {pid})"));
            return Err(Error::Config(format!(
                "another tessera server{holder} is running on the data directory {}: it holds \
                 {}; stop it first or give this one another --data-dir (several servers share \
                 one database only on PostgreSQL, see docs/operations.md)",
                dir.display(),
                path.display()
            )));
        }
        write_pid(&file);
        Ok(DirLock { _file: file })
    }
}

/// Records this process's PID in the lock file, for the message a second server prints;
/// best effort (the lock itself is what counts).
fn write_pid(file: &File) {
    use std::io::{Seek, Write};
    let mut f = file;
    let _ = f
        .set_len(0)
        .and_then(|()| f.rewind())
        .and_then(|()| writeln!(f, "{}", std::process::id()));
}

/// `flock(LOCK_EX | LOCK_NB)`: true when taken, false when another open file holds it.
#[cfg(target_os = "linux")]
fn try_lock(file: &File) -> Result<bool, Error> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(Error::Io(format!("cannot lock the data directory: {e}"))),
    }
}

/// Elsewhere the lock is not taken (Tessera's supported platform is Linux).
#[cfg(not(target_os = "linux"))]
fn try_lock(_: &File) -> Result<bool, Error> {
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
}
