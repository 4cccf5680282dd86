//! Keeping a job's processes together, so that none outlives the job.
//!
//! A job runs in its own process group, and the group is killed when the
//! job ends, times out or is stopped. A process that leaves the group
//! (`setsid`, a daemon's double fork) escapes that; two mechanisms catch
//! it, chosen once per worker process ([`Containment::setup`]):
//!
//! - **cgroup v2**, where this process may create cgroups below its own
//!   (root, or a delegated subtree): each slot gets a cgroup, every job's
//!   shell moves itself into its slot's cgroup before it runs anything, and
//!   whatever is left in the cgroup when the job ends is killed at once
//!   (`cgroup.kill`). Nothing escapes a cgroup. A worker killed with -9
//!   leaves its cgroup behind; the worker that declares it dead kills what
//!   is in it.
//! - **child subreaper** otherwise: this process adopts the orphans of its
//!   jobs (`PR_SET_CHILD_SUBREAPER`); when a job ends, the adopted
//!   processes whose environment names that job (`QUEUECTL_JOB_ID`), or no
//!   job at all, are killed with their process groups. A process that
//!   escapes while its worker is killed with -9 is not caught.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions, kill_process, kill_process_group, waitpid};

/// The mechanism of a worker process.
#[derive(Debug)]
pub enum Containment {
    /// The cgroup of this worker (`…/queuectl-ID`), with one per slot below.
    Cgroup(PathBuf),
    /// This process is a child subreaper.
    Subreaper,
    /// Neither was possible: the process group only.
    Group,
}

/// The name of a worker's cgroup.
fn cgroup_name(worker: i64) -> String {
    format!("queuectl-{worker}")
}

impl Containment {
    /// The best mechanism available to this process (see the module docs).
    pub fn setup(worker: i64) -> Containment {
        if let Some(dir) = own_cgroup().and_then(|parent| create_cgroup(&parent, worker)) {
            return Containment::Cgroup(dir);
        }
        Containment::subreaper()
    }

    /// The subreaper mechanism, or the process group alone where the
    /// kernel refuses it.
    pub fn subreaper() -> Containment {
        match rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            Ok(()) => Containment::Subreaper,
            Err(_) => Containment::Group,
        }
    }

    /// A short name for messages: `cgroup`, `subreaper` or `process group`.
    pub fn name(&self) -> &'static str {
        match self {
            Containment::Cgroup(_) => "cgroup",
            Containment::Subreaper => "subreaper",
            Containment::Group => "process group",
        }
    }

    /// The cage of slot `index`.
    pub fn cage(&self, index: usize) -> Cage {
        match self {
            Containment::Cgroup(root) => {
                let dir = root.join(format!("slot-{index}"));
                match std::fs::create_dir(&dir) {
                    Ok(()) => Cage::Cgroup(dir),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Cage::Cgroup(dir),
                    Err(_) => Cage::Group,
                }
            }
            Containment::Subreaper => Cage::Subreaper,
            Containment::Group => Cage::Group,
        }
    }

    /// Kills whatever is left of every job and removes the cgroups; for
    /// the end of the worker process.
    pub fn finish(&self) {
        match self {
            Containment::Cgroup(root) => remove_cgroup(root),
            Containment::Subreaper => reap_orphans(None),
            Containment::Group => {}
        }
    }

    /// Kills what a dead worker of this machine left in its cgroup.
    pub fn kill_remains_of(&self, worker: i64) {
        if let Containment::Cgroup(root) = self
            && let Some(parent) = root.parent()
        {
            let dir = parent.join(cgroup_name(worker));
            if dir.is_dir() {
                remove_cgroup(&dir);
            }
        }
    }
}

/// Where one slot's jobs run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cage {
    /// This cgroup directory.
    Cgroup(PathBuf),
    Subreaper,
    Group,
}

impl Cage {
    /// The shell text that moves the job's shell into the cgroup before the
    /// job's own command runs (it is the same process: `sh -c` runs the
    /// job's command itself), so nothing the job starts is ever outside.
    pub fn prefix(&self) -> Option<String> {
        match self {
            Cage::Cgroup(dir) => Some(format!(
                "echo $$ > {}; ",
                shell_quote(&dir.join("cgroup.procs").display().to_string())
            )),
            _ => None,
        }
    }

    /// Sends `signal` to every process of the cage (besides the job's
    /// group, which the caller signals).
    pub fn signal(&self, signal: Signal) {
        if let Cage::Cgroup(dir) = self {
            if signal == Signal::KILL {
                kill_cgroup(dir);
            } else {
                for pid in cgroup_pids(dir) {
                    let _ = kill_process(pid, signal);
                }
            }
        }
    }

