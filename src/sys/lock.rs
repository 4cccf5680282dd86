//! An exclusive lock on a file, held by one process at a time: the
//! kernel's (flock), so it goes away with the process however it dies,
//! and a crash never leaves a stale holder. The SQLite driver makes the
//! queue's owner lock of it (`queue.lock` beside `queue.db`); the holder
//! writes its pid in the file so the others can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// A lock on a file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    /// The pid of the owner when it is another process.
    pub other: Option<u32>,
}

impl FileLock {
    /// Takes the lock on `path` (creating the file, 0600), or learns who
    /// holds it.
    pub fn acquire(path: &Path) -> Result<FileLock> {
        let path = path.to_path_buf();
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
                Ok(FileLock {
                    _file: file,
                    other: None,
                })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Ok(FileLock {
                    _file: file,
                    other: Some(text.trim().parse().unwrap_or(0)),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
        }
    }

    /// Whether this process holds it.
    pub fn held(&self) -> bool {
        self.other.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_taker_learns_the_owner() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("create", "tempdir", e))?;
        let path = dir.path().join("queue.lock");
        let first = FileLock::acquire(&path)?;
        assert!(first.held());
        let second = FileLock::acquire(&path)?;
        assert_eq!(second.other, Some(std::process::id()));
        drop(first);
        // Another test's fork may hold a copy of the descriptor until its
        // exec closes it (close-on-exec): the release shows within moments.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if FileLock::acquire(&path)?.held() {
                return Ok(());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "released with its holder"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
