//! The side channels of a SQLite queue: its change feed and its owner
//! lock.
//!
//! Every commit in WAL mode writes to the `-wal` file beside the
//! database, so a watch on the database's directory fires for every
//! commit by any process: `queuectl enqueue`, another worker, even the
//! `sqlite3` shell. Events are only a hint; `PRAGMA data_version` on a
//! connection of the feed's own confirms a commit. A commit writes its
//! WAL frames first and becomes visible only after its fsync and an
//! update of the shared-memory index (which raises no event), so a write
//! seen before its commit is visible is looked at again for a few
//! milliseconds ([`RECHECK`] × [`RECHECKS`]). The watch is
//! [`DirWatch`]: inotify on Linux, the `notify` crate's watcher
//! elsewhere, and where neither can watch (network file systems) short
//! sleeps: polling, but still correct.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::SqliteDriver;
use crate::driver::{ChangeFeed, OwnerLock};
use crate::error::Result;
use crate::sys::dirwatch::DirWatch;
use crate::sys::lock::FileLock;

/// After a write with no visible commit yet: look again this often…
pub const RECHECK: Duration = Duration::from_millis(1);
/// …this many times.
pub const RECHECKS: u32 = 30;

/// Commits to a SQLite queue, by any process.
#[derive(Debug)]
pub struct SqliteFeed {
    watch: DirWatch,
    connection: SqliteDriver,
    last: i64,
    rechecks: u32,
}

impl SqliteFeed {
    pub fn new(connection: SqliteDriver) -> Result<SqliteFeed> {
        let dir = connection
            .path()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let watch = DirWatch::new(dir);
        let last = connection.data_version()?;
        Ok(SqliteFeed {
            watch,
            connection,
            last,
            rechecks: 0,
        })
    }
}

impl ChangeFeed for SqliteFeed {
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let timeout = if self.rechecks > 0 {
            self.rechecks -= 1;
            timeout.min(RECHECK)
        } else {
            timeout
        };
        let written = self.watch.wait(timeout);
        let version = self.connection.data_version()?;
        if version != self.last {
            self.last = version;
            self.rechecks = 0;
            return Ok(true);
        }
        if written {
            self.rechecks = RECHECKS;
        }
        Ok(false)
    }
}

/// The owner lock of a SQLite queue: an flock on `queue.lock` beside
/// `queue.db`.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    lock: FileLock,
    holder: Option<String>,
}

impl LockFile {
    pub fn acquire(db: &Path) -> Result<LockFile> {
        LockFile::at(db.with_extension("lock"))
    }

    fn at(path: PathBuf) -> Result<LockFile> {
        let lock = FileLock::acquire(&path)?;
        let holder = lock.other.map(|pid| format!("pid {pid}"));
        Ok(LockFile { path, lock, holder })
    }
}

impl OwnerLock for LockFile {
    fn holder(&self) -> Option<&str> {
        debug_assert_eq!(self.lock.held(), self.holder.is_none());
        self.holder.as_deref()
    }

    /// The kernel releases an flock when its holder ends, however it ends.
    fn try_take(&mut self) -> Result<bool> {
        if self.holder.is_some() {
            *self = LockFile::at(self.path.clone())?;
        }
        Ok(self.holder.is_none())
    }
}