    /// After the job `job` ended: kills whatever it left running.
    pub fn clear(&self, job: &str) {
        match self {
            Cage::Cgroup(dir) => {
                if populated(dir) {
                    kill_cgroup(dir);
                }
            }
            Cage::Subreaper => reap_orphans(Some(job)),
            Cage::Group => {}
        }
    }
}

/// The job leaders this process spawned and still waits for: a subreaper
/// must not take them for orphans.
static LEADERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Held (shared) by code that spawns a child it will wait for itself, from
/// before the spawn until the child is known (a leader) or waited for;
/// held (exclusive) by the reaper. A child of ours that exits at once is a
/// zombie before anyone could register it: without this, the reaper would
/// take it for an orphan and reap it, and its own waiter would find no
/// child to wait for.
static OWN_CHILDREN: RwLock<()> = RwLock::new(());

/// Holds off the reaper while this process spawns (and, for a short
/// command, waits for) a child of its own.
pub fn own_child() -> RwLockReadGuard<'static, ()> {
    OWN_CHILDREN.read().unwrap_or_else(|p| p.into_inner())
}

/// Marks `pid` as a job leader until [`leader_done`].
pub fn leader_started(pid: u32) {
    LEADERS.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
}

/// `pid`, a job leader, was waited for.
pub fn leader_done(pid: u32) {
    LEADERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|&p| p != pid);
}

/// Kills and reaps the orphans this process adopted that belong to `job`
/// (`QUEUECTL_JOB_ID` in their environment); `None`: all of them. Killed
/// processes' own orphans are adopted in turn, so this looks again until
/// none is left. Orphans that already exited are reaped whatever job they
/// came from. A running orphan that cleared its environment is known to
/// no job: it is killed when the worker ends.
fn reap_orphans(job: Option<&str>) {
    let _alone = OWN_CHILDREN.write().unwrap_or_else(|p| p.into_inner());
    let wanted = job.map(|id| format!("QUEUECTL_JOB_ID={id}"));
    for _ in 0..20 {
        let leaders = LEADERS.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut exited = Vec::new();
        let mut escaped = Vec::new();
        for pid in children().into_iter().filter(|p| !leaders.contains(p)) {
            let Some(stat) = Stat::read(pid) else {
                continue;
            };
            if stat.zombie {
                exited.push(pid);
            } else if wanted.as_deref().is_none_or(|w| names_job(pid, w)) {
                let _ = kill_process_group(stat.group, Signal::KILL);
                if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                    let _ = kill_process(pid, Signal::KILL);
                }
                escaped.push(pid);
            }
        }
        reap(&exited);
        if escaped.is_empty() {
            return;
        }
        reap(&escaped);
    }
}

/// Whether process `pid`'s environment holds `marker`.
fn names_job(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|environ| environ.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
}

/// What `/proc/PID/stat` says of a process.
struct Stat {
    zombie: bool,
    group: Pid,
}

impl Stat {
    fn read(pid: u32) -> Option<Stat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command (which may hold spaces) in parentheses: state,
        // ppid, pgrp.
        let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
        let state = fields.next()?;
        let group = fields.nth(1)?.parse::<i32>().ok().and_then(Pid::from_raw)?;
        Some(Stat {
            zombie: state == "Z",
            group,
        })
    }
}

/// Waits (briefly) for killed processes, so they leave no zombies.
fn reap(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left: Vec<Pid> = pids
        .iter()
        .filter_map(|&p| i32::try_from(p).ok().and_then(Pid::from_raw))
        .collect();
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|&pid| matches!(waitpid(Some(pid), WaitOptions::NOHANG), Ok(None)));
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The children of this process, from every thread's `children` list.
fn children() -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids
}

