//! Rows to records: every column is read by name, so a column added or
//! reordered never shifts another; JSON columns decode strictly (a value
//! that does not decode is an error, not a default).

use rusqlite::Row;
use rusqlite::types::Type;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::driver::{LatestRun, WaitingJob};
use crate::job::{AttemptOutcome, Claimed, Job, JobState, Origin, Payload};
use crate::retry::RetryPolicy;

/// The columns of a whole job row.
pub const JOB_COLUMNS: &str = "id, command, definition, origin, queue, priority, state, attempts, \
    runs, max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, timeout_ms, env, cwd, \
    run_at, created_at, updated_at, started_at, finished_at, exit_code, last_error, spec_hash, \
    source_commit, reason, after_deps, tick_at, payload";

/// The columns a claim returns.
pub const CLAIMED_COLUMNS: &str = "id, command, queue, attempts, runs, max_retries, backoff_base, \
    max_delay_ms, jitter, no_retry_codes, timeout_ms, env, cwd, definition, payload";

/// The columns of a waiting job as apply reads it.
pub const WAITING_COLUMNS: &str = "id, definition, state, spec_hash, command, env, cwd, queue, \
    priority, timeout_ms, max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, \
    after_deps, reason";

pub fn job(row: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: row.get("id")?,
        command: row.get("command")?,
        definition: row.get("definition")?,
        origin: origin(row, "origin")?,
        queue: row.get("queue")?,
        priority: row.get("priority")?,
        state: state(row, "state")?,
        attempts: row.get("attempts")?,
        runs: row.get("runs")?,
        retry: retry(row)?,
        timeout_ms: row.get("timeout_ms")?,
        env: json(row, "env")?,
        cwd: row.get("cwd")?,
        run_at: row.get("run_at")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        exit_code: row.get("exit_code")?,
        last_error: row.get("last_error")?,
        spec_hash: row.get("spec_hash")?,
        source_commit: row.get("source_commit")?,
        reason: row.get("reason")?,
        after: json_or_empty(row, "after_deps")?,
        tick_at: row.get("tick_at")?,
        payload: json_or_none(row, "payload")?,
    })
}

pub fn claimed(row: &Row<'_>) -> rusqlite::Result<Claimed> {
    Ok(Claimed {
        id: row.get("id")?,
        command: row.get("command")?,
        queue: row.get("queue")?,
        attempts: row.get("attempts")?,
        run: row.get("runs")?,
        retry: retry(row)?,
        timeout_ms: row.get("timeout_ms")?,
        env: json(row, "env")?,
        cwd: row.get("cwd")?,
        definition: row.get("definition")?,
        payload: json_or_none(row, "payload")?,
    })
}

pub fn waiting(row: &Row<'_>) -> rusqlite::Result<WaitingJob> {
    Ok(WaitingJob {
        id: row.get("id")?,
        definition: row.get("definition")?,
        state: state(row, "state")?,
        spec_hash: row.get("spec_hash")?,
        command: row.get("command")?,
        env: json(row, "env")?,
        cwd: row.get("cwd")?,
        queue: row.get("queue")?,
        priority: row.get("priority")?,
        timeout_ms: row.get("timeout_ms")?,
        retry: retry(row)?,
        after: json_or_empty(row, "after_deps")?,
        reason: row.get("reason")?,
    })
}

/// A `definitions` row: (name, its latest run).
pub fn latest(row: &Row<'_>) -> rusqlite::Result<(String, LatestRun)> {
    Ok((
        row.get("name")?,
        LatestRun {
            id: row.get("job_id")?,
            state: state(row, "state")?,
            reason: row.get("reason")?,
            spec_hash: row.get("spec_hash")?,
            command: row.get("command")?,
            env: json(row, "env")?,
            cwd: row.get("cwd")?,
            removed: row.get::<_, Option<i64>>("removed_at")?.is_some(),
            inputs: json_or_none(row, "inputs")?,
        },
    ))
}

/// The retry policy columns of a job row.
pub fn retry(row: &Row<'_>) -> rusqlite::Result<RetryPolicy> {
    Ok(RetryPolicy {
        max_retries: row.get("max_retries")?,
        backoff_base: row.get("backoff_base")?,
        max_delay_ms: row.get("max_delay_ms")?,
        jitter: row.get("jitter")?,
        no_retry_exit_codes: json(row, "no_retry_codes")?,
    })
}

pub fn state(row: &Row<'_>, column: &str) -> rusqlite::Result<JobState> {
    let text: String = row.get(column)?;
    JobState::parse(&text).ok_or_else(|| bad_value(column, &text))
}

pub fn origin(row: &Row<'_>, column: &str) -> rusqlite::Result<Origin> {
    let text: String = row.get(column)?;
    Origin::parse(&text).ok_or_else(|| bad_value(column, &text))
}

pub fn outcome(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<AttemptOutcome>> {
    match row.get::<_, Option<String>>(column)? {
        Some(text) => AttemptOutcome::parse(&text)
            .map(Some)
            .ok_or_else(|| bad_value(column, &text)),
        None => Ok(None),
    }
}

/// A payload column.
pub fn payload(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<Payload>> {
    json_or_none(row, column)
}

/// A JSON column.
pub fn json<T: DeserializeOwned>(row: &Row<'_>, column: &str) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| conversion(column, e.into()))
}

/// A nullable JSON column: NULL is None.
pub fn json_or_none<T: DeserializeOwned>(
    row: &Row<'_>,
    column: &str,
) -> rusqlite::Result<Option<T>> {
    match row.get::<_, Option<String>>(column)? {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| conversion(column, e.into())),
        None => Ok(None),
    }
}

/// A nullable JSON column: NULL is the empty value.
pub fn json_or_empty<T: DeserializeOwned + Default>(
    row: &Row<'_>,
    column: &str,
) -> rusqlite::Result<T> {
    Ok(json_or_none(row, column)?.unwrap_or_default())
}

/// A value as a JSON column holds it.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// `after` as stored: NULL when empty, so claims and cascades skip it.
pub fn deps_json(after: &[String]) -> Option<String> {
    (!after.is_empty()).then(|| to_json(after))
}

fn bad_value(column: &str, value: &str) -> rusqlite::Error {
    conversion(column, format!("unexpected value `{value}`").into())
}

fn conversion(column: &str, error: Box<dyn std::error::Error + Send + Sync>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Text, format!("{column}: {error}").into())
}
