//! Running one attempt: `sh -c COMMAND` in its own process group, stdout and
//! stderr merged into one pipe (so the log keeps their interleaving), the
//! output written to a bounded log file, a timeout that kills the whole
//! group.
//!
//! One thread runs an attempt: it `poll`s the pipe and an [`ExitWatch`] of
//! the child together, so it wakes for output, for the child's exit and for
//! deadlines, never on a timer. The exit watch is a pidfd on Linux (no
//! helper thread) and a thread waiting for the child elsewhere (see
//! [`crate::sys::procwait`]); where neither works the attempt falls back
//! to checking the child every 10 ms.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, Signal, kill_process_group};

use crate::logs::BoundedLog;
use crate::sys::contain::{self, Cage};
use crate::sys::procwait::ExitWatch;
use crate::sys::spawn::{self as start, Process, Shell};

/// The exit code recorded for a timeout, as `timeout(1)` reports it.
pub const EXIT_TIMEOUT: i32 = 124;
/// The exit code recorded for a command that could not be started.
pub const EXIT_CANNOT_START: i32 = 127;
/// How long a timed-out or stopped job gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How often a running attempt looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// Why an attempt was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StopReason {
    None = 0,
    /// `queuectl cancel`: the job ends cancelled.
    Cancel = 1,
    /// A forced shutdown: the job goes back to the queue, not counted.
    Interrupt = 2,
    /// The worker was declared dead and the job rescued by another: its
    /// end here is recorded nowhere.
    Rescued = 3,
}

/// What the supervisor shares with the thread running an attempt, to stop
/// it from outside.
#[derive(Debug, Default)]
pub struct Control {
    /// The running job's process group, 0 when none runs.
    pgid: AtomicI32,
    stop: AtomicU8,
    /// Where the slot's jobs run (see [`crate::sys::contain`]).
    cage: OnceLock<Cage>,
}

impl Control {
    /// Sets where this slot's jobs run; once, before the first job.
    pub fn set_cage(&self, cage: Cage) {
        let _ = self.cage.set(cage);
    }

    fn cage(&self) -> &Cage {
        self.cage.get().unwrap_or(&Cage::Group)
    }

    /// Stops the running attempt, if any: SIGTERM to its processes now;
    /// the attempt's own loop sends SIGKILL after [`KILL_GRACE`].
    pub fn stop(&self, reason: StopReason) {
        self.stop.store(reason as u8, Ordering::SeqCst);
        self.signal(self.pgid.load(Ordering::SeqCst), Signal::TERM);
    }

    /// Sends SIGKILL to the running attempt's processes, if any.
    pub fn kill(&self) {
        self.signal(self.pgid.load(Ordering::SeqCst), Signal::KILL);
    }

    /// `signal` to the job's process group and, where the slot has one,
    /// to everything in its cgroup.
    fn signal(&self, pgid: i32, signal: Signal) {
        if pgid != 0 {
            signal_group(pgid, signal);
            self.cage().signal(signal);
        }
    }

    fn reason(&self) -> StopReason {
        match self.stop.load(Ordering::SeqCst) {
            1 => StopReason::Cancel,
            2 => StopReason::Interrupt,
            3 => StopReason::Rescued,
            _ => StopReason::None,
        }
    }
}

fn signal_group(pgid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pgid) {
        // ESRCH (already gone) is the common, harmless case.
        let _ = kill_process_group(pid, signal);
    }
}

/// What to run.
#[derive(Debug)]
pub struct Spec<'a> {
    /// The job's id: what it leaves behind is found by it.
    pub id: &'a str,
    pub command: &'a str,
    /// Extra environment, already resolved.
    pub env: &'a [(String, String)],
    pub cwd: Option<&'a Path>,
    pub timeout: Option<Duration>,
    /// Where the output goes; created on the first byte.
    pub log_path: PathBuf,
    /// The log keeps at most this many bytes: the tail.
    pub log_max_bytes: u64,
}

/// How an attempt ended.
#[derive(Debug)]
pub struct Exit {
    /// The exit code; 128 + n for death by signal n, 124 for a timeout, 127
    /// for a command that could not start.
    pub code: i32,
    pub timed_out: bool,
    /// Why the command could not start, or why its output was not kept.
    pub error: Option<String>,
    /// Bytes of output produced (the log may keep fewer).
    pub output_bytes: u64,
    /// Bytes of output the log does not keep (the log says so first).
    pub output_dropped: u64,
    pub stopped: StopReason,
    pub duration: Duration,
}

