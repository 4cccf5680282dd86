//! Waking when anything in one directory is written: the seam between
//! [`crate::wake`] (which watches the database's directory) and the
//! operating system's file events.
//!
//! Three backends, best first, chosen once by [`DirWatch::new`]:
//!
//! - **inotify** (Linux): the waiting thread blocks in `poll` on the
//!   inotify descriptor itself; no helper thread, nothing between the
//!   kernel and the wait.
//! - **notify** (every platform; [`DirWatch::portable`] forces it): the
//!   `notify` crate's recommended watcher (FSEvents on macOS, kqueue on the
//!   BSDs, inotify again on Linux) runs its own thread and raises a flag
//!   that [`DirWatch::wait`] blocks on. It is compiled and tested on Linux
//!   too, so the code other systems run is not code nobody ran.
//! - **polling**, when neither could watch the directory (too many
//!   watches, a file system without events): [`DirWatch::wait`] sleeps a
//!   few milliseconds and says nothing was seen; callers then look for
//!   themselves, which is slower but still correct.
//!
//! Events are hints: the watch is non-recursive, coalesces bursts, and
//! may wake for a write that changes nothing the caller cares about.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use notify_debouncer_full::notify::event::{AccessKind, AccessMode};
use notify_debouncer_full::notify::{self, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// Without events, how long [`DirWatch::wait`] sleeps at most.
const POLL_TICK: Duration = Duration::from_millis(5);

/// A watch on one directory (not its subdirectories).
pub struct DirWatch {
    backend: Backend,
}

enum Backend {
    #[cfg(target_os = "linux")]
    Inotify(linux::Inotify),
    Notify(Notified),
    Polling,
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatch")
            .field("backend", &self.backend())
            .finish()
    }
}

impl DirWatch {
    /// Watches `dir` with the best backend available. Never fails: without
    /// any watch, [`wait`](Self::wait) polls.
    pub fn new(dir: &Path) -> DirWatch {
        #[cfg(target_os = "linux")]
        if let Some(inotify) = linux::Inotify::new(dir) {
            return DirWatch {
                backend: Backend::Inotify(inotify),
            };
        }
        DirWatch::portable(dir)
    }

    /// Watches `dir` with the portable backend (the `notify` crate), or
    /// polls where it cannot: what systems without inotify get, and what
    /// tests use to run that path on Linux.
    pub fn portable(dir: &Path) -> DirWatch {
        let backend = match Notified::new(dir) {
            Some(notified) => Backend::Notify(notified),
            None => Backend::Polling,
        };
        DirWatch { backend }
    }

    /// No watch at all: [`wait`](Self::wait) only sleeps.
    pub fn polling() -> DirWatch {
        DirWatch {
            backend: Backend::Polling,
        }
    }

    /// Whether events arrive (false: [`wait`](Self::wait) polls).
    pub fn is_event_driven(&self) -> bool {
        !matches!(self.backend, Backend::Polling)
    }

    /// The backend in use: `inotify`, `notify` or `polling`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            #[cfg(target_os = "linux")]
            Backend::Inotify(_) => "inotify",
            Backend::Notify(_) => "notify",
            Backend::Polling => "polling",
        }
    }

    /// Waits until something in the directory was written (written to,
    /// created, renamed into place, closed after writing), or `timeout`.
    /// Returns whether a write was seen (always false when polling); the
    /// events seen so far are used up, so the next call waits for new ones.
    pub fn wait(&self, timeout: Duration) -> bool {
        match &self.backend {
            #[cfg(target_os = "linux")]
            Backend::Inotify(inotify) => inotify.wait(timeout),
            Backend::Notify(notified) => notified.wait(timeout),
            Backend::Polling => {
                std::thread::sleep(timeout.min(POLL_TICK));
                false
            }
        }
    }
}

/// The portable backend: the watcher's thread raises `seen`, [`wait`]
/// lowers it. A flag, not a queue: a busy directory and a caller that
/// rarely waits cost nothing, and one wake covers every event before it.
///
/// [`wait`]: Notified::wait
struct Notified {
    /// Stops watching when dropped.
    _watcher: RecommendedWatcher,
    seen: Arc<(Mutex<bool>, Condvar)>,
}

impl Notified {
    fn new(dir: &Path) -> Option<Notified> {
        let seen = Arc::new((Mutex::new(false), Condvar::new()));
        let raise = Arc::clone(&seen);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // An error (lost events, a rescan) may hide a write: wake.
                let wake = match event {
                    Ok(event) => is_write(&event.kind),
                    Err(_) => true,
                };
                if wake {
                    let (flag, condvar) = &*raise;
                    *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    condvar.notify_all();
                }
            })
            .ok()?;
        watcher.watch(dir, RecursiveMode::NonRecursive).ok()?;
        Some(Notified {
            _watcher: watcher,
            seen,
        })
    }

    fn wait(&self, timeout: Duration) -> bool {
        let (flag, condvar) = &*self.seen;
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (mut seen, _) = condvar
            .wait_timeout_while(guard, timeout, |seen| !*seen)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *seen)
    }
}

