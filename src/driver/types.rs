//! The parameter structs and records of the driver's operations.

use serde::Serialize;

use crate::job::{AttemptOutcome, Inputs, JobState, Origin, Payload};
use crate::retry::RetryPolicy;

/// Which queues a claim (or a question about waiting jobs) covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueFilter {
    /// Every queue.
    Any,
    /// These queues.
    Only(Vec<String>),
    /// Every queue but these (the default pool: the others have their own).
    Except(Vec<String>),
}

impl QueueFilter {
    /// Whether a job of `queue` is covered.
    pub fn allows(&self, queue: &str) -> bool {
        match self {
            QueueFilter::Any => true,
            QueueFilter::Only(queues) => queues.iter().any(|q| q == queue),
            QueueFilter::Except(queues) => !queues.iter().any(|q| q == queue),
        }
    }

    /// These queues but not `skip`.
    pub fn without(&self, skip: &[String]) -> QueueFilter {
        if skip.is_empty() {
            return self.clone();
        }
        match self {
            QueueFilter::Any => QueueFilter::Except(skip.to_vec()),
            QueueFilter::Only(queues) => QueueFilter::Only(
                queues
                    .iter()
                    .filter(|q| !skip.contains(q))
                    .cloned()
                    .collect(),
            ),
            QueueFilter::Except(queues) => {
                let mut all = queues.clone();
                all.extend(skip.iter().filter(|q| !queues.contains(q)).cloned());
                QueueFilter::Except(all)
            }
        }
    }
}

/// What a claim may take.
#[derive(Debug, Clone, Copy)]
pub struct ClaimParams<'a> {
    /// The registered worker claiming.
    pub runner: i64,
    pub queues: &'a QueueFilter,
    /// Queues to skip whatever `queues` says (at their limit, or paused).
    pub exclude: &'a [String],
    pub lease_until: i64,
    pub now: i64,
    /// At most this many jobs.
    pub limit: usize,
}

/// The decided end of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct FinishParams<'a> {
    pub id: &'a str,
    /// The job's definition, as its claim returned it (a running job's
    /// definition never changes): its record follows the job.
    pub definition: Option<&'a str>,
    pub run: u32,
    pub runner: i64,
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub error: Option<&'a str>,
    pub output_bytes: u64,
    /// The job's next state.
    pub state: JobState,
    /// For a job that waits again: when it may run.
    pub run_at: Option<i64>,
    /// For a finished job: when.
    pub finished_at: Option<i64>,
    /// Whether the attempt counts against the retries (an interrupted one
    /// does not).
    pub counts: bool,
    pub now: i64,
}

/// The decided end of a running job whose worker was lost.
#[derive(Debug, Clone, Copy)]
pub struct LostParams<'a> {
    pub id: &'a str,
    pub state: JobState,
    pub run_at: i64,
    pub finished_at: Option<i64>,
    pub error: &'a str,
    pub now: i64,
}

/// A running job whose worker is gone.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub id: String,
    pub definition: Option<String>,
    /// Attempts counted so far, the lost one included.
    pub attempts: u32,
    pub retry: RetryPolicy,
}

/// A job that moved (cancelled, requeued), with its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub id: String,
    pub definition: Option<String>,
}

/// A waiting job that depends on definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub id: String,
    pub definition: Option<String>,
    pub after: Vec<String>,
    pub blocked: bool,
}

/// A job of a definition, as its triggers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub id: String,
    pub state: JobState,
    pub origin: Origin,
    pub payload: Option<Payload>,
}

/// A new spec for a waiting job.
#[derive(Debug, Clone, Copy)]
pub struct JobUpdate<'a> {
    pub command: &'a str,
    pub env: &'a [(String, String)],
    pub cwd: Option<&'a str>,
    pub queue: &'a str,
    pub priority: i64,
    pub timeout_ms: Option<i64>,
    pub retry: &'a RetryPolicy,
    pub after: &'a [String],
    pub spec_hash: &'a str,
    pub now: i64,
}

/// What a definition last did: its latest job (which may have been
/// pruned since), that job's state and spec, and whether the jobfile
/// still declared it at the last apply.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRun {
    pub id: String,
    pub state: JobState,
    pub reason: Option<String>,
    pub spec_hash: Option<String>,
    pub command: String,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    /// The inputs it ran with, for a definition with `sources`.
    pub inputs: Option<Inputs>,
    /// The last apply found the definition gone from the jobfile.
    pub removed: bool,
}

