//! Rows to records. Each row shape declares its columns once
//! ([`shape!`]): the select list the SQL uses and a constant per column
//! name, so a record is decoded by name (a column added or reordered never
//! shifts another) at the cost of an index, not a search through the
//! column names on every row. JSON columns decode strictly (a value that
//! does not decode is an error, not a default).

use rusqlite::types::Type;
use rusqlite::{Row, RowIndex};
use serde::de::DeserializeOwned;

use crate::driver::{LatestRun, WaitingJob};
use crate::job::{AttemptOutcome, Claimed, Job, JobState, Origin, Payload};
use crate::retry::RetryPolicy;

/// Declares a row shape: `shape!(name: a, b, c)` makes `mod name` with
/// `COLUMNS` (`"a, b, c"`) and `a`, `b`, `c`: each column's index.
macro_rules! shape {
    ($name:ident: $($column:ident),+ $(,)?) => {
        #[allow(non_upper_case_globals, dead_code)]
        pub mod $name {
            pub const COLUMNS: &str = stringify!($($column),+);
            shape!(@index 0usize; $($column),+);
        }
    };
    (@index $at:expr; $column:ident $(, $rest:ident)*) => {
        pub const $column: usize = $at;
        shape!(@index $at + 1usize; $($rest),*);
    };
    (@index $at:expr;) => {};
}

// The retry policy's five columns stay together, in this order, in every
// shape that has them ([`retry`] reads them from the first).
shape!(job: id, command, definition, origin, queue, priority, state, attempts, runs,
    max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, timeout_ms, env, cwd,
    run_at, created_at, updated_at, started_at, finished_at, exit_code, last_error, spec_hash,
    source_commit, reason, after_deps, tick_at, payload);
shape!(claimed: id, command, queue, attempts, runs, max_retries, backoff_base, max_delay_ms,
    jitter, no_retry_codes, timeout_ms, env, cwd, definition, payload);
shape!(waiting: id, definition, state, spec_hash, command, env, cwd, queue, priority,
    timeout_ms, max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, after_deps,
    reason);
shape!(latest: name, job_id, state, reason, spec_hash, command, env, cwd, removed_at, inputs);
shape!(orphan: id, definition, attempts, max_retries, backoff_base, max_delay_ms, jitter,
    no_retry_codes);

/// The columns of a whole job row.
pub const JOB_COLUMNS: &str = job::COLUMNS;
/// The columns a claim returns.
pub const CLAIMED_COLUMNS: &str = claimed::COLUMNS;
/// The columns of a waiting job as apply reads it.
pub const WAITING_COLUMNS: &str = waiting::COLUMNS;

pub fn job(row: &Row<'_>) -> rusqlite::Result<Job> {
    use self::job as c;
    Ok(Job {
        id: row.get(c::id)?,
        command: row.get(c::command)?,
        definition: row.get(c::definition)?,
        origin: origin(row, c::origin)?,
        queue: row.get(c::queue)?,
        priority: row.get(c::priority)?,
        state: state(row, c::state)?,
        attempts: row.get(c::attempts)?,
        runs: row.get(c::runs)?,
        retry: retry(row, c::max_retries)?,
        timeout_ms: row.get(c::timeout_ms)?,
        env: json(row, c::env)?,
        cwd: row.get(c::cwd)?,
        run_at: row.get(c::run_at)?,
        created_at: row.get(c::created_at)?,
        updated_at: row.get(c::updated_at)?,
        started_at: row.get(c::started_at)?,
        finished_at: row.get(c::finished_at)?,
        exit_code: row.get(c::exit_code)?,
        last_error: row.get(c::last_error)?,
        spec_hash: row.get(c::spec_hash)?,
        source_commit: row.get(c::source_commit)?,
        reason: row.get(c::reason)?,
        after: json_or_empty(row, c::after_deps)?,
        tick_at: row.get(c::tick_at)?,
        payload: json_or_none(row, c::payload)?,
    })
}

pub fn claimed(row: &Row<'_>) -> rusqlite::Result<Claimed> {
    use self::claimed as c;
    Ok(Claimed {
        id: row.get(c::id)?,
        command: row.get(c::command)?,
        queue: row.get(c::queue)?,
        attempts: row.get(c::attempts)?,
        run: row.get(c::runs)?,
        retry: retry(row, c::max_retries)?,
        timeout_ms: row.get(c::timeout_ms)?,
        env: json(row, c::env)?,
        cwd: row.get(c::cwd)?,
        definition: row.get(c::definition)?,
        payload: json_or_none(row, c::payload)?,
    })
}

