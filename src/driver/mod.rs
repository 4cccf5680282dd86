//! The storage driver: a trait of intent-named data operations ([`Ops`])
//! over one transaction, and the side channels a queue needs beside its
//! data ([`ChangeFeed`], [`OwnerLock`]). SQLite ([`sqlite`]) is the first
//! driver; the conformance suite (`driver/tests/`) is written once and
//! run against every driver.
//!
//! A driver stores what it is told. It never decides a retry, a cascade,
//! an overlap, a merge or a limit: the engine ([`crate::engine`]) reads,
//! decides in Rust, and writes the decided transition through [`Ops`],
//! all inside one [`Driver::write`] transaction. The driver imports
//! nothing above the job model, and its errors are [`crate::error::Error`]
//! values that name the database, never a driver's own error type.
//!
//! Two invariants are the driver's, as an index is a database's:
//! - each definition's *latest run* (the newest job inserted for it, and
//!   that job's state and spec) follows every insert and every state
//!   change, and outlives pruning ([`Definitions`]);
//! - a claim never takes a *blocked* job (one the engine marked as
//!   waiting for a dependency), nor a job whose *exclusive* key is held by
//!   a running job, nor a job of an excluded queue ([`ClaimParams`]).

pub mod postgres;
pub mod sqlite;
mod types;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use types::*;

use crate::error::Result;
use crate::job::{Attempt, Claimed, Job, JobState, NewJob, Payload};

/// Where a queue's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (its URL; shown without the password).
    Postgres(postgres::PgUrl),
}

impl Location {
    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => url.to_string(),
        }
    }

    /// As `--db` (or `QUEUECTL_DB`) takes it: a URL with its password,
    /// for a child's environment, never for output.
    pub fn as_arg(&self) -> std::ffi::OsString {
        match self {
            Location::Sqlite(path) => path.as_os_str().to_owned(),
            Location::Postgres(url) => url.secret().into(),
        }
    }

    /// Names this queue in a database error raised without its location
    /// (drivers' own errors are made where the queue is not known).
    pub fn locate(&self, error: crate::error::Error) -> crate::error::Error {
        use crate::error::Error;
        match error {
            Error::Database {
                location,
                message,
                hint,
            } if location.is_empty() => Error::Database {
                location: self.describe(),
                message,
                hint,
            },
            other => other,
        }
    }

    /// Refuses a schema newer than this queuectl knows (`known`
    /// migrations); with `read_only`, also an older one (a read command
    /// does not migrate).
    pub fn check_schema(&self, version: usize, known: usize, read_only: bool) -> Result<()> {
        use crate::error::Error;
        if version > known {
            return Err(Error::Database {
                location: self.describe(),
                message: format!(
                    "schema version {version} is newer than this queuectl knows ({known})"
                ),
                hint: Some("upgrade queuectl".into()),
            });
        }
        if read_only && version < known {
            return Err(Error::Database {
                location: self.describe(),
                message: format!(
                    "schema version {version} is older than this queuectl's ({known}), and this command only reads"
                ),
                hint: Some(
                    "any command that writes (`queuectl apply`, `enqueue`, `run`, `worker start`) upgrades it"
                        .into(),
                ),
            });
        }
        Ok(())
    }

    /// The database file, for a driver that keeps one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
}

/// How durable each commit of a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Survives a power cut once committed: enqueues and commands.
    Full,
    /// May be lost in a power cut (never torn): worker transitions, where
    /// a lost transition only makes a job run again.
    Normal,
}

/// Opens the queue at `location` for writing (creating and migrating it).
pub fn open(location: &Location, durability: Durability) -> Result<Box<dyn Driver>> {
    match location {
        Location::Sqlite(path) => Ok(Box::new(sqlite::SqliteDriver::open(path, durability)?)),
        Location::Postgres(url) => Ok(Box::new(postgres::PgDriver::open(url, durability)?)),
    }
}

