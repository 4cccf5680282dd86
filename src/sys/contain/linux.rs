//! The Linux mechanisms of [`super`]: cgroup v2 (`/proc/self/cgroup`,
//! `/proc/self/mountinfo`, the cgroup files) and the child subreaper
//! (`prctl`, and `/proc` to find the adopted orphans and what job they
//! belong to).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions, kill_process, kill_process_group, waitpid};

use super::{Cage, LEADERS, OWN_CHILDREN};

/// Creates the cgroup `name` below this process's own and checks that jobs
/// can be moved into it; `None` where they cannot (no cgroup v2, no right
/// to create cgroups there).
pub(super) fn cgroup(name: &str) -> Option<PathBuf> {
    own_cgroup().and_then(|parent| create_cgroup(&parent, name))
}

/// Makes this process the child subreaper of its descendants; false
/// where the kernel refuses.
pub(super) fn become_subreaper() -> bool {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).is_ok()
}

/// Sends `signal` to every process directly in the cgroup `dir`.
pub(super) fn signal_cgroup(dir: &Path, signal: Signal) {
    for pid in cgroup_pids(dir) {
        let _ = kill_process(pid, signal);
    }
}

/// Kills and reaps the orphans this process adopted that belong to `job`
/// (`QUEUECTL_JOB_ID` in their environment); `None`: all of them. Killed
/// processes' own orphans are adopted in turn, so this looks again until
/// none is left. Orphans that already exited are reaped whatever job they
/// came from. A running orphan that cleared its environment is known to
/// no job: it is killed when the worker ends.
pub(super) fn reap_orphans(job: Option<&str>) {
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
fn create_cgroup(parent: &Path, name: &str) -> Option<PathBuf> {
    let dir = parent.join(name);
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
pub(super) fn populated(dir: &Path) -> bool {
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
pub(super) fn kill_cgroup(dir: &Path) {
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
    {
        let _ = file.write_all(b"1");
    }
}

/// Kills everything in a cgroup tree and removes its directories, deepest
/// first (a cgroup is removed with rmdir once it has no processes).
pub(super) fn remove_cgroup(dir: &Path) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Control, Spec, run};
    use crate::sys::contain::{Cage, Containment};

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
            &mut [0u8; 1024],
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
                                &mut [0u8; 1024],
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
    fn mount_points() {
        assert_eq!(unescape_mount(r"/sys/fs/cgroup\040x"), "/sys/fs/cgroup x");
    }
}
