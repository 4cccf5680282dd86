//! The job model shared by the store, the workers and the commands: states,
//! origins, ids, and the record of a job and of one attempt.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::Serialize;

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

    /// A job in this state will not run again unless someone asks.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Dead | JobState::Cancelled
        )
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

/// The longest id a user may give.
pub const MAX_ID_LEN: usize = 128;

/// Checks a user-given job id: 1–128 characters of `[A-Za-z0-9._-]`, not
/// `.` or `..`. Ids name log files, so this is also what keeps them inside
/// their directory.
pub fn validate_id(id: &str) -> Result<()> {
    let hint = "an id is 1-128 characters of letters, digits, `.`, `_` and `-`";
    if id.is_empty() {
        return Err(Error::input_with_hint("job id is empty", hint));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::input_with_hint(
            format!(
                "job id is {} characters long, the limit is {MAX_ID_LEN}",
                id.len()
            ),
            hint,
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::input_with_hint(
            format!("invalid job id `{id}`: `{bad}` is not allowed"),
            hint,
        ));
    }
    if id == "." || id == ".." {
        return Err(Error::input_with_hint(
            format!("invalid job id `{id}`"),
            hint,
        ));
    }
    Ok(())
}

/// The longest command queuectl runs. `sh -c COMMAND` passes it as one
/// argument, and Linux refuses any argument of 128 KiB or more
/// (`MAX_ARG_STRLEN`); the rest is left for queuectl's own prefix.
pub const MAX_COMMAND_BYTES: usize = 128_000;
/// The longest `NAME=VALUE` of a job's environment, for the same reason.
pub const MAX_ENV_ENTRY_BYTES: usize = 128_000;
/// A job's own environment in all: with the runner's, it must fit in what
/// `execve` accepts (a quarter of the stack limit, 2 MiB by default).
pub const MAX_ENV_BYTES: usize = 512 * 1024;

/// Why `command` can never run (`execve` would refuse it), as the end of a
/// sentence whose subject names it: "contains a NUL byte".
pub fn check_command(command: &str) -> std::result::Result<(), String> {
    if command.contains('\0') {
        return Err("contains a NUL byte, which no command can hold".into());
    }
    if command.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "is {} bytes: at most {MAX_COMMAND_BYTES} can be run",
            command.len()
        ));
    }
    Ok(())
}

/// Why an environment can never be passed to a job: the name of the
/// variable at fault (None: the whole) and the end of a sentence.
pub fn check_env(env: &[(String, String)]) -> std::result::Result<(), (Option<String>, String)> {
    let mut total = 0usize;
    for (key, value) in env {
        if key.contains('\0') || value.contains('\0') {
            return Err((Some(key.clone()), "contains a NUL byte".into()));
        }
        let entry = key.len() + 1 + value.len();
        if entry > MAX_ENV_ENTRY_BYTES {
            return Err((
                Some(key.clone()),
                format!("is {entry} bytes: at most {MAX_ENV_ENTRY_BYTES} can be passed"),
            ));
        }
        total += entry + 1;
    }
    if total > MAX_ENV_BYTES {
        return Err((
            None,
            format!("is {total} bytes: at most {MAX_ENV_BYTES} can be passed"),
        ));
    }
    Ok(())
}

const ID_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new generated id: 9 characters of milliseconds since the epoch and 3 of
/// a sequence (Crockford base 32, lowercase), 12 in all. Ids made by one
/// process strictly increase, so jobs of one batch keep their order; the
/// sequence starts at a random point so two processes rarely collide (and a
/// collision is caught by the primary key, not lost).
pub fn generate_id(now_ms: i64) -> String {
    static LAST: Mutex<(u64, u32)> = Mutex::new((0, 0));
    const SEQ_MAX: u32 = 0x7fff;
    let now = now_ms.max(0) as u64;
    let (ms, seq) = {
        let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = if now > last.0 {
            (now, random_start())
        } else if last.1 < SEQ_MAX {
            (last.0, last.1 + 1)
        } else {
            (last.0 + 1, random_start())
        };
        *last = next;
        next
    };
    let mut out = String::with_capacity(12);
    for shift in (0..9).rev() {
        out.push(ID_ALPHABET[((ms >> (shift * 5)) & 31) as usize] as char);
    }
    for shift in (0..3).rev() {
        out.push(ID_ALPHABET[((seq >> (shift * 5)) & 31) as usize] as char);
    }
    out
}

/// A sequence start in the lower half, leaving room to count up.
fn random_start() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) & 0x3fff
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
    pub run_at: i64,
    pub created_at: i64,
    /// The jobfile spec this job runs, if it came from a definition.
    pub spec_hash: Option<String>,
    /// The git commit of the jobfile that made it, when known.
    pub source_commit: Option<String>,
    /// Definitions whose latest run must have completed first.
    pub after: Vec<String>,
    /// For a scheduled job: the nominal time of its tick (unique per definition).
    pub tick_at: Option<i64>,
    /// For a job of a definition with `sources`: its inputs' digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<crate::jobfile::Inputs>,
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
    pub run_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub last_error: Option<String>,
    pub spec_hash: Option<String>,
    pub source_commit: Option<String>,
    pub reason: Option<String>,
    pub after: Vec<String>,
    /// For a scheduled job: its tick's nominal time.
    pub tick_at: Option<i64>,
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
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub outcome: Option<AttemptOutcome>,
    pub error: Option<String>,
    pub output_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for good in ["a", "job-1", "A.b_c", &"x".repeat(128), "..."] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", "a b", "é", ".", "..", &"x".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_and_environments_execve_would_refuse() {
        assert_eq!(check_command("echo hi"), Ok(()));
        assert_eq!(
            check_command("a\0b"),
            Err("contains a NUL byte, which no command can hold".into())
        );
        assert_eq!(
            check_command(&"x".repeat(MAX_COMMAND_BYTES + 1)),
            Err("is 128001 bytes: at most 128000 can be run".into())
        );
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(check_env(&env("A", "1")), Ok(()));
        assert_eq!(
            check_env(&env("A", "x\0")),
            Err((Some("A".into()), "contains a NUL byte".into()))
        );
        let many: Vec<_> = (0..10)
            .map(|i| (format!("V{i}"), "x".repeat(100_000)))
            .collect();
        assert_eq!(
            check_env(&many),
            Err((
                None,
                "is 1000040 bytes: at most 524288 can be passed".into()
            ))
        );
    }

    #[test]
    fn generated_ids_sort_by_time_then_sequence() {
        let a = generate_id(1_700_000_000_000);
        let b = generate_id(1_700_000_000_001);
        assert_eq!(a.len(), 12);
        assert!(a < b, "{a} < {b}");
        assert!(validate_id(&a).is_ok());
        // Many ids in one millisecond (more than the sequence holds) still
        // strictly increase.
        let batch: Vec<String> = (0..70_000)
            .map(|_| generate_id(1_700_000_000_002))
            .collect();
        assert!(batch.windows(2).all(|w| w[0] < w[1]));
    }

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