/// Opens the queue at `location` for reading: nothing is created or
/// migrated; a queue that does not exist yet reads as empty.
pub fn open_read(location: &Location) -> Result<Box<dyn Driver>> {
    match location {
        Location::Sqlite(path) => Ok(Box::new(sqlite::SqliteDriver::open_read(path)?)),
        Location::Postgres(url) => Ok(Box::new(postgres::PgDriver::open_read(url)?)),
    }
}

/// Makes [`crate::clock::now_ms`] follow the queue's clock before a
/// command computes times with it (a server's; nothing to do for a file):
/// connects, writes nothing.
pub fn sync_clock(location: &Location) -> Result<()> {
    match location {
        Location::Sqlite(_) => Ok(()),
        Location::Postgres(url) => postgres::PgDriver::sync_only(url),
    }
}

/// A connection to a queue.
pub trait Driver: Send + std::fmt::Debug {
    /// Where its data lives.
    fn location(&self) -> &Location;

    /// Runs `f` in one write transaction, committed when it returns Ok and
    /// rolled back otherwise. `f` may run again if the database asks for a
    /// retry (a serialization failure), so it must not keep state across
    /// calls.
    fn write(&mut self, f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>) -> Result<()>;

    /// Runs `f` over one consistent snapshot; it must not write.
    fn read(&mut self, f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>) -> Result<()>;

    /// Another connection to the same queue (for another thread).
    fn connect(&self, durability: Durability) -> Result<Box<dyn Driver>>;

    /// A feed of the changes other connections commit.
    fn change_feed(&self) -> Result<Box<dyn ChangeFeed>>;

    /// Tries to become the queue's owner (the one `run` that applies the
    /// jobfile and fires its triggers); held until dropped. `ttl`: how
    /// long a lease on a server lasts unrenewed (a process that vanishes
    /// without releasing it is replaced after that long).
    fn owner_lock(&self, ttl: Duration) -> Result<Box<dyn OwnerLock>>;

    /// Whether attempts' output is kept in the database (readable from
    /// any host) rather than only in the logs directory of the host that
    /// ran them.
    fn keeps_output(&self) -> bool {
        false
    }
}

/// Tells a process, without polling the tables, that another may have
/// committed something: today inotify on the database's directory with
/// SQLite's `data_version`; LISTEN/NOTIFY on a server.
pub trait ChangeFeed: Send + std::fmt::Debug {
    /// Waits at most `timeout` for a change; true when something was
    /// committed since the last call.
    fn wait(&mut self, timeout: Duration) -> Result<bool>;
}

/// The queue's single owner: the kernel's flock on a file beside a SQLite
/// database; an advisory lock or a lease on a server.
pub trait OwnerLock: Send + std::fmt::Debug {
    /// None when this process holds it; else who does ("pid 4242").
    fn holder(&self) -> Option<&str>;

    /// Tries again to take it when another held it (that process ended,
    /// or its lease lapsed): true when this process holds it now.
    fn try_take(&mut self) -> Result<bool>;

    /// True once, when this process held it and has lost it (its lease
    /// lapsed and another process took it); it then holds nothing and
    /// may [`try_take`](OwnerLock::try_take) again.
    fn lost(&mut self) -> bool {
        false
    }
}

/// Everything one transaction can do: the operations of each area.
pub trait Ops: Jobs + Definitions + Triggers + Workers {}

impl<T: Jobs + Definitions + Triggers + Workers + ?Sized> Ops for T {}

/// Jobs and their attempts.
pub trait Jobs {
    /// Inserts jobs (pending, unblocked); an id that exists already is an
    /// input error and nothing of the transaction stands.
    fn insert_jobs(&mut self, jobs: &[NewJob]) -> Result<()>;

