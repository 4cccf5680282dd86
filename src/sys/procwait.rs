//! Knowing when a child process exits, as a descriptor to `poll`: the seam
//! between [`crate::exec`], which polls a job's output pipe and its exit
//! together in one thread, and the operating system.
//!
//! An [`ExitWatch`] becomes readable when its child has exited. It never
//! reaps the child: the child stays a zombie until its owner collects the
//! status ([`crate::sys::spawn::Process::try_wait`]), so the exit code
//! and the moment the pid may be reused remain the owner's.
//!
//! - **pidfd** (Linux): `pidfd_open` gives a descriptor the kernel makes
//!   readable at the exit; no helper thread.
//! - **thread** (every Unix; [`ExitWatch::portable`] forces it): a thread
//!   blocks in `waitid(P_PID, pid, WEXITED | WNOWAIT)`, which returns at
//!   the exit without reaping, then writes a byte into a pipe whose read
//!   end is the descriptor. It is compiled and tested on Linux too (and
//!   used there where pidfds are not available: kernels before 5.3,
//!   seccomp filters).
//!
//! Where neither works the caller has no descriptor and must look at the
//! child on a timer.

use std::io::{self, PipeReader, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use rustix::io::Errno;
use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};

/// A descriptor that becomes readable when a child process has exited.
#[derive(Debug)]
pub struct ExitWatch {
    source: Source,
}

#[derive(Debug)]
enum Source {
    #[cfg(target_os = "linux")]
    Pidfd(std::os::fd::OwnedFd),
    /// The read end of the pipe the waiting thread writes to. The thread
    /// holds it too, until it has written, so the write never meets a
    /// closed pipe (no `SIGPIPE`, whenever this watch is dropped).
    Thread(Arc<PipeReader>),
}

impl ExitWatch {
    /// Watches child `pid` with the best mechanism available: a pidfd on
    /// Linux, else a waiting thread. Fails only where neither works.
    pub fn new(pid: Pid) -> io::Result<ExitWatch> {
        #[cfg(target_os = "linux")]
        {
            use rustix::process::{PidfdFlags, pidfd_open};
            if let Ok(fd) = pidfd_open(pid, PidfdFlags::empty()) {
                return Ok(ExitWatch {
                    source: Source::Pidfd(fd),
                });
            }
        }
        ExitWatch::portable(pid)
    }

    /// Watches child `pid` with a waiting thread: what systems without pidfds
    /// get, and what tests use to run that path on Linux. Fails where the
    /// system cannot wait without reaping, or `child` was already reaped.
    pub fn portable(pid: Pid) -> io::Result<ExitWatch> {
        // Try the call once without blocking: if it fails now it would fail
        // in the thread, whose pipe would then say "exited" at once and
        // keep the caller's poll spinning until the real exit.
        loop {
            match waitid(WaitId::Pid(pid), EXITED | WaitIdOptions::NOHANG) {
                Ok(_) => break,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let (reader, writer) = io::pipe()?;
        let reader = Arc::new(reader);
        let keep_open = Arc::clone(&reader);
        std::thread::Builder::new()
            .name(format!("exit-wait-{}", pid.as_raw_pid()))
            .spawn(move || {
                wait_without_reaping(pid);
                // A full pipe or any other failure: the watch cannot say
                // more than it already does.
                let _ = (&writer).write_all(&[1]);
                drop(keep_open);
            })?;
        Ok(ExitWatch {
            source: Source::Thread(reader),
        })
    }

    /// The mechanism in use: `pidfd` or `thread`.
    pub fn backend(&self) -> &'static str {
        match self.source {
            #[cfg(target_os = "linux")]
            Source::Pidfd(_) => "pidfd",
            Source::Thread(_) => "thread",
        }
    }
}

impl AsFd for ExitWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            #[cfg(target_os = "linux")]
            Source::Pidfd(fd) => fd.as_fd(),
            Source::Thread(reader) => reader.as_fd(),
        }
    }
}

/// Exited children, left waitable (`WEXITED | WNOWAIT`).
const EXITED: WaitIdOptions = WaitIdOptions::EXITED.union(WaitIdOptions::NOWAIT);

/// Blocks until child `pid` has exited, leaving it to be reaped. Returns
/// at once if it is no child of this process any more: its owner reaped
/// it first, which is as good as an exit.
///
/// Should the owner reap the child before this thread first calls
/// `waitid`, and a new child of this process take over the pid in between,
/// this waits for that one instead: a thread that lingers, never a status
/// taken from its owner (`WNOWAIT`).
fn wait_without_reaping(pid: Pid) {
    loop {
        match waitid(WaitId::Pid(pid), EXITED) {
            Err(Errno::INTR) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // Each test holds this while its children live, so that the subreaper
    // of tests running beside it does not reap them.
    use crate::sys::contain::own_child;
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// Whether `watch` becomes readable within `timeout`.
    fn readable(watch: &ExitWatch, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let spec = Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(watch, PollFlags::IN)];
            match poll(&mut fds, Some(&spec)) {
                Ok(n) if n > 0 => return fds[0].revents().contains(PollFlags::IN),
                Err(Errno::INTR) if !left.is_zero() => {}
                _ => return false,
            }
        }
    }

    /// Readable after the exit, not before; the child still reaped by
    /// its owner with its own exit code.
    fn exit_is_seen(watch: fn(Pid) -> io::Result<ExitWatch>, backend: &str) -> io::Result<()> {
        let _own = own_child();
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.5; exit 7"])
            .spawn()?;
        let watch = watch(Pid::from_child(&child))?;
        assert_eq!(watch.backend(), backend);
        assert!(
            !readable(&watch, Duration::ZERO),
            "readable before the exit"
        );
        let started = Instant::now();
        assert!(readable(&watch, Duration::from_secs(5)), "exit not seen");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(child.wait()?.code(), Some(7));
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pidfd_sees_the_exit() -> io::Result<()> {
        exit_is_seen(ExitWatch::new, "pidfd")
    }

    #[test]
    fn a_waiting_thread_sees_the_exit() -> io::Result<()> {
        exit_is_seen(ExitWatch::portable, "thread")
    }

    #[test]
    fn a_child_that_already_exited_is_seen_at_once() -> io::Result<()> {
        let _own = own_child();
        for watch in [ExitWatch::new, ExitWatch::portable] {
            let mut child = Command::new("sh").args(["-c", "exit 7"]).spawn()?;
            // Zombie by now or soon: either way the watch must fire.
            let watch = watch(Pid::from_child(&child))?;
            assert!(readable(&watch, Duration::from_secs(5)));
            assert_eq!(child.wait()?.code(), Some(7));
        }
        Ok(())
    }

    #[test]
    fn a_reaped_child_cannot_be_watched() -> io::Result<()> {
        let _own = own_child();
        let mut child = Command::new("true").spawn()?;
        child.wait()?;
        assert!(ExitWatch::portable(Pid::from_child(&child)).is_err());
        Ok(())
    }

    #[test]
    fn a_child_reaped_first_still_ends_the_wait() -> io::Result<()> {
        let _own = own_child();
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn()?;
        let watch = ExitWatch::portable(Pid::from_child(&child))?;
        assert_eq!(child.wait()?.code(), Some(3));
        assert!(readable(&watch, Duration::from_secs(5)));
        Ok(())
    }
}
