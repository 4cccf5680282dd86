//! Definitions in SQLite: the latest-run record of each definition (kept
//! current by the statements that change a job, never deleted by
//! pruning), the waiting jobs apply and the dependency cascade read, and
//! the queue limits apply declares.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteOps;
use super::rows::{self, WAITING_COLUMNS, to_json};
use crate::driver::{Definitions, JobRef, LatestRun, Waiter, WaitingJob};
use crate::error::Result;
use crate::job::{JobState, NewJob};

impl Definitions for SqliteOps<'_> {
    fn latest_runs(&mut self) -> Result<BTreeMap<String, LatestRun>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM definitions",
            rows::latest::COLUMNS
        ))?;
        let rows = stmt.query_map([], rows::latest)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn latest_states(&mut self, names: &[String]) -> Result<Vec<Option<JobState>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state FROM definitions WHERE name = ?1")?;
        let mut states = Vec::with_capacity(names.len());
        for name in names {
            states.push(
                stmt.query_row([name], |row| rows::state(row, "state"))
                    .optional()?,
            );
        }
        Ok(states)
    }

    fn latest_job(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT job_id FROM definitions WHERE name = ?1")?
            .query_row([name], |row| row.get(0))
            .optional()?)
    }

    fn mark_removed(&mut self, declared: &[String], now: i64) -> Result<()> {
        let names = to_json(declared);
        self.conn
            .prepare_cached(
                "UPDATE definitions SET removed_at = ?2 WHERE removed_at IS NULL \
                 AND name NOT IN (SELECT value FROM json_each(?1))",
            )?
            .execute(params![names, now])?;
        self.conn
            .prepare_cached(
                "UPDATE definitions SET removed_at = NULL WHERE removed_at IS NOT NULL \
                 AND name IN (SELECT value FROM json_each(?1))",
            )?
            .execute([names])?;
        Ok(())
    }

    fn waiting_of_definitions(&mut self) -> Result<Vec<WaitingJob>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {WAITING_COLUMNS} FROM jobs WHERE definition IS NOT NULL \
             AND state IN ('pending', 'failed') ORDER BY id"
        ))?;
        let rows = stmt.query_map([], rows::waiting)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn waiting_for(&mut self, definition: &str) -> Result<Vec<Waiter>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT j.id, j.definition, j.after_deps, j.blocked FROM jobs j \
             WHERE j.after_deps IS NOT NULL AND j.state IN ('pending', 'failed') \
             AND EXISTS (SELECT 1 FROM json_each(j.after_deps) d WHERE d.value = ?1) \
             ORDER BY j.id",
        )?;
        let rows = stmt.query_map([definition], |row| {
            Ok(Waiter {
                id: row.get("id")?,
                definition: row.get("definition")?,
                after: rows::json_or_empty(row, "after_deps")?,
                blocked: row.get("blocked")?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn definition_jobs(&mut self, definition: &str, states: &[JobState]) -> Result<Vec<JobRef>> {
        let wanted: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, state, origin, payload FROM jobs WHERE definition = ?1 \
             AND state IN (SELECT value FROM json_each(?2)) ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map(params![definition, to_json(&wanted)], |row| {
            Ok(JobRef {
                id: row.get("id")?,
                state: rows::state(row, "state")?,
                origin: rows::origin(row, "origin")?,
                payload: rows::payload(row, "payload")?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn queue_limits(&mut self) -> Result<BTreeMap<String, u32>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, workers FROM queues")?;
        let rows = stmt.query_map([], |row| Ok((row.get("name")?, row.get("workers")?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_queue_limit(&mut self, name: &str, workers: Option<u32>) -> Result<()> {
        match workers {
            Some(workers) => self
                .conn
                .prepare_cached(
                    "INSERT INTO queues (name, workers) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO UPDATE SET workers = excluded.workers",
                )?
                .execute(params![name, workers])?,
            None => self
                .conn
                .prepare_cached("DELETE FROM queues WHERE name = ?1")?
                .execute([name])?,
        };
        Ok(())
    }

    fn paused_queues(&mut self) -> Result<BTreeMap<String, i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, since FROM paused_queues")?;
        let rows = stmt.query_map([], |row| Ok((row.get("name")?, row.get("since")?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_paused(&mut self, name: &str, since: Option<i64>) -> Result<bool> {
        let changed = match since {
            Some(since) => self
                .conn
                .prepare_cached(
                    "INSERT INTO paused_queues (name, since) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO NOTHING",
                )?
                .execute(params![name, since])?,
            None => self
                .conn
                .prepare_cached("DELETE FROM paused_queues WHERE name = ?1")?
                .execute([name])?,
        };
        Ok(changed > 0)
    }
}

/// A new job of a definition is that definition's latest run.
pub(super) fn record_new(conn: &Connection, job: &NewJob) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO definitions (name, job_id, state, reason, spec_hash, command, env, cwd, \
         inputs, updated_at) VALUES (?1, ?2, 'pending', NULL, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (name) DO UPDATE SET job_id = excluded.job_id, state = excluded.state, \
         reason = excluded.reason, spec_hash = excluded.spec_hash, command = excluded.command, \
         env = excluded.env, cwd = excluded.cwd, inputs = excluded.inputs, removed_at = NULL, \
         updated_at = excluded.updated_at",
    )?
    .execute(params![
        job.definition,
        job.id,
        job.spec_hash,
        job.command,
        to_json(&job.env),
        job.cwd,
        job.inputs.as_ref().map(to_json),
        job.created_at,
    ])?;
    Ok(())
}

/// A job changed: if it is its definition's latest run, the record
/// follows its state, reason and spec.
pub(super) fn follow(conn: &Connection, id: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE definitions SET state = j.state, reason = j.reason, spec_hash = j.spec_hash, \
         command = j.command, env = j.env, cwd = j.cwd, inputs = j.inputs, \
         updated_at = j.updated_at FROM (SELECT * FROM jobs WHERE id = ?1) AS j \
         WHERE definitions.name = j.definition AND definitions.job_id = j.id",
    )?
    .execute([id])?;
    Ok(())
}