/// How an attempt watches its child's exit: [`ExitWatch::new`], except in
/// tests of the other ways.
pub(crate) type WatchExit = fn(Pid) -> io::Result<ExitWatch>;

/// The size of the buffer an attempt reads its output with (see [`run`]).
pub const READ_BUFFER: usize = 64 * 1024;

/// Runs one attempt to its end, reading its output through `buf` (the
/// slot's, reused by every attempt: a fresh zeroed buffer per job cost
/// more than the rest of the attempt's bookkeeping).
pub fn run(spec: &Spec<'_>, control: &Control, buf: &mut [u8]) -> Exit {
    run_with(spec, control, ExitWatch::new, buf, None)
}

/// How often, at most, [`run_live`] shows the output so far.
pub const LIVE_EVERY: Duration = Duration::from_secs(1);

/// [`run`], calling `live` with the number of bytes produced so far at
/// most every [`LIVE_EVERY`] while the job runs and writes (the log file
/// then holds their tail), on the slot's own thread.
pub fn run_live(
    spec: &Spec<'_>,
    control: &Control,
    buf: &mut [u8],
    live: &mut dyn FnMut(u64),
) -> Exit {
    run_with(spec, control, ExitWatch::new, buf, Some(live))
}

/// [`run`], watching the child's exit with `watch_exit` (without a watch:
/// every 10 ms).
pub(crate) fn run_with(
    spec: &Spec<'_>,
    control: &Control,
    watch_exit: WatchExit,
    buf: &mut [u8],
    live: Option<&mut dyn FnMut(u64)>,
) -> Exit {
    let started = Instant::now();
    control.stop.store(StopReason::None as u8, Ordering::SeqCst);
    let cannot_start = |error: String| Exit {
        code: EXIT_CANNOT_START,
        timed_out: false,
        error: Some(error),
        output_bytes: 0,
        output_dropped: 0,
        stopped: StopReason::None,
        duration: started.elapsed(),
    };
    let spawned = {
        let _own = contain::own_child();
        spawn(spec, control.cage()).inspect(|(_, _, child)| contain::leader_started(child.id()))
    };
    // The pipe's write end stays open here until the child is reaped: the
    // pipe never reports its end, so `watch` wakes for output and for the
    // exit, not also for the end of output a few microseconds before the
    // exit. That wake-up preempted the exiting child on its CPU and put
    // the slot back to sleep: one more context switch per job.
    let (reader, _writer, child) = match spawned {
        Ok(pair) => pair,
        Err(error) => return cannot_start(error),
    };
    let leader = child.id();
    let pgid = i32::try_from(leader).unwrap_or(0);
    control.pgid.store(pgid, Ordering::SeqCst);
    if control.reason() != StopReason::None {
        control.signal(pgid, Signal::TERM);
    }
    let mut log = BoundedLog::new(spec.log_path.clone(), spec.log_max_bytes);
    let waited = watch(
        child,
        reader,
        watch_exit,
        spec.timeout,
        control,
        Pump {
            log: &mut log,
            buf,
            live,
        },
    );
    // Whatever the job left behind goes with it: its group, and what left
    // the group (its cgroup, or the orphans this process adopted).
    signal_group(pgid, Signal::KILL);
    control.cage().clear(spec.id);
    contain::leader_done(leader);
    control.pgid.store(0, Ordering::SeqCst);
    let log_error = log.finish();
    match waited {
        Ok((status, timed_out)) => {
            let code = if timed_out {
                EXIT_TIMEOUT
            } else {
                status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(EXIT_CANNOT_START)
            };
            Exit {
                code,
                timed_out,
                error: log_error,
                output_bytes: log.total(),
                output_dropped: log.dropped(),
                stopped: control.reason(),
                duration: started.elapsed(),
            }
        }
        Err(e) => cannot_start(format!("lost track of the job's process: {e}")),
    }
}

/// The shell jobs run in: `sh` as found on the worker's `PATH` when it
/// started, by its full path, so a spawn does not try each directory of
/// `PATH` in turn (each failed `execve` on the way costs as much as a
/// small job's own bookkeeping). Without one on `PATH`, plain `sh`.
fn shell() -> &'static Path {
    static SHELL: OnceLock<PathBuf> = OnceLock::new();
    SHELL.get_or_init(|| {
        std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .filter(|dir| dir.is_absolute())
                    .map(|dir| dir.join("sh"))
                    .find(|sh| crate::sys::files::is_executable(sh))
            })
            .unwrap_or_else(|| PathBuf::from("sh"))
    })
}