/// The cgroup v2 directory of this process, if there is a cgroup2 mount.
fn own_cgroup() -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS… - FSTYPE SOURCE …`
    let mount = mountinfo.lines().find_map(|line| {
        let (fields, fs) = line.split_once(" - ")?;
        let mut fields = fields.split_whitespace();
        let root = fields.nth(3)?;
        let mountpoint = fields.next()?;
        (fs.split_whitespace().next() == Some("cgroup2") && root == "/")
            .then(|| PathBuf::from(unescape_mount(mountpoint)))
    })?;
    Some(mount.join(path.trim_start_matches('/')))
}

/// Mount points escape spaces and such as `\040`.
fn unescape_mount(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let code = rest
            .get(pos + 1..pos + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte as char);
                rest = &rest[pos + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Creates this worker's cgroup below `parent` and checks that a process
/// can be moved into it and killed there; `None` where it cannot.
fn create_cgroup(parent: &Path, worker: i64) -> Option<PathBuf> {
    let dir = parent.join(cgroup_name(worker));
    std::fs::create_dir(&dir).ok()?;
    let usable = dir.join("cgroup.kill").exists() && probe(&dir);
    if usable {
        Some(dir)
    } else {
        remove_cgroup(&dir);
        None
    }
}

/// Moves a throwaway shell into a cgroup below `dir`, as jobs will be.
fn probe(dir: &Path) -> bool {
    let cage = dir.join("probe");
    if std::fs::create_dir(&cage).is_err() {
        return false;
    }
    let prefix = Cage::Cgroup(cage.clone()).prefix().unwrap_or_default();
    let moved = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{prefix}true"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_dir(&cage);
    moved
}

/// Whether a cgroup has processes, from its `cgroup.events`.
fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .is_ok_and(|events| events.lines().any(|l| l == "populated 1"))
}

/// The pids in a cgroup (not its descendants).
fn cgroup_pids(dir: &Path) -> Vec<Pid> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok().and_then(Pid::from_raw))
        .collect()
}

/// SIGKILL to everything in a cgroup and below, at once.
fn kill_cgroup(dir: &Path) {
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
    {
        let _ = file.write_all(b"1");
    }
}

/// Kills everything in a cgroup tree and removes its directories, deepest
/// first (a cgroup is removed with rmdir once it has no processes).
fn remove_cgroup(dir: &Path) {
    kill_cgroup(dir);
    let deadline = Instant::now() + Duration::from_secs(2);
    while populated(dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// `text` in single quotes for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Control, Spec, run};

    /// Whether `pid` runs (a zombie does not).
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        })
    }

    /// Runs a job that leaves a `setsid` process behind, in `cage`, and
    /// checks that the process does not outlive the job.
    fn escapee_dies(cage: Cage) -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let pid_file = dir.path().join("pid");
        let command = format!("setsid sleep 1000 & echo $! > '{}'", pid_file.display());
        let control = Control::default();
        control.set_cage(cage);
        let exit = run(
            &Spec {
                id: "escape-test",
                command: &command,
                env: &[("QUEUECTL_JOB_ID".into(), "escape-test".into())],
                cwd: None,
                timeout: None,
                log_path: dir.path().join("log"),
                log_max_bytes: 1024,
            },
            &control,
        );
        assert_eq!(exit.code, 0, "{:?}", exit.error);
        let pid: u32 = std::fs::read_to_string(&pid_file)?
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(pid > 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!running(pid), "process {pid} outlived its job");
        Ok(())
    }

    #[test]
    fn a_subreaper_kills_what_escaped_its_job() -> std::io::Result<()> {
        assert!(matches!(Containment::subreaper(), Containment::Subreaper));
        escapee_dies(Cage::Subreaper)
    }

    #[test]
    fn a_subreaper_never_reaps_another_slots_job() -> std::io::Result<()> {
        // Short jobs in two slots at once: one slot's reaper must not take
        // the other's job, which may exit before it is known, for an orphan.
        assert!(matches!(Containment::subreaper(), Containment::Subreaper));
        let dir = tempfile::tempdir()?;
        let slots: Vec<_> = (0..2)
            .map(|slot| {
                let log = dir.path().join(format!("{slot}.log"));
                std::thread::spawn(move || {
                    let control = Control::default();
                    control.set_cage(Cage::Subreaper);
                    (0..300)
                        .map(|i| {
                            let id = format!("s{slot}-{i}");
                            let exit = run(
                                &Spec {
                                    id: &id,
                                    command: "true",
                                    env: &[("QUEUECTL_JOB_ID".into(), id.clone())],
                                    cwd: None,
                                    timeout: None,
                                    log_path: log.clone(),
                                    log_max_bytes: 1024,
                                },
                                &control,
                            );
                            (exit.code, exit.error)
                        })
                        .filter(|(code, _)| *code != 0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for slot in slots {
            let failed = slot.join().unwrap_or_else(|_| vec![(-1, None)]);
            assert_eq!(failed, vec![], "jobs lost to the other slot's reaper");
        }
        Ok(())
    }

    #[test]
    fn a_cgroup_kills_what_escaped_its_job() -> std::io::Result<()> {
        let containment = Containment::setup(crate::sys::host::random_id());
        let Containment::Cgroup(root) = &containment else {
            // Only a process that may create cgroups gets this mechanism;
            // CI runs as root, where it must work.
            assert!(
                std::env::var_os("QUEUECTL_CI").is_none(),
                "no cgroup v2 here: {}",
                containment.name()
            );
            return Ok(());
        };
        let result = escapee_dies(containment.cage(0));
        containment.finish();
        assert!(!root.exists(), "the worker's cgroup is removed");
        result
    }

    #[test]
    fn mount_points_and_quotes() {
        assert_eq!(unescape_mount(r"/sys/fs/cgroup\040x"), "/sys/fs/cgroup x");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