pub fn waiting(row: &Row<'_>) -> rusqlite::Result<WaitingJob> {
    use self::waiting as c;
    Ok(WaitingJob {
        id: row.get(c::id)?,
        definition: row.get(c::definition)?,
        state: state(row, c::state)?,
        spec_hash: row.get(c::spec_hash)?,
        command: row.get(c::command)?,
        env: json(row, c::env)?,
        cwd: row.get(c::cwd)?,
        queue: row.get(c::queue)?,
        priority: row.get(c::priority)?,
        timeout_ms: row.get(c::timeout_ms)?,
        retry: retry(row, c::max_retries)?,
        after: json_or_empty(row, c::after_deps)?,
        reason: row.get(c::reason)?,
    })
}

/// A `definitions` row: (name, its latest run).
pub fn latest(row: &Row<'_>) -> rusqlite::Result<(String, LatestRun)> {
    use self::latest as c;
    Ok((
        row.get(c::name)?,
        LatestRun {
            id: row.get(c::job_id)?,
            state: state(row, c::state)?,
            reason: row.get(c::reason)?,
            spec_hash: row.get(c::spec_hash)?,
            command: row.get(c::command)?,
            env: json(row, c::env)?,
            cwd: row.get(c::cwd)?,
            removed: row.get::<_, Option<i64>>(c::removed_at)?.is_some(),
            inputs: json_or_none(row, c::inputs)?,
        },
    ))
}

/// The retry policy: the five columns from `first` on (`max_retries`,
/// `backoff_base`, `max_delay_ms`, `jitter`, `no_retry_codes`).
pub fn retry(row: &Row<'_>, first: usize) -> rusqlite::Result<RetryPolicy> {
    Ok(RetryPolicy {
        max_retries: row.get(first)?,
        backoff_base: row.get(first + 1)?,
        max_delay_ms: row.get(first + 2)?,
        jitter: row.get(first + 3)?,
        no_retry_exit_codes: json(row, first + 4)?,
    })
}

/// A column, by index or by name (for queries without a shape).
pub trait Column: RowIndex + Copy {
    /// Its name, for an error.
    fn name(self, row: &Row<'_>) -> String;
}

impl Column for usize {
    fn name(self, row: &Row<'_>) -> String {
        row.as_ref()
            .column_name(self)
            .map_or_else(|_| format!("column {self}"), str::to_string)
    }
}

impl Column for &str {
    fn name(self, _: &Row<'_>) -> String {
        self.to_string()
    }
}

pub fn state(row: &Row<'_>, column: impl Column) -> rusqlite::Result<JobState> {
    let text: String = row.get(column)?;
    JobState::parse(&text).ok_or_else(|| bad_value(&column.name(row), &text))
}

pub fn origin(row: &Row<'_>, column: impl Column) -> rusqlite::Result<Origin> {
    let text: String = row.get(column)?;
    Origin::parse(&text).ok_or_else(|| bad_value(&column.name(row), &text))
}

pub fn outcome(row: &Row<'_>, column: impl Column) -> rusqlite::Result<Option<AttemptOutcome>> {
    match row.get::<_, Option<String>>(column)? {
        Some(text) => AttemptOutcome::parse(&text)
            .map(Some)
            .ok_or_else(|| bad_value(&column.name(row), &text)),
        None => Ok(None),
    }
}

/// A payload column.
pub fn payload(row: &Row<'_>, column: impl Column) -> rusqlite::Result<Option<Payload>> {
    json_or_none(row, column)
}

/// A JSON column.
pub fn json<T: DeserializeOwned>(row: &Row<'_>, column: impl Column) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| conversion(&column.name(row), e.into()))
}

/// A nullable JSON column: NULL is None.
pub fn json_or_none<T: DeserializeOwned>(
    row: &Row<'_>,
    column: impl Column,
) -> rusqlite::Result<Option<T>> {
    match row.get::<_, Option<String>>(column)? {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| conversion(&column.name(row), e.into())),
        None => Ok(None),
    }
}

/// A nullable JSON column: NULL is the empty value.
pub fn json_or_empty<T: DeserializeOwned + Default>(
    row: &Row<'_>,
    column: impl Column,
) -> rusqlite::Result<T> {
    Ok(json_or_none(row, column)?.unwrap_or_default())
}

pub(crate) use crate::driver::{deps_json, to_json};

fn bad_value(column: &str, value: &str) -> rusqlite::Error {
    conversion(column, format!("unexpected value `{value}`").into())
}

fn conversion(column: &str, error: Box<dyn std::error::Error + Send + Sync>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Text, format!("{column}: {error}").into())
}
