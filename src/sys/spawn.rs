//! Starting a job's shell: `posix_spawn` with an environment built once
//! per process, and the child as a process id this module waits for.
//!
//! `std::process::Command` copies the whole environment into a map and
//! builds a new `envp` on every spawn as soon as one variable is set, and
//! every job sets three (`QUEUECTL_JOB_ID`, …): that copy cost more than
//! the rest of a job's bookkeeping outside the database. Here the
//! worker's environment is turned into `KEY=VALUE` strings once (it never
//! changes: queuectl does not set variables in its own process), and a
//! spawn only adds the job's own, which replace the worker's of the same
//! name.
//!
//! The child is what `std` would make of the same `Command`: its own
//! process group, stdin from `/dev/null`, stdout and stderr to the given
//! pipe, SIGPIPE back to its default (Rust ignores it), no signal
//! blocked. Where this way cannot say the same (a working directory
//! other than the worker's, a shell not found by its full path, a NUL
//! byte, a platform without `posix_spawn`), the job starts through
//! `std`, and is waited for the same way.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions, waitpid};

/// What to start: `shell -c script`, with `env` added to the worker's
/// environment, in `cwd` (the worker's own when `None`), output to `out`.
#[derive(Debug)]
pub struct Shell<'a> {
    pub shell: &'a Path,
    pub script: &'a str,
    pub env: &'a [(String, String)],
    pub cwd: Option<&'a Path>,
    pub out: BorrowedFd<'a>,
}

/// A started job shell, waited for by its process id.
#[derive(Debug)]
pub struct Process {
    pid: Pid,
    status: Option<ExitStatus>,
}

