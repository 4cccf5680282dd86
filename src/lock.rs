//! One owner per queue: the first `queuectl run` on a database takes an
//! exclusive lock on a file beside it (`queue.lock` for `queue.db`) and
//! holds it while it runs; it applies the jobfile and follows its edits. A
//! second `run` on the same database finds the lock taken and runs as extra
//! workers. The lock is the kernel's (flock): it goes away with the
//! process, however it dies, so a crash never leaves a stale owner.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Ownership of a queue, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    /// The pid of the owner when it is another process.
    pub other: Option<u32>,
}

impl RunLock {
    /// Takes the lock of the queue at `db`, or learns who holds it.
    pub fn acquire(db: &Path) -> Result<RunLock> {
        let path = db.with_extension("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {
                let pid = std::process::id().to_string();
                let _ = file.set_len(0);
                let _ = file.rewind().and_then(|()| file.write_all(pid.as_bytes()));
                Ok(RunLock {
                    _file: file,
                    other: None,
                })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Ok(RunLock {
                    _file: file,
                    other: Some(text.trim().parse().unwrap_or(0)),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
        }
    }

    /// Whether this process owns the queue.
    pub fn owns(&self) -> bool {
        self.other.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_taker_learns_the_owner() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("create", "tempdir", e))?;
        let db = dir.path().join("queue.db");
        let first = RunLock::acquire(&db)?;
        assert!(first.owns());
        let second = RunLock::acquire(&db)?;
        assert_eq!(second.other, Some(std::process::id()));
        drop(first);
        assert!(RunLock::acquire(&db)?.owns(), "released with its owner");
        Ok(())
    }
}