    /// Claims up to `params.limit` ready jobs, best first (priority, then
    /// `run_at`, then id), each with its attempt row, for a registered
    /// runner only (a runner whose row is gone claims nothing).
    fn claim_jobs(&mut self, params: &ClaimParams<'_>) -> Result<Vec<Claimed>>;

    /// Whether a claim with `params` would take a job now (a read: it
    /// writes nothing, so a worker that finds nothing never takes the
    /// write lock).
    fn claimable(&mut self, params: &ClaimParams<'_>) -> Result<bool>;

    /// Records the decided end of attempts whose job is still the
    /// runner's (its runner, run and `processing`); returns, for each,
    /// whether it was. One that was not is left as it is.
    fn finish_attempts(&mut self, finishes: &[FinishParams<'_>]) -> Result<Vec<bool>>;

    /// Cancels the waiting (pending or failed) jobs among `ids`; returns
    /// those it cancelled.
    fn cancel_waiting(&mut self, ids: &[String], reason: &str, now: i64) -> Result<Vec<Moved>>;

    /// Flags running jobs for their worker to stop (`reason` replaces
    /// their reason when given).
    fn request_cancel(&mut self, ids: &[String], reason: Option<&str>, now: i64) -> Result<()>;

    /// Marks waiting jobs as blocked on a dependency (claims skip them), or not.
    fn set_blocked(&mut self, ids: &[String], blocked: bool) -> Result<()>;

    /// Puts dead jobs back to pending, their attempts reset unless kept.
    fn requeue_dead(&mut self, ids: &[String], keep_attempts: bool, now: i64)
    -> Result<Vec<Moved>>;

    /// Deletes jobs with their attempts; returns each one's id and run
    /// count (for its logs).
    fn delete_jobs(&mut self, ids: &[String]) -> Result<Vec<(String, u32)>>;

    /// Changes a waiting job's spec in place.
    fn update_waiting(&mut self, id: &str, update: &JobUpdate<'_>) -> Result<()>;

    /// Replaces a job's payload.
    fn set_payload(&mut self, id: &str, payload: &Payload, now: i64) -> Result<()>;

    /// Records the decided end of running jobs whose worker was lost:
    /// their attempt `lost`, the job in its decided state.
    fn set_lost(&mut self, lost: &[LostParams<'_>]) -> Result<()>;

    /// One job.
    fn job(&mut self, id: &str) -> Result<Option<Job>>;

    /// The state of each job named (None: no such job).
    fn job_states(&mut self, ids: &[String]) -> Result<Vec<Option<JobState>>>;

    /// The attempts of a job, oldest first.
    fn attempts(&mut self, id: &str) -> Result<Vec<Attempt>>;

    /// Jobs matching `filter`, newest first.
    fn list_jobs(&mut self, filter: &JobFilter) -> Result<Vec<Job>>;

    /// How many jobs match `filter` (its limit aside), counted row by
    /// row: for a definition's jobs (the engine reads [`Jobs::counts`]
    /// for the others).
    fn count_jobs(&mut self, filter: &JobFilter) -> Result<u64>;

    /// Jobs counted by queue and state.
    fn counts(&mut self) -> Result<Counts>;

    /// How many jobs are pending, processing and failed.
    fn unfinished_counts(&mut self) -> Result<(u64, u64, u64)>;

    /// Whether a job of `queues` is pending, processing or failed.
    fn has_unfinished(&mut self, queues: &QueueFilter) -> Result<bool>;

    /// The earliest `run_at` of the waiting jobs of `queues`.
    fn next_run_at(&mut self, queues: &QueueFilter) -> Result<Option<i64>>;

    /// Dead jobs counted by queue and exit code.
    fn dlq_stats(&mut self) -> Result<Vec<DlqStat>>;

    /// The jobs completed and the jobs dead since `since` (ms), counted
    /// per minute of their `finished_at`.
    fn finished_by_minute(&mut self, since: i64) -> Result<Vec<MinuteCount>>;

    /// Every dead job's id, sorted.
    fn dead_ids(&mut self) -> Result<Vec<String>>;

    /// Jobs in `states` that finished before `before`.
    fn finished_before(&mut self, states: &[JobState], before: i64) -> Result<Vec<String>>;

    /// Dead jobs past the newest `keep`, or finished before `older_than`.
    fn dead_beyond(&mut self, keep: u64, older_than: i64) -> Result<Vec<String>>;

    /// How many jobs of each queue named are running.
    fn running_counts(&mut self, queues: &[String]) -> Result<Vec<u32>>;

    /// Stores an attempt's output (the tail its log kept, while it runs
    /// and when it ends), where the driver keeps output
    /// ([`Driver::keeps_output`]); a no-op elsewhere.
    fn store_output(&mut self, id: &str, run: u32, output: &Output) -> Result<()> {
        let _ = (id, run, output);
        Ok(())
    }

    /// An attempt's stored output (None: none stored).
    fn output(&mut self, id: &str, run: u32) -> Result<Option<Output>> {
        let _ = (id, run);
        Ok(None)
    }
}

/// An attempt's output as a database keeps it: the end of what the job
/// had written so far (its log's tail, without the log's note of what it
/// dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub bytes: Vec<u8>,
    /// How many bytes the job had written: `bytes` are the last of them.
    pub produced: u64,
}

impl Output {
    /// How many bytes of the job's output come before `bytes` (dropped).
    pub fn dropped(&self) -> u64 {
        self.produced.saturating_sub(self.bytes.len() as u64)
    }

    /// What a reader who has shown the first `shown` bytes of the output
    /// has not seen: how many bytes it missed (dropped before it could
    /// read them), and the rest.
    pub fn unseen(&self, shown: u64) -> (u64, &[u8]) {
        let dropped = self.dropped();
        let skip = shown.saturating_sub(dropped).min(self.bytes.len() as u64);
        (
            dropped.saturating_sub(shown),
            &self.bytes[usize::try_from(skip).unwrap_or(0)..],
        )
    }
}

#[cfg(test)]
#[test]
fn a_reader_of_kept_output_sees_each_byte_once_and_what_it_missed() {
    let output = |bytes: &[u8], produced: u64| Output {
        bytes: bytes.to_vec(),
        produced,
    };
    // All of it kept: the rest past what was shown.
    assert_eq!(output(b"abcdef", 6).unseen(0), (0, &b"abcdef"[..]));
    assert_eq!(output(b"abcdef", 6).unseen(4), (0, &b"ef"[..]));
    assert_eq!(output(b"abcdef", 6).unseen(6), (0, &b""[..]));
    assert_eq!(
        output(b"abcdef", 6).unseen(9),
        (0, &b""[..]),
        "never beyond the end"
    );
    // Only the tail kept (`cdef` of `abcdef`): aligned on what was shown…
    assert_eq!(output(b"cdef", 6).dropped(), 2);
    assert_eq!(output(b"cdef", 6).unseen(3), (0, &b"def"[..]));
    assert_eq!(output(b"cdef", 6).unseen(2), (0, &b"cdef"[..]));
    // …and what came between, dropped, is counted.
    assert_eq!(output(b"cdef", 6).unseen(1), (1, &b"cdef"[..]));
    assert_eq!(output(b"cdef", 6).unseen(0), (2, &b"cdef"[..]));
}

/// What each definition last did, kept beside (and beyond) its jobs.
pub trait Definitions {
    /// Every definition's latest run.
    fn latest_runs(&mut self) -> Result<BTreeMap<String, LatestRun>>;

    /// The state of each named definition's latest run (None: it never ran).
    fn latest_states(&mut self, names: &[String]) -> Result<Vec<Option<JobState>>>;

    /// The id of a definition's latest job (which may have been pruned).
    fn latest_job(&mut self, name: &str) -> Result<Option<String>>;

    /// Records which definitions the jobfile declares (the others are
    /// marked removed, with `now`).
    fn mark_removed(&mut self, declared: &[String], now: i64) -> Result<()>;

    /// The waiting jobs of definitions, for apply.
    fn waiting_of_definitions(&mut self) -> Result<Vec<WaitingJob>>;

    /// Waiting jobs whose `after` names `definition`.
    fn waiting_for(&mut self, definition: &str) -> Result<Vec<Waiter>>;

    /// Jobs of a definition in `states`, oldest first.
    fn definition_jobs(&mut self, definition: &str, states: &[JobState]) -> Result<Vec<JobRef>>;

    /// The queue limits the last apply declared.
    fn queue_limits(&mut self) -> Result<BTreeMap<String, u32>>;

    /// Declares a queue's limit (None: no longer declared).
    fn set_queue_limit(&mut self, name: &str, workers: Option<u32>) -> Result<()>;

    /// The paused queues, each with when it was paused.
    fn paused_queues(&mut self) -> Result<BTreeMap<String, i64>>;

    /// Pauses a queue since `since`, or resumes it (None); returns whether
    /// that changed anything (pausing a paused queue keeps its time).
    fn set_paused(&mut self, name: &str, since: Option<i64>) -> Result<bool>;
}

/// Cron schedules' memory.
pub trait Triggers {
    /// A schedule as last recorded.
    fn schedule(&mut self, definition: &str) -> Result<Option<ScheduleRow>>;

    /// Records a schedule; its last tick never moves back.
    fn record_schedule(&mut self, definition: &str, row: &ScheduleRow) -> Result<()>;

    /// Whether a job of `definition` exists for this tick.
    fn tick_enqueued(&mut self, definition: &str, tick: i64) -> Result<bool>;
}

/// Worker processes and the leases of their jobs.
pub trait Workers {
    /// Registers a worker process.
    fn register_worker(&mut self, worker: &Registration<'_>) -> Result<()>;

    /// Updates what a worker says it runs.
    fn update_worker(&mut self, id: i64, queues: &[String], slots: u32) -> Result<()>;

    /// Records a heartbeat; says whether the worker is still registered.
    fn touch_worker(&mut self, id: i64, now: i64) -> Result<Presence>;

    /// Extends the leases of a runner's running jobs.
    fn extend_leases(&mut self, runner: i64, until: i64) -> Result<()>;

    /// A worker's registration, read without writing.
    fn presence(&mut self, id: i64) -> Result<Presence>;

    /// Asks every registered worker to stop (a force request is never
    /// weakened to a drain).
    fn request_stop(&mut self, mode: StopMode) -> Result<()>;

    /// Removes the workers named (id, the heartbeat the caller saw) whose
    /// heartbeat is still that one; returns those removed (id, pid, host).
    fn remove_workers(&mut self, seen: &[(i64, i64)]) -> Result<Vec<(i64, u32, String)>>;

    /// Removes a worker's row.
    fn deregister_worker(&mut self, id: i64) -> Result<()>;

    /// The registered workers, with how many jobs each runs.
    fn workers(&mut self) -> Result<Vec<WorkerInfo>>;

    /// The jobs these workers run: (id, definition).
    fn running_jobs(&mut self, runners: &[i64]) -> Result<Vec<(String, Option<String>)>>;

    /// Running jobs of `runner` that someone asked to stop.
    fn cancel_requests(&mut self, runner: i64) -> Result<Vec<String>>;

    /// Running jobs whose worker is no longer registered.
    fn orphaned_jobs(&mut self) -> Result<Vec<Orphan>>;
}

/// A value as a JSON column holds it (both drivers store JSON as text).
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// An origin as stored, behind a `'static` reference, for a statement's
/// parameters that borrow.
pub(crate) fn origin_name(origin: crate::job::Origin) -> &'static &'static str {
    use crate::job::Origin;
    match origin {
        Origin::Cli => &"cli",
        Origin::Jobfile => &"jobfile",
        Origin::Schedule => &"schedule",
        Origin::Watch => &"watch",
    }
}

/// `after` as stored: NULL when empty, so claims and cascades skip it.
pub(crate) fn deps_json(after: &[String]) -> Option<String> {
    (!after.is_empty()).then(|| to_json(after))
}