/// A waiting job of a definition, as apply sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingJob {
    pub id: String,
    pub definition: String,
    pub state: JobState,
    pub spec_hash: Option<String>,
    pub command: String,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub queue: String,
    pub priority: i64,
    pub timeout_ms: Option<i64>,
    pub retry: RetryPolicy,
    pub after: Vec<String>,
    /// Why it ended, for cancelled jobs.
    pub reason: Option<String>,
}

impl From<&WaitingJob> for LatestRun {
    fn from(job: &WaitingJob) -> LatestRun {
        LatestRun {
            id: job.id.clone(),
            state: job.state,
            reason: job.reason.clone(),
            spec_hash: job.spec_hash.clone(),
            command: job.command.clone(),
            env: job.env.clone(),
            cwd: job.cwd.clone(),
            inputs: None,
            removed: false,
        }
    }
}

/// Which jobs `list` (and the dashboard's job list) shows.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub queue: Option<String>,
    pub definition: Option<String>,
    pub origin: Option<Origin>,
    /// Only jobs whose command contains this text (case-sensitive).
    pub text: Option<String>,
    /// Keyset pagination: only jobs older than this (created_at, id), in
    /// the list's order (newest first), so a page costs the same however
    /// deep it is.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// What a minute of the dashboard's chart counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tally {
    /// Jobs that completed in that minute.
    Completed,
    /// Attempts that failed, timed out or were lost in that minute,
    /// whether their job was retried or went dead.
    Failed,
}

/// Jobs completed, or attempts failed, in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCount {
    /// The minute (ms since the epoch / 60,000).
    pub minute: i64,
    pub tally: Tally,
    pub count: u64,
}

/// Jobs counted by queue and state.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    /// (queue, state, count), sorted by queue.
    pub rows: Vec<(String, JobState, u64)>,
}

impl Counts {
    pub fn total(&self, state: JobState) -> u64 {
        self.rows
            .iter()
            .filter(|(_, s, _)| *s == state)
            .map(|(_, _, n)| n)
            .sum()
    }
}

/// Dead jobs of one queue and exit code.
#[derive(Debug, Serialize)]
pub struct DlqStat {
    pub queue: String,
    pub exit_code: Option<i32>,
    pub count: u64,
    #[serde(with = "crate::output::json_time::option")]
    pub newest_at: Option<i64>,
}

/// A schedule as the queue remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    pub expression: String,
    /// An IANA name, or `local`.
    pub timezone: String,
    /// The nominal time of the last tick handled (ms).
    pub last_tick: i64,
    /// When a scheduler last looked at it (ms): ticks after a long silence
    /// were missed.
    pub checked_at: i64,
    /// Read: the ticks it missed in all (they fell while no scheduler
    /// looked) since its expression was last set. Recorded: the ticks
    /// missed since the last look, added to that count (which starts
    /// again from these when the expression or the zone changed).
    pub missed: u64,
    /// The latest missed tick (ms); recorded: `None` keeps the stored one.
    pub missed_at: Option<i64>,
}

/// How a worker was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopMode {
    /// Finish the running jobs, claim no more.
    Drain,
    /// Stop the running jobs too (they go back to the queue).
    Force,
}

impl StopMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StopMode::Drain => "drain",
            StopMode::Force => "force",
        }
    }

    pub fn parse(s: &str) -> Option<StopMode> {
        [StopMode::Drain, StopMode::Force]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// What a worker's registration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Registered; its stop request, if any.
    Alive(Option<StopMode>),
    /// Its row is gone: another worker declared it dead and rescued its jobs.
    Gone,
}

/// A registered worker process.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    /// Random, never reused.
    pub id: i64,
    pub pid: u32,
    pub host: String,
    /// The processes it sees (boot id and PID namespace): its pid means
    /// something only to a worker with the same view.
    pub process_view: Option<String>,
    /// Its pools (`queue:slots`).
    pub queues: Vec<String>,
    pub slots: u32,
    pub busy: u32,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// How long it may stay silent before it is declared dead.
    pub lease_ms: i64,
    /// Set once `worker stop` asked it to stop.
    pub stop: Option<StopMode>,
}

/// What registers a worker.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub id: i64,
    pub pid: u32,
    pub host: &'a str,
    pub process_view: Option<&'a str>,
    pub queues: &'a [String],
    pub slots: u32,
    pub lease_ms: i64,
    pub now: i64,
}
