//! Knowing, without polling, that another process wrote to the database.
//!
//! Every commit in WAL mode writes to the `-wal` file beside the database,
//! so an inotify watch on the database's directory fires for every commit
//! by any process: `queuectl enqueue`, another worker, even the `sqlite3`
//! shell. The supervisor blocks on it, so an idle worker costs no CPU and
//! starts a new job within a millisecond or two. Events are only a hint:
//! the supervisor confirms with `PRAGMA data_version`. A commit writes its
//! WAL frames first and becomes visible only after its fsync and an update
//! of the shared-memory index (which raises no event), so a write seen
//! before its commit is visible is re-checked for a few milliseconds
//! ([`RECHECK`]). Where inotify is not
//! available (other systems, network file systems), [`DbWatch::wait`]
//! falls back to short sleeps, which is polling, but still correct.

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

/// Writes, new files, and a writer closing the file (a short-lived
/// `queuectl enqueue` exiting).
const WATCHED: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::MOVED_TO);

/// Without inotify, how often to look.
const FALLBACK_TICK: Duration = Duration::from_millis(5);

/// After a write with no visible commit yet: look again this often…
pub const RECHECK: Duration = Duration::from_millis(1);
/// …this many times.
pub const RECHECKS: u32 = 30;

/// A watch on the directory of a database.
#[derive(Debug)]
pub struct DbWatch {
    fd: Option<OwnedFd>,
}

impl DbWatch {
    /// Watches the directory holding `db`. Never fails: without a watch it
    /// falls back to polling.
    pub fn new(db: &Path) -> DbWatch {
        let dir = db
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)
            .ok()
            .filter(|fd| inotify::add_watch(fd, dir, WATCHED).is_ok());
        DbWatch { fd }
    }

    /// Whether events arrive (false: [`wait`](Self::wait) polls).
    pub fn is_event_driven(&self) -> bool {
        self.fd.is_some()
    }

    /// Waits until something in the directory was written, or `timeout`.
    /// Returns whether a write was seen (always false when polling).
    pub fn wait(&self, timeout: Duration) -> bool {
        let Some(fd) = &self.fd else {
            std::thread::sleep(timeout.min(FALLBACK_TICK));
            return false;
        };
        let spec = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        if matches!(poll(&mut fds, Some(&spec)), Ok(n) if n > 0) {
            drain(fd);
            return true;
        }
        false
    }
}

/// Reads every queued event; only their arrival matters.
fn drain(fd: &OwnedFd) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut reader = inotify::Reader::new(fd, &mut buf);
    while reader.next().is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_write_in_the_directory_ends_the_wait() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("queue.db");
        let watch = DbWatch::new(&db);
        assert!(watch.is_event_driven());
        let wal = dir.path().join("queue.db-wal");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(wal, b"frame")
        });
        let started = Instant::now();
        watch.wait(Duration::from_secs(30));
        assert!(started.elapsed() < Duration::from_secs(20));
        writer
            .join()
            .map_err(|_| std::io::Error::other("writer panicked"))??;
        Ok(())
    }
}
