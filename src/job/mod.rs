//! The job model shared by every layer (the driver, the engine, the
//! runtime and the commands): states and the sets of states the rules
//! speak of, origins, payloads, and the records of a job and of one
//! attempt. Ids and names ([`names`], [`id`]), what `execve` refuses
//! ([`checks`]) and the JSON job input format ([`input`]) have their own
//! files.

pub mod checks;
pub mod id;
pub mod input;
pub mod names;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use checks::{check_command, check_env};
pub use id::generate_id;
pub use names::{ID_PREFIX, validate_id};

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run (possibly not before `run_at`).
    Pending,
    /// Claimed by a worker and running.
    Processing,
    /// Exited 0.
    Completed,
    /// Failed an attempt; waits for its retry at `run_at`.
    Failed,
    /// Retries spent: in the dead letter queue.
    Dead,
    /// Cancelled by a user, a removed definition or a dead dependency.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Processing,
        JobState::Completed,
        JobState::Failed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Processing => "processing",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Waiting to be claimed: now, or at `run_at`.
    pub const WAITING: [JobState; 2] = [JobState::Pending, JobState::Failed];
    /// Not finished: waiting or running.
    pub const UNFINISHED: [JobState; 3] =
        [JobState::Pending, JobState::Processing, JobState::Failed];
    /// Will not run again unless someone asks.
    pub const FINISHED: [JobState; 3] = [JobState::Completed, JobState::Dead, JobState::Cancelled];

    /// A job in this state will not run again unless someone asks.
    pub fn is_finished(self) -> bool {
        Self::FINISHED.contains(&self)
    }

    /// A job in this state waits to be claimed.
    pub fn is_waiting(self) -> bool {
        Self::WAITING.contains(&self)
    }

    /// The state named `s` as stored (`pending`, …), if it is one.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase();
        if wanted == "running" {
            return Ok(JobState::Processing);
        }
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == wanted)
            .ok_or_else(|| {
                Error::input_with_hint(
                    format!("unknown state `{s}`"),
                    "states are pending, processing (or running), completed, failed, dead, cancelled",
                )
            })
    }
}

/// What put a job in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Cli,
    Jobfile,
    Schedule,
    Watch,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Cli => "cli",
            Origin::Jobfile => "jobfile",
            Origin::Schedule => "schedule",
            Origin::Watch => "watch",
        }
    }

    pub fn parse(s: &str) -> Option<Origin> {
        [
            Origin::Cli,
            Origin::Jobfile,
            Origin::Schedule,
            Origin::Watch,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// The digests of a definition's `sources`, by path.
pub type Inputs = BTreeMap<String, String>;

/// What a trigger gave a job: it reaches the command as environment
/// variables when the job starts ([`Payload::env`]), and is stored in its
/// own column, apart from the definition's `env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// A watch batch: the changed paths, relative to the jobfile's
    /// directory (`QUEUECTL_CHANGED`, one per line).
    Changed(Vec<String>),
    /// A `per_file` watch job: its path (`QUEUECTL_PATH`).
    Path(String),
    /// A cron tick: its nominal time in ms (`QUEUECTL_SCHEDULED_AT`, RFC 3339).
    Scheduled(i64),
}

impl Payload {
    /// The environment variables the command gets.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Payload::Changed(paths) => vec![("QUEUECTL_CHANGED".into(), paths.join("\n"))],
            Payload::Path(path) => vec![("QUEUECTL_PATH".into(), path.clone())],
            Payload::Scheduled(at) => vec![(
                "QUEUECTL_SCHEDULED_AT".into(),
                jiff::Timestamp::from_millisecond(*at)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            )],
        }
    }
}

/// A job's payload in JSON output: as stored, but a tick's time in RFC
/// 3339 (`{"scheduled": "2026-11-23T02:00:00Z"}`); the stored form keeps
/// milliseconds.
fn payload_json<S: serde::Serializer>(
    payload: &Option<Payload>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match payload {
        Some(Payload::Scheduled(at)) => {
            let mut map = std::collections::BTreeMap::new();
            map.insert("scheduled", crate::clock::rfc3339(*at));
            map.serialize(serializer)
        }
        other => other.serialize(serializer),
    }
}

