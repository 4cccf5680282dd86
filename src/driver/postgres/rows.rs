//! Rows to records, by column name. Counts are stored as `BIGINT` and
//! checked on the way back (a negative or oversized value is an error
//! naming its column, never a wrapped number); JSON columns decode
//! strictly, as SQLite's rows do.

use postgres::Row;
use postgres::types::FromSql;
use serde::de::DeserializeOwned;

use crate::driver::{LatestRun, WaitingJob};
use crate::error::{Error, Result};
use crate::job::{AttemptOutcome, Claimed, Job, JobState, Origin};
use crate::retry::RetryPolicy;

pub(crate) use crate::driver::{deps_json, to_json};

/// The columns of a whole job row.
pub const JOB_COLUMNS: &str = "id, command, definition, origin, queue, priority, state, \
    attempts, runs, max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, timeout_ms, \
    env, cwd, run_at, created_at, updated_at, started_at, finished_at, exit_code, last_error, \
    spec_hash, source_commit, reason, after_deps, tick_at, payload";
/// The columns a claim returns.
pub const CLAIMED_COLUMNS: &str = "id, command, queue, attempts, runs, max_retries, backoff_base, \
    max_delay_ms, jitter, no_retry_codes, timeout_ms, env, cwd, definition, payload";
/// The columns of a waiting job as apply reads it.
pub const WAITING_COLUMNS: &str = "id, definition, state, spec_hash, command, env, cwd, queue, \
    priority, timeout_ms, max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, \
    after_deps, reason";
/// The columns of a definition's latest run.
pub const LATEST_COLUMNS: &str =
    "name, job_id, state, reason, spec_hash, command, env, cwd, removed_at, inputs";
/// The columns of a rescue's orphan.
pub const ORPHAN_COLUMNS: &str =
    "id, definition, attempts, max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes";

fn bad(column: &str, what: impl std::fmt::Display) -> Error {
    Error::Database {
        location: String::new(),
        message: format!("unexpected value in column `{column}`: {what}"),
        hint: None,
    }
}

/// A column's value.
pub fn get<'a, T: FromSql<'a>>(row: &'a Row, column: &str) -> Result<T> {
    row.try_get(column).map_err(|e| bad(column, e))
}

/// A count column (`BIGINT`, never negative).
pub fn count<T: TryFrom<i64>>(row: &Row, column: &str) -> Result<T> {
    let value: i64 = get(row, column)?;
    T::try_from(value).map_err(|_| bad(column, value))
}

pub fn state(row: &Row, column: &str) -> Result<JobState> {
    let text: String = get(row, column)?;
    JobState::parse(&text).ok_or_else(|| bad(column, text))
}

pub fn origin(row: &Row, column: &str) -> Result<Origin> {
    let text: String = get(row, column)?;
    Origin::parse(&text).ok_or_else(|| bad(column, text))
}

pub fn outcome(row: &Row, column: &str) -> Result<Option<AttemptOutcome>> {
    match get::<Option<String>>(row, column)? {
        Some(text) => AttemptOutcome::parse(&text)
            .map(Some)
            .ok_or_else(|| bad(column, text)),
        None => Ok(None),
    }
}

pub fn json<T: DeserializeOwned>(row: &Row, column: &str) -> Result<T> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|e| bad(column, e))
}

pub fn json_or_none<T: DeserializeOwned>(row: &Row, column: &str) -> Result<Option<T>> {
    match get::<Option<String>>(row, column)? {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| bad(column, e)),
        None => Ok(None),
    }
}

pub fn json_or_empty<T: DeserializeOwned + Default>(row: &Row, column: &str) -> Result<T> {
    Ok(json_or_none(row, column)?.unwrap_or_default())
}

pub fn retry(row: &Row) -> Result<RetryPolicy> {
    Ok(RetryPolicy {
        max_retries: count(row, "max_retries")?,
        backoff_base: get(row, "backoff_base")?,
        max_delay_ms: get(row, "max_delay_ms")?,
        jitter: get(row, "jitter")?,
        no_retry_exit_codes: json(row, "no_retry_codes")?,
    })
}

pub fn job(row: &Row) -> Result<Job> {
    Ok(Job {
        id: get(row, "id")?,
        command: get(row, "command")?,
        definition: get(row, "definition")?,
        origin: origin(row, "origin")?,
        queue: get(row, "queue")?,
        priority: get(row, "priority")?,
        state: state(row, "state")?,
        attempts: count(row, "attempts")?,
        runs: count(row, "runs")?,
        retry: retry(row)?,
        timeout_ms: get(row, "timeout_ms")?,
        env: json(row, "env")?,
        cwd: get(row, "cwd")?,
        run_at: get(row, "run_at")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
        exit_code: get(row, "exit_code")?,
        last_error: get(row, "last_error")?,
        spec_hash: get(row, "spec_hash")?,
        source_commit: get(row, "source_commit")?,
        reason: get(row, "reason")?,
        after: json_or_empty(row, "after_deps")?,
        tick_at: get(row, "tick_at")?,
        payload: json_or_none(row, "payload")?,
    })
}

pub fn claimed(row: &Row) -> Result<Claimed> {
    Ok(Claimed {
        id: get(row, "id")?,
        command: get(row, "command")?,
        queue: get(row, "queue")?,
        attempts: count(row, "attempts")?,
        run: count(row, "runs")?,
        retry: retry(row)?,
        timeout_ms: get(row, "timeout_ms")?,
        env: json(row, "env")?,
        cwd: get(row, "cwd")?,
        definition: get(row, "definition")?,
        payload: json_or_none(row, "payload")?,
    })
}

pub fn waiting(row: &Row) -> Result<WaitingJob> {
    Ok(WaitingJob {
        id: get(row, "id")?,
        definition: get(row, "definition")?,
        state: state(row, "state")?,
        spec_hash: get(row, "spec_hash")?,
        command: get(row, "command")?,
        env: json(row, "env")?,
        cwd: get(row, "cwd")?,
        queue: get(row, "queue")?,
        priority: get(row, "priority")?,
        timeout_ms: get(row, "timeout_ms")?,
        retry: retry(row)?,
        after: json_or_empty(row, "after_deps")?,
        reason: get(row, "reason")?,
    })
}

pub fn latest(row: &Row) -> Result<(String, LatestRun)> {
    Ok((
        get(row, "name")?,
        LatestRun {
            id: get(row, "job_id")?,
            state: state(row, "state")?,
            reason: get(row, "reason")?,
            spec_hash: get(row, "spec_hash")?,
            command: get(row, "command")?,
            env: json(row, "env")?,
            cwd: get(row, "cwd")?,
            removed: get::<Option<i64>>(row, "removed_at")?.is_some(),
            inputs: json_or_none(row, "inputs")?,
        },
    ))
}