/// Whether an event is a write, as the inotify backend's watch flags
/// define it. Reads and opens are not (the caller reading the directory's
/// files must not wake itself), nor are removals.
fn is_write(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Remove(_) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Any | EventKind::Other => true,
    }
}

/// The inotify backend.
#[cfg(target_os = "linux")]
mod linux {
    use std::mem::MaybeUninit;
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::time::Duration;

    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

    /// Writes, new files, files renamed into place, and a writer closing
    /// its file (a short-lived `queuectl enqueue` exiting).
    const WATCHED: WatchFlags = WatchFlags::MODIFY
        .union(WatchFlags::CLOSE_WRITE)
        .union(WatchFlags::CREATE)
        .union(WatchFlags::MOVED_TO);

    /// An inotify descriptor watching one directory.
    pub(super) struct Inotify {
        fd: OwnedFd,
    }

    impl Inotify {
        pub(super) fn new(dir: &Path) -> Option<Inotify> {
            let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).ok()?;
            inotify::add_watch(&fd, dir, WATCHED).ok()?;
            Some(Inotify { fd })
        }

        pub(super) fn wait(&self, timeout: Duration) -> bool {
            let spec = Timespec {
                tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            if matches!(poll(&mut fds, Some(&spec)), Ok(n) if n > 0) {
                self.drain();
                return true;
            }
            false
        }

        /// Reads every queued event; only their arrival matters.
        fn drain(&self) {
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            let mut reader = inotify::Reader::new(&self.fd, &mut buf);
            while reader.next().is_ok() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Writes `name` in `dir` after 50 ms, from another thread; waits on
    /// `watch` for up to 30 s and returns how long that took and what
    /// `wait` said.
    fn wait_for_a_write(watch: &DirWatch, dir: &Path, name: &str) -> (Duration, bool) {
        let path = dir.join(name);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(path, b"frame")
        });
        let started = Instant::now();
        let seen = watch.wait(Duration::from_secs(30));
        let waited = started.elapsed();
        assert!(
            matches!(writer.join(), Ok(Ok(()))),
            "the writer could not write"
        );
        (waited, seen)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn inotify_sees_a_write() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let watch = DirWatch::new(dir.path());
        assert_eq!(watch.backend(), "inotify");
        assert!(watch.is_event_driven());
        let (waited, seen) = wait_for_a_write(&watch, dir.path(), "queue.db-wal");
        assert!(seen);
        assert!(waited < Duration::from_secs(20), "{waited:?}");
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn one_wait_uses_up_every_queued_event() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let watch = DirWatch::new(dir.path());
        // Directories, not files: a file's last close may come late, from
        // a process another test forked while it was open.
        std::fs::create_dir(dir.path().join("a"))?;
        std::fs::create_dir(dir.path().join("b"))?;
        std::fs::rename(dir.path().join("b"), dir.path().join("c"))?;
        assert!(watch.wait(Duration::ZERO));
        assert!(!watch.wait(Duration::from_millis(20)));
        Ok(())
    }

    #[test]
    fn the_portable_watch_sees_a_write() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let watch = DirWatch::portable(dir.path());
        assert_eq!(watch.backend(), "notify");
        assert!(watch.is_event_driven());
        let (waited, seen) = wait_for_a_write(&watch, dir.path(), "queue.db-wal");
        assert!(seen);
        assert!(waited < Duration::from_secs(20), "{waited:?}");
        Ok(())
    }

    #[test]
    fn the_portable_watch_ignores_reads() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("queue.db");
        std::fs::write(&file, b"page")?;
        let watch = DirWatch::portable(dir.path());
        // Let the write settle: its last close may come late, from a
        // process another test forked while the file was open.
        for _ in 0..50 {
            if !watch.wait(Duration::from_millis(100)) {
                break;
            }
        }
        std::fs::read(&file)?;
        assert!(!watch.wait(Duration::from_millis(100)));
        Ok(())
    }

    #[test]
    fn without_a_watch_it_polls() {
        let watch = DirWatch::polling();
        assert_eq!(watch.backend(), "polling");
        assert!(!watch.is_event_driven());
        let started = Instant::now();
        assert!(!watch.wait(Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_directory_falls_back_to_polling() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("nope");
        assert_eq!(DirWatch::new(&missing).backend(), "polling");
        assert_eq!(DirWatch::portable(&missing).backend(), "polling");
        Ok(())
    }

    #[test]
    fn what_counts_as_a_write() {
        use notify::event::{CreateKind, DataChange, ModifyKind, RemoveKind};
        assert!(is_write(&EventKind::Create(CreateKind::File)));
        assert!(is_write(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(is_write(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!is_write(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_write(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_write(&EventKind::Remove(RemoveKind::File)));
    }
}
