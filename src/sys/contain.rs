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
//!
//! Both are Linux's (module `linux`: cgroups, `prctl`, `/proc`). Other
//! systems get the same API over the process group alone: there,
//! [`Containment`] is always [`Containment::Group`] and the cgroup and
//! subreaper operations do nothing.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use rustix::process::Signal;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;

/// The stand-in for `linux` elsewhere; compiled for tests on Linux too.
#[cfg(any(not(target_os = "linux"), test))]
mod elsewhere;
#[cfg(not(target_os = "linux"))]
use elsewhere as platform;

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
        if let Some(dir) = platform::cgroup(&cgroup_name(worker)) {
            return Containment::Cgroup(dir);
        }
        Containment::subreaper()
    }

    /// The subreaper mechanism, or the process group alone where the
    /// kernel refuses it.
    pub fn subreaper() -> Containment {
        if platform::become_subreaper() {
            Containment::Subreaper
        } else {
            Containment::Group
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
            Containment::Cgroup(root) => platform::remove_cgroup(root),
            Containment::Subreaper => platform::reap_orphans(None),
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
                platform::remove_cgroup(&dir);
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
                platform::kill_cgroup(dir);
            } else {
                platform::signal_cgroup(dir, signal);
            }
        }
    }

    /// After the job `job` ended: kills whatever it left running.
    pub fn clear(&self, job: &str) {
        match self {
            Cage::Cgroup(dir) => {
                if platform::populated(dir) {
                    platform::kill_cgroup(dir);
                }
            }
            Cage::Subreaper => platform::reap_orphans(Some(job)),
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

/// `text` in single quotes for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        let cage = Cage::Cgroup(PathBuf::from("/sys/fs/cgroup/q x/slot-0"));
        assert_eq!(
            cage.prefix().as_deref(),
            Some("echo $$ > '/sys/fs/cgroup/q x/slot-0/cgroup.procs'; ")
        );
        assert_eq!(Cage::Group.prefix(), None);
    }

    /// What other systems run: no cgroup, no subreaper, operations that do
    /// nothing.
    #[test]
    fn elsewhere_only_the_group_contains() {
        let dir = std::path::Path::new("/nonexistent/queuectl-test");
        assert_eq!(elsewhere::cgroup(&cgroup_name(1)), None);
        assert!(!elsewhere::become_subreaper());
        assert!(!elsewhere::populated(dir));
        elsewhere::signal_cgroup(dir, Signal::TERM);
        elsewhere::kill_cgroup(dir);
        elsewhere::remove_cgroup(dir);
        elsewhere::reap_orphans(Some("job"));
        elsewhere::reap_orphans(None);
    }
}