fn spawn(
    spec: &Spec<'_>,
    cage: &Cage,
) -> Result<(io::PipeReader, io::PipeWriter, Process), String> {
    let (reader, writer) = io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let script = match cage.prefix() {
        Some(prefix) => std::borrow::Cow::Owned(format!("{prefix}{}", spec.command)),
        None => std::borrow::Cow::Borrowed(spec.command),
    };
    let child = start::start(&Shell {
        shell: shell(),
        script: &script,
        env: spec.env,
        cwd: spec.cwd,
        out: writer.as_fd(),
    })
    .map_err(|e| match spec.cwd {
        Some(cwd) if !cwd.is_dir() => format!(
            "cannot start the job: working directory `{}` does not exist",
            cwd.display()
        ),
        _ => format!("cannot start `sh`: {e}"),
    })?;
    Ok((reader, writer, child))
}

/// Copies output to the log until the child exits, enforcing the timeout.
/// Returns the exit status and whether the timeout fired.
fn watch(
    mut child: Process,
    mut reader: io::PipeReader,
    watch_exit: WatchExit,
    timeout: Option<Duration>,
    control: &Control,
    pump: Pump<'_, '_>,
) -> io::Result<(std::process::ExitStatus, bool)> {
    let Pump { log, buf, mut live } = pump;
    let mut shown = (0u64, Instant::now());
    let pid = child.pid();
    let exit_watch = watch_exit(pid).ok();
    let started = Instant::now();
    let deadline = timeout.map(|t| started + t);
    let mut kill_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut pipe_open = true;
    let mut stop_seen = StopReason::None;
    loop {
        let now = Instant::now();
        if !timed_out && deadline.is_some_and(|d| now >= d) {
            timed_out = true;
            control.signal(pid.as_raw_nonzero().get(), Signal::TERM);
            kill_at = Some(now + KILL_GRACE);
        }
        let reason = control.reason();
        if reason != StopReason::None && stop_seen == StopReason::None {
            stop_seen = reason;
            kill_at.get_or_insert(now + KILL_GRACE);
        }
        if kill_at.is_some_and(|k| now >= k) {
            control.signal(pid.as_raw_nonzero().get(), Signal::KILL);
            kill_at = None;
        }
        // Wake for the next deadline, and at least every 250 ms to see a
        // stop request; without an exit watch, look at the child every 10 ms.
        let tick = if exit_watch.is_some() {
            STOP_CHECK
        } else {
            Duration::from_millis(10)
        };
        let wait_for = [deadline.filter(|_| !timed_out), kill_at]
            .into_iter()
            .flatten()
            .map(|t| t.saturating_duration_since(now))
            .fold(tick, Duration::min);
        let timespec = Timespec {
            tv_sec: i64::try_from(wait_for.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(wait_for.subsec_nanos()),
        };
        let mut fds = Vec::with_capacity(2);
        if pipe_open {
            fds.push(PollFd::new(&reader, PollFlags::IN));
        }
        if let Some(exit) = &exit_watch {
            fds.push(PollFd::new(exit, PollFlags::IN));
        }
        match poll(&mut fds, Some(&timespec)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let pipe_ready = pipe_open && !fds[0].revents().is_empty();
        drop(fds);
        if pipe_ready {
            match reader.read(buf) {
                Ok(0) => pipe_open = false,
                Ok(n) => log.write(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => pipe_open = false,
            }
        }
        if let Some(status) = child.try_wait()? {
            if pipe_open {
                drain_available(&mut reader, buf, log);
            }
            return Ok((status, timed_out));
        }
        if let Some(live) = live.as_mut()
            && log.total() > shown.0
            && shown.1.elapsed() >= LIVE_EVERY
        {
            shown = (log.total(), Instant::now());
            live(shown.0);
        }
    }
}

/// Where an attempt's output goes: read through `buf` into `log`, shown
/// to `live` as it goes.
struct Pump<'a, 'f> {
    log: &'a mut BoundedLog,
    buf: &'a mut [u8],
    live: Option<&'a mut (dyn FnMut(u64) + 'f)>,
}

/// After the child exited, reads what is already in the pipe without
/// waiting for writers it may have left behind (they are killed next).
fn drain_available(reader: &mut io::PipeReader, buf: &mut [u8], log: &mut BoundedLog) {
    loop {
        let fd = reader.as_fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&zero)) {
            Ok(n) if n > 0 && fds[0].revents().contains(PollFlags::IN) => {}
            _ => return,
        }
        match reader.read(buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => log.write(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(command: &'a str, dir: &Path, timeout: Option<Duration>) -> Spec<'a> {
        Spec {
            id: "test",
            command,
            env: &[],
            cwd: None,
            timeout,
            log_path: dir.join("out.log"),
            log_max_bytes: 1 << 20,
        }
    }

    #[test]
    fn exit_codes_and_output() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let control = Control::default();
        let buf = &mut [0u8; 16];
        let exit = run(
            &spec("echo out; echo err >&2; exit 3", dir.path(), None),
            &control,
            buf,
        );
        assert_eq!((exit.code, exit.timed_out), (3, false));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.log"))?,
            "out\nerr\n"
        );
        let exit = run(&spec("kill -9 $$", dir.path(), None), &control, buf);
        assert_eq!(exit.code, 137);
        Ok(())
    }

    #[test]
    fn timeout_kills_the_group() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let control = Control::default();
        let started = Instant::now();
        let exit = run(
            &spec(
                "sleep 30 & wait",
                dir.path(),
                Some(Duration::from_millis(200)),
            ),
            &control,
            &mut [0u8; READ_BUFFER],
        );
        assert_eq!((exit.code, exit.timed_out), (EXIT_TIMEOUT, true));
        assert!(started.elapsed() < Duration::from_secs(10));
        Ok(())
    }

    #[test]
    fn every_way_of_watching_the_exit_runs_a_job() -> io::Result<()> {
        let ways: [(&str, WatchExit); 3] = [
            ("best", ExitWatch::new),
            ("thread", ExitWatch::portable),
            ("polling", |_: Pid| Err(io::Error::other("no exit watch"))),
        ];
        for (way, watch_exit) in ways {
            let dir = tempfile::tempdir()?;
            let control = Control::default();
            let started = Instant::now();
            let buf = &mut vec![0u8; READ_BUFFER];
            let exit = run_with(
                &spec("echo out; sleep 0.1; exit 3", dir.path(), None),
                &control,
                watch_exit,
                buf,
                None,
            );
            assert_eq!((exit.code, exit.timed_out), (3, false), "{way}");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("out.log"))?,
                "out\n"
            );
            let exit = run_with(
                &spec(
                    "sleep 30 & wait",
                    dir.path(),
                    Some(Duration::from_millis(200)),
                ),
                &control,
                watch_exit,
                buf,
                None,
            );
            assert_eq!((exit.code, exit.timed_out), (EXIT_TIMEOUT, true), "{way}");
            assert!(started.elapsed() < Duration::from_secs(10), "{way}");

            // The end of the output is not the end of the job: one that
            // closes its output lives on until it exits.
            let closed = Instant::now();
            let exit = run_with(
                &spec(
                    "echo before; exec >&- 2>&-; sleep 0.3; exit 4",
                    dir.path(),
                    None,
                ),
                &control,
                watch_exit,
                buf,
                None,
            );
            assert_eq!((exit.code, exit.timed_out), (4, false), "{way}");
            assert!(closed.elapsed() >= Duration::from_millis(300), "{way}");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("out.log"))?,
                "before\n",
                "{way}"
            );
            // Nor is the exit the end of the output: what a child left
            // behind still writes is not waited for.
            let left = Instant::now();
            let exit = run_with(
                &spec("(sleep 20; echo late) & echo now", dir.path(), None),
                &control,
                watch_exit,
                buf,
                None,
            );
            assert_eq!((exit.code, exit.timed_out), (0, false), "{way}");
            assert!(left.elapsed() < Duration::from_secs(10), "{way}");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("out.log"))?,
                "now\n",
                "{way}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_missing_directory_cannot_start() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("nope");
        let mut s = spec("true", dir.path(), None);
        s.cwd = Some(&missing);
        let exit = run(&s, &Control::default(), &mut [0u8; 64]);
        assert_eq!(exit.code, EXIT_CANNOT_START);
        assert!(exit.error.unwrap_or_default().contains("does not exist"));
        Ok(())
    }
}
