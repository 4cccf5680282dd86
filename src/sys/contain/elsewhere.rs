//! [`super`] on systems other than Linux: no cgroups and no subreaper, so
//! the process group alone contains a job. Same functions as
//! `super::linux`, doing nothing.

use std::path::{Path, PathBuf};

use rustix::process::Signal;

/// No cgroups here.
pub(super) fn cgroup(_name: &str) -> Option<PathBuf> {
    None
}

/// No subreaper here.
pub(super) fn become_subreaper() -> bool {
    false
}

pub(super) fn signal_cgroup(_dir: &Path, _signal: Signal) {}

pub(super) fn populated(_dir: &Path) -> bool {
    false
}

pub(super) fn kill_cgroup(_dir: &Path) {}

pub(super) fn remove_cgroup(_dir: &Path) {}

/// Without a subreaper this process adopts no orphans.
pub(super) fn reap_orphans(_job: Option<&str>) {}
