//! What the long-running parts report. Workers and the supervisor never
//! print: they send [`Event`]s, and one reporter renders them.

use std::time::Duration;

use serde::Serialize;

use crate::job::{AttemptOutcome, JobState};

/// Something that happened in a running worker pool.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The pool is up.
    Ready {
        pid: u32,
        slots: u32,
        queues: Vec<String>,
    },
    /// A slot started an attempt.
    Started {
        slot: usize,
        id: String,
        /// The jobfile definition it runs, if any.
        definition: Option<String>,
        command: String,
        queue: String,
        attempt: u32,
        max_attempts: u32,
    },
    /// An attempt ended; `state` is where the job went.
    Finished {
        slot: usize,
        id: String,
        definition: Option<String>,
        attempt: u32,
        outcome: AttemptOutcome,
        state: JobState,
        exit_code: i32,
        #[serde(serialize_with = "millis")]
        duration: Duration,
        /// When the job retries (ms since the epoch), if it does.
        retry_at: Option<i64>,
        error: Option<String>,
        /// For a failed attempt: the end of its output (its last 20 lines).
        #[serde(skip_serializing_if = "Option::is_none")]
        output_tail: Option<String>,
    },
    /// An attempt ended after its worker had been declared dead: another
    /// worker rescued the job, and this end is recorded nowhere.
    Discarded {
        slot: usize,
        id: String,
        definition: Option<String>,
        attempt: u32,
    },
    /// Another worker declared this one dead (it was silent past its lease,
    /// e.g. suspended): its running jobs are stopped, their results
    /// discarded, and it registers again under a new id.
    DeclaredDead {
        /// The jobs it was running.
        stopped: Vec<String>,
        lease_ms: u64,
    },
    /// A job taken back from a worker that died.
    Reclaimed {
        id: String,
        dead: bool,
        worker: String,
    },
    /// How many jobs wait, run, and wait for a retry (for progress bars).
    Counts {
        pending: u64,
        processing: u64,
        failed: u64,
    },
    /// An edit of the jobfile was applied: the plan's lines.
    Applied { plan: Vec<String> },
    /// An edit of the jobfile does not validate; the last good one runs on.
    ConfigError { message: String },
    /// A pool's slot count changed with the jobfile.
    Resized { pool: String, from: u32, to: u32 },
    /// A schedule's tick: its job enqueued, or why not.
    Ticked {
        definition: String,
        /// The tick's nominal time (ms since the epoch).
        tick: i64,
        /// A catch-up run for a tick missed while nothing was running.
        catch_up: bool,
        id: Option<String>,
        skipped: Option<String>,
    },
    /// Watched paths changed: a job enqueued, merged into a waiting one, or skipped.
    Triggered {
        definition: String,
        paths: Vec<String>,
        /// `enqueued`, `merged` or `skipped`.
        outcome: String,
        id: Option<String>,
    },
    /// The pool stops claiming; `force` kills running jobs. `again`: what
    /// stops it at once (`Ctrl-C`), after a signal.
    Stopping {
        force: bool,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        again: Option<String>,
    },
    /// A recoverable problem.
    Warning { message: String },
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