impl Process {
    pub fn id(&self) -> u32 {
        self.pid.as_raw_pid().unsigned_abs()
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The exit status if the process has exited (reaped then, once).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        loop {
            match waitpid(Some(self.pid), WaitOptions::NOHANG) {
                Ok(Some((_, status))) => {
                    let status = ExitStatus::from_raw(status.as_raw());
                    self.status = Some(status);
                    return Ok(Some(status));
                }
                Ok(None) => return Ok(None),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Starts `shell`; the error says why it could not.
pub fn start(shell: &Shell<'_>) -> io::Result<Process> {
    #[cfg(target_os = "linux")]
    if let Some(started) = fast::start(shell) {
        return started;
    }
    through_std(shell)
}

/// The same start through `std::process::Command`.
pub fn through_std(shell: &Shell<'_>) -> io::Result<Process> {
    let out = shell.out.try_clone_to_owned()?;
    let err = out.try_clone()?;
    let mut command = Command::new(shell.shell);
    command
        .arg("-c")
        .arg(shell.script)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .envs(shell.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = shell.cwd {
        command.current_dir(cwd);
    }
    let child = command.spawn()?;
    let pid = Pid::from_child(&child);
    // `child` holds no handle of ours (its stdio were given, not piped);
    // dropping it neither waits for nor signals the process.
    drop(child);
    Ok(Process { pid, status: None })
}

/// `KEY=VALUE` for `envp`, or `None` where `std` would refuse the pair.
fn entry(key: &OsStr, value: &OsStr) -> Option<CString> {
    let key = key.as_bytes();
    if key.is_empty() || key.contains(&b'=') {
        return None;
    }
    let mut bytes = Vec::with_capacity(key.len() + 1 + value.len());
    bytes.extend_from_slice(key);
    bytes.push(b'=');
    bytes.extend_from_slice(value.as_bytes());
    CString::new(bytes).ok()
}

/// The key of an `envp` entry.
fn key_of(entry: &CString) -> &[u8] {
    let bytes = entry.as_bytes();
    bytes
        .iter()
        .position(|&b| b == b'=')
        .map_or(bytes, |at| &bytes[..at])
}

/// The job's environment: the worker's, where the job's own variables
/// replace those of the same name (the last of a name wins, as with
/// `Command::envs`). `None` where a pair cannot be passed as is.
fn envp<'b>(base: &'b [CString], env: &[(String, String)]) -> Option<Vec<EnvEntry<'b>>> {
    let mut own: Vec<CString> = Vec::with_capacity(env.len());
    for (at, (key, value)) in env.iter().enumerate() {
        if env[at + 1..].iter().any(|(later, _)| later == key) {
            continue;
        }
        own.push(entry(OsStr::new(key), OsStr::new(value))?);
    }
    let mut all: Vec<EnvEntry<'b>> = Vec::with_capacity(base.len() + own.len());
    all.extend(
        base.iter()
            .filter(|entry| !own.iter().any(|o| key_of(o) == key_of(entry)))
            .map(EnvEntry::Worker),
    );
    all.extend(own.into_iter().map(EnvEntry::Job));
    Some(all)
}

/// One `envp` entry: the worker's (built once) or the job's.
#[derive(Debug)]
enum EnvEntry<'b> {
    Worker(&'b CString),
    Job(CString),
}

impl AsRef<std::ffi::CStr> for EnvEntry<'_> {
    fn as_ref(&self) -> &std::ffi::CStr {
        match self {
            EnvEntry::Worker(entry) => entry,
            EnvEntry::Job(entry) => entry,
        }
    }
}

#[cfg(target_os = "linux")]
mod fast {
    use super::*;
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
    use nix::sys::signal::{SigSet, Signal};
    use std::sync::OnceLock;

    /// The worker's environment as `envp` entries and `/dev/null` open
    /// for the jobs' stdin, made at the first spawn.
    struct Worker {
        env: Vec<CString>,
        null: Option<std::fs::File>,
    }

    fn worker() -> &'static Worker {
        static WORKER: OnceLock<Worker> = OnceLock::new();
        WORKER.get_or_init(|| Worker {
            env: std::env::vars_os()
                .filter_map(|(key, value)| entry(&key, &value))
                .collect(),
            null: std::fs::File::open("/dev/null").ok(),
        })
    }

    /// Starts `shell` with `posix_spawn`, or `None` where it must go
    /// through `std` (see the module's documentation).
    pub(super) fn start(shell: &Shell<'_>) -> Option<io::Result<Process>> {
        let worker = worker();
        // `posix_spawn` takes a path as it is; std searches `PATH` for a
        // bare name.
        if !shell.shell.is_absolute() {
            return None;
        }
        if let Some(cwd) = shell.cwd
            && std::env::current_dir().ok().as_deref() != Some(cwd)
        {
            return None;
        }
        // dup2 onto itself would keep close-on-exec set.
        let out = shell.out.as_raw_fd();
        let null = worker.null.as_ref()?.as_raw_fd();
        if out <= 2 || null <= 2 {
            return None;
        }
        let path = CString::new(shell.shell.as_os_str().as_bytes()).ok()?;
        let args = [
            path.clone(),
            CString::from(c"-c"),
            CString::new(shell.script).ok()?,
        ];
        let envp = envp(&worker.env, shell.env)?;
        Some(spawn(&path, &args, &envp, [null, out]).map_err(io::Error::from))
    }

    /// Spawns with `stdio[0]` as stdin and `stdio[1]` as stdout and stderr.
    fn spawn(
        path: &CString,
        args: &[CString],
        envp: &[EnvEntry<'_>],
        [null, out]: [i32; 2],
    ) -> nix::Result<Process> {
        let mut actions = PosixSpawnFileActions::init()?;
        actions.add_dup2(null, 0)?;
        actions.add_dup2(out, 1)?;
        actions.add_dup2(out, 2)?;
        let mut attr = PosixSpawnAttr::init()?;
        attr.set_flags(
            PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
                | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
                | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
        )?;
        attr.set_pgroup(nix::unistd::Pid::from_raw(0))?;
        attr.set_sigmask(&SigSet::empty())?;
        let mut default = SigSet::empty();
        default.add(Signal::SIGPIPE);
        attr.set_sigdefault(&default)?;
        let pid = posix_spawn(path.as_c_str(), &actions, &attr, args, envp)?;
        let pid = Pid::from_raw(pid.as_raw()).ok_or(nix::errno::Errno::ECHILD)?;
        Ok(Process { pid, status: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> CString {
        CString::new(text).unwrap_or_default()
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn shown(envp: &[EnvEntry<'_>]) -> Vec<String> {
        envp.iter()
            .map(|e| e.as_ref().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_jobs_variables_replace_the_workers_and_the_last_of_a_name_wins() {
        let base = [c("PATH=/bin"), c("HOME=/root"), c("A=worker")];
        let env = pairs(&[("A", "first"), ("B", "b"), ("A", "last")]);
        let envp = envp(&base, &env).unwrap_or_default();
        assert_eq!(shown(&envp), ["PATH=/bin", "HOME=/root", "B=b", "A=last"]);
    }

    #[test]
    fn pairs_std_would_refuse_go_through_std() {
        let base = [c("PATH=/bin")];
        for bad in [("", "x"), ("A=B", "x"), ("A", "x\0y")] {
            assert!(
                envp(&base, &pairs(&[bad])).is_none(),
                "{bad:?} is passed as is"
            );
        }
    }

    fn run(way: fn(&Shell<'_>) -> io::Result<Process>, script: &str) -> (i32, String) {
        let (reader, writer) = io::pipe().unwrap_or_else(|e| panic!("pipe: {e}"));
        let _own = crate::sys::contain::own_child();
        let env = pairs(&[
            ("QUEUECTL_TEST_A", "from the job"),
            ("PATH", "/usr/bin:/bin"),
        ]);
        let mut process = way(&Shell {
            shell: Path::new("/bin/sh"),
            script,
            env: &env,
            cwd: None,
            out: std::os::fd::AsFd::as_fd(&writer),
        })
        .unwrap_or_else(|e| panic!("start: {e}"));
        drop(writer);
        let output = io::read_to_string(reader).unwrap_or_default();
        let status = loop {
            if let Some(status) = process.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
                break status;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        (status.code().unwrap_or(-1), output)
    }

    /// What std makes of a job's shell, the fast way too: the job's
    /// variables, output and errors in the pipe, its own process group
    /// (field 5 of `/proc/PID/stat`), an empty stdin, SIGPIPE at its
    /// default (a shell killed by it ends 141, not 0).
    #[cfg(target_os = "linux")]
    #[test]
    fn both_ways_start_the_same_child() {
        let script = "echo \"$QUEUECTL_TEST_A|$PATH\"; echo err >&2; \
             set -- $(cat /proc/$$/stat); [ \"$5\" = \"$$\" ] && echo own-group; \
             read line; echo \"stdin:$?\"; sh -c 'kill -PIPE $$'; echo \"pipe:$?\"; exit 3";
        for way in [start, through_std] {
            assert_eq!(
                run(way, script),
                (
                    3,
                    "from the job|/usr/bin:/bin\nerr\nown-group\nstdin:1\npipe:141\n".to_string()
                )
            );
        }
    }
}
