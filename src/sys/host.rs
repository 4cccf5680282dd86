//! Who a worker process is. A worker's pid means something only to a
//! process that sees the same processes: the same boot of the same kernel
//! and the same PID namespace. Two containers with one host name, or a
//! machine rebooted since a worker registered, must not judge each
//! other's pids; they go by the lease alone. The boot id and the PID
//! namespace, from `/proc`, say whether two workers share that view.

use std::hash::{BuildHasher, RandomState};

use rustix::process::{Pid, test_kill_process};

/// Names this process's host in place of the machine's: the tests of a
/// queue shared by many machines run "hosts" on one machine this way.
/// Each identity is a view of processes of its own, so workers of two
/// identities never judge each other's pids (only leases), as workers on
/// two machines cannot. Not for production use.
pub const HOST_ID_VAR: &str = "QUEUECTL_HOST_ID";

fn host_override() -> Option<String> {
    std::env::var(HOST_ID_VAR).ok().filter(|id| !id.is_empty())
}

/// This machine's name, for people (`worker status`).
pub fn hostname() -> String {
    if let Some(id) = host_override() {
        return id;
    }
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The view of processes this process has: `BOOT_ID/pid:[INODE]`, or
/// `None` where `/proc` does not say (systems other than Linux, a missing
/// `/proc`): then no pid is ever judged.
pub fn process_view() -> Option<String> {
    if let Some(id) = host_override() {
        return Some(format!("{HOST_ID_VAR}={id}"));
    }
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let boot = boot.trim();
    (!boot.is_empty()).then(|| format!("{boot}/{}", namespace.display()))
}

/// Whether a process with this pid exists, as this process sees pids.
pub fn pid_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// A worker id: random, positive, never 0, so no two worker processes of
/// a queue ever share one (a row id would be reused once its worker was
/// declared dead, and the dead worker's late writes would land on the new
/// one's jobs).
pub fn random_id() -> i64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = (
        nanos,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    );
    // RandomState is keyed from the OS's random source.
    let id = (RandomState::new().hash_one(seed) >> 1) as i64;
    id.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_view() {
        let view = process_view().unwrap_or_default();
        assert!(view.contains("/pid:["), "{view}");
    }

    #[test]
    fn this_process_has_a_live_pid() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
    }

    #[test]
    fn ids_are_positive_and_distinct() {
        let ids: std::collections::BTreeSet<i64> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|&id| id > 0));
    }
}
