//! The runtime of a worker process: the engine behind `queuectl run` and
//! `queuectl worker start`.
//!
//! [`supervise`] registers the process and runs the supervisor
//! ([`supervisor`]): a loop whose body is a list of named steps (wait for
//! a change, signals, a database change, the jobfile, triggers,
//! maintenance, idle and deadlines, reap), with one error path that
//! force-stops the pools in order before the process deregisters. Its
//! slots ([`slot`]) claim, run and finish jobs on threads of their own,
//! each over its own connection.
//!
//! A process has a [`Role`]: a plain worker, the `run` that owns the queue
//! (it applies the jobfile's edits and fires its triggers), or an extra
//! `run` (it follows the jobfile's pools, and applies nothing).

mod jobfile;
pub mod pools;
mod registration;
mod signals;
pub mod slot;
mod supervisor;
mod triggers;

#[cfg(test)]
mod tests;

use crate::events::Sender;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use pools::{Pool, check_count, check_pools, pools, served};

use crate::clock::now_ms;
use crate::driver::{Durability, Location, OwnerLock};
use crate::engine::{Engine, random_unit};
use crate::error::Result;
use crate::jobfile::Jobfile;
use crate::liveness::Liveness;
use crate::logs::Logs;
use crate::sys::host;

/// The longest the supervisor waits without looking around.
pub const MAX_TICK: Duration = Duration::from_millis(50);
/// While every slot is busy, look at the database at most this often.
pub const BUSY_TICK: Duration = Duration::from_millis(5);
/// How often a worker proves it is alive and renews its leases, at most.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a job's lease lasts without renewal by default; a worker
/// silent this long is declared dead (on this host, as soon as its pid is
/// gone).
pub const LEASE: Duration = Duration::from_secs(30);
/// The dead letter queue keeps at most this many jobs (unless
/// `settings.dlq_max_jobs` says)…
pub const DLQ_MAX_JOBS: u64 = 10_000;
/// …for at most this long (unless `settings.dlq_max_age` says).
pub const DLQ_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long an edit of the jobfile that would cancel jobs must leave the
/// file unchanged before `run` applies it.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Who a worker process is in its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `worker start`: runs the pools its flags and jobfile gave it.
    Worker,
    /// The `run` that owns the queue: applies the jobfile's edits, fires
    /// its cron schedules and watches.
    Owner,
    /// A `run` beside the owner: follows the jobfile's pools, applies
    /// nothing; becomes the owner when the owner ends (or its lease
    /// lapses), and an extra again if its own lease lapsed and another
    /// run took the queue over.
    Extra,
}

impl Role {
    /// Whether it applies the jobfile and fires its triggers.
    pub fn owns(self) -> bool {
        self == Role::Owner
    }
}

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub location: Location,
    pub logs: Logs,
    pub role: Role,
    /// `--count`/`--workers`: the slots of one pool (over `queues`, or every queue).
    pub count: Option<u32>,
    /// `--queue`: only these queues.
    pub queues: Vec<String>,
    /// The jobfile its pools and settings come from, if any.
    pub jobfile: Option<Jobfile>,
    /// `run` without `--no-watch`: follow edits of the jobfile (validate,
    /// apply when it owns the queue, resize) and fire its watches.
    pub follow_jobfile: bool,
    pub until_idle: bool,
    pub grace: Duration,
    /// Keep running when the terminal goes away (background workers).
    pub ignore_hangup: bool,
}

/// How a worker process ended.
#[derive(Debug, Default)]
pub struct Summary {
    pub completed: u64,
    pub dead: u64,
    /// The signal that stopped it, if one did.
    pub signal: Option<i32>,
}

impl Summary {
    /// The exit code of a worker process: 130/143 after a signal; with
    /// `--until-idle`, 1 when a job of the run is dead.
    pub fn exit_code(&self, until_idle: bool) -> u8 {
        use crate::error::{EXIT_JOBS_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM};
        match self.signal {
            Some(signal) if signal == signal_hook::consts::SIGINT => EXIT_SIGINT,
            Some(_) => EXIT_SIGTERM,
            None if self.dead > 0 && until_idle => EXIT_JOBS_FAILED,
            None => EXIT_OK,
        }
    }
}

/// Runs a worker process until it is told to stop (see the module docs).
/// A `run` passes the queue's owner lock, held or not: an extra run
/// takes the queue over when the owner goes (see [`Role`]).
pub fn supervise(
    options: &Options,
    owner: Option<Box<dyn OwnerLock>>,
    events: &Sender,
) -> Result<Summary> {
    let engine = Engine::open(&options.location, Durability::Normal)?;
    supervisor::supervise(engine, options, owner, events)
}

/// How long the owner lease of a queue on a server lasts unrenewed: half
/// a worker's lease (15 s by default), so an owner that vanished is
/// replaced before its jobs are rescued.
pub fn owner_ttl(jobfile: Option<&Jobfile>) -> Duration {
    jobfile.map_or(LEASE, |j| j.settings.lease) / 2
}

/// How often a worker with this lease heartbeats: ten times a lease, at
/// most every 2 s.
pub fn heartbeat_every(lease: Duration) -> Duration {
    (lease / 10).min(HEARTBEAT)
}

/// The declared queue limits of a jobfile, which a process honours beside
/// the recorded ones.
fn limits_of(jobfile: Option<&Jobfile>) -> std::collections::BTreeMap<String, u32> {
    jobfile.map(|j| j.queues.clone()).unwrap_or_default()
}

/// Rescues the jobs of the workers that this process sees are gone (their
/// pid, in the same view of processes), and of workers no longer
/// registered: for a command that runs once (`worker stop`), with no
/// heartbeats observed to judge silence by.
pub fn rescue_gone_workers(engine: &mut Engine) -> Result<()> {
    let view = host::process_view();
    let dead: Vec<(i64, i64)> = Liveness::default()
        .judge(
            &engine.workers()?,
            0,
            view.as_deref(),
            Instant::now(),
            |pid| pid == std::process::id() || host::pid_alive(pid),
        )
        .iter()
        .map(|d| (d.id, d.heartbeat_at))
        .collect();
    if !dead.is_empty() || engine.has_orphaned_jobs()? {
        engine.rescue(&dead, now_ms(), random_unit())?;
    }
    Ok(())
}

/// The default state directory for a queue at `location`: the directory
/// of its database file.
pub fn state_dir_of(location: &Location) -> PathBuf {
    location
        .file()
        .and_then(|f| f.parent())
        .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
}