/// A job about to be inserted.
#[derive(Debug, Clone, Serialize)]
pub struct NewJob {
    pub id: String,
    pub command: String,
    pub definition: Option<String>,
    pub origin: Origin,
    pub queue: String,
    pub priority: i64,
    #[serde(flatten)]
    pub retry: RetryPolicy,
    pub timeout_ms: Option<i64>,
    /// Literal values; `${VAR}` references are resolved when the job starts.
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    #[serde(with = "crate::output::json_time")]
    pub run_at: i64,
    #[serde(with = "crate::output::json_time")]
    pub created_at: i64,
    /// The jobfile spec this job runs, if it came from a definition.
    pub spec_hash: Option<String>,
    /// The git commit of the jobfile that made it, when known.
    pub source_commit: Option<String>,
    /// Definitions whose latest run must have completed first.
    pub after: Vec<String>,
    /// For a scheduled job: the nominal time of its tick (unique per definition).
    #[serde(with = "crate::output::json_time::option")]
    pub tick_at: Option<i64>,
    /// For a job of a definition with `sources`: its inputs' digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Inputs>,
    /// What its trigger gave it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "payload_json"
    )]
    pub payload: Option<Payload>,
    /// Jobs with the same key never run two at once (the engine gives
    /// watched and scheduled jobs one, see `engine::triggers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<String>,
}

/// A job as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub command: String,
    pub definition: Option<String>,
    pub origin: Origin,
    pub queue: String,
    pub priority: i64,
    pub state: JobState,
    /// Attempts that count against `max_retries`.
    pub attempts: u32,
    /// Every start, including attempts interrupted by a shutdown; numbers logs.
    pub runs: u32,
    #[serde(flatten)]
    pub retry: RetryPolicy,
    pub timeout_ms: Option<i64>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    #[serde(with = "crate::output::json_time")]
    pub run_at: i64,
    #[serde(with = "crate::output::json_time")]
    pub created_at: i64,
    #[serde(with = "crate::output::json_time")]
    pub updated_at: i64,
    #[serde(with = "crate::output::json_time::option")]
    pub started_at: Option<i64>,
    #[serde(with = "crate::output::json_time::option")]
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub last_error: Option<String>,
    pub spec_hash: Option<String>,
    pub source_commit: Option<String>,
    pub reason: Option<String>,
    pub after: Vec<String>,
    /// For a scheduled job: its tick's nominal time.
    #[serde(with = "crate::output::json_time::option")]
    pub tick_at: Option<i64>,
    /// What its trigger gave it.
    #[serde(serialize_with = "payload_json")]
    pub payload: Option<Payload>,
}

/// What a claimed job needs to run.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub command: String,
    pub definition: Option<String>,
    pub queue: String,
    pub attempts: u32,
    pub run: u32,
    pub retry: RetryPolicy,
    pub timeout_ms: Option<i64>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub payload: Option<Payload>,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Completed,
    Failed,
    Timeout,
    /// The worker died (its lease expired); counts as a failed attempt.
    Lost,
    /// Returned to the queue by a shutdown; does not count.
    Interrupted,
    Cancelled,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Completed => "completed",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::Lost => "lost",
            AttemptOutcome::Interrupted => "interrupted",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<AttemptOutcome> {
        [
            AttemptOutcome::Completed,
            AttemptOutcome::Failed,
            AttemptOutcome::Timeout,
            AttemptOutcome::Lost,
            AttemptOutcome::Interrupted,
            AttemptOutcome::Cancelled,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One run of a job, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub run: u32,
    #[serde(with = "crate::output::json_time")]
    pub started_at: i64,
    #[serde(with = "crate::output::json_time::option")]
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub outcome: Option<AttemptOutcome>,
    pub error: Option<String>,
    pub output_bytes: u64,
    /// The id of the worker process that ran it (`worker list`): random
    /// 64 bits, a string in JSON.
    #[serde(serialize_with = "crate::output::json_string_option")]
    pub worker: Option<i64>,
    /// The host that worker ran on (kept when the worker is gone).
    pub host: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_with_running_alias() {
        assert_eq!(
            "running".parse::<JobState>().ok(),
            Some(JobState::Processing)
        );
        assert_eq!("DEAD".parse::<JobState>().ok(), Some(JobState::Dead));
        let err = "done".parse::<JobState>().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("unknown state `done`"));
    }
}
