//! Reconcile in the store: read what the planner needs, and apply a plan,
//! in one transaction so that nothing moves between the two.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::Store;
use super::jobs::{cancel_blocked, deps_json, from_json, from_json_or_empty, parse_state, to_json};
use crate::error::Result;
use crate::job::Origin;
use crate::jobfile::Jobfile;
use crate::reconcile::{self, Action, Latest, Plan, Stored, StoredJob};
use crate::retry::RetryPolicy;

const STORED_COLUMNS: &str = "id, definition, state, spec_hash, command, env, cwd, queue, priority, \
    timeout_ms, max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, after_deps, reason";

impl Store {
    /// What the store holds of the jobfile's definitions and queues.
    pub fn stored(&self) -> Result<Stored> {
        self.read(read_stored)
    }

    /// Makes the queue match `jobfile` (with `rerun`, every one-shot job
    /// runs again); returns what was done.
    pub fn apply(
        &mut self,
        jobfile: &Jobfile,
        commit: Option<&str>,
        now: i64,
        rerun: bool,
    ) -> Result<Plan> {
        self.write(|tx| {
            let stored = read_stored(tx)?;
            let plan = reconcile::plan_with(jobfile, &stored, rerun);
            apply_plan(tx, jobfile, &plan, commit, now)?;
            mark_removed(tx, jobfile, now)?;
            cancel_blocked(tx, now)?;
            Ok(plan)
        })
    }

    /// The worker counts the last apply declared.
    pub fn declared_queues(&self) -> Result<BTreeMap<String, u32>> {
        self.read(read_queues)
    }
}

fn read_stored(conn: &Connection) -> Result<Stored> {
    let mut stored = Stored {
        queues: read_queues(conn)?,
        ..Stored::default()
    };
    // What each definition last did, from the record that outlives its
    // pruned jobs.
    let mut latest = conn.prepare_cached(
        "SELECT name, job_id, state, reason, spec_hash, command, env, cwd, removed_at, inputs \
         FROM definitions",
    )?;
    let rows = latest.query_map([], |row| {
        let state: String = row.get(2)?;
        Ok((
            row.get::<_, String>(0)?,
            Latest {
                id: row.get(1)?,
                state: parse_state(&state)?,
                reason: row.get(3)?,
                spec_hash: row.get(4)?,
                command: row.get(5)?,
                env: from_json(row, 6)?,
                cwd: row.get(7)?,
                removed: row.get::<_, Option<i64>>(8)?.is_some(),
                inputs: match row.get::<_, Option<String>>(9)? {
                    Some(_) => Some(from_json(row, 9)?),
                    None => None,
                },
            },
        ))
    })?;
    for row in rows {
        let (name, latest) = row?;
        stored.latest.insert(name, latest);
    }
    let mut waiting = conn.prepare_cached(&format!(
        "SELECT {STORED_COLUMNS} FROM jobs WHERE definition IS NOT NULL \
         AND state IN ('pending', 'failed') ORDER BY id"
    ))?;
    for job in waiting.query_map([], stored_job)? {
        let job = job?;
        stored
            .waiting
            .entry(job.definition.clone())
            .or_default()
            .push(job);
    }
    Ok(stored)
}

/// Records which definitions the jobfile declares no more (and which it
/// declares again), beside their history.
fn mark_removed(conn: &Connection, jobfile: &Jobfile, now: i64) -> Result<()> {
    let names = to_json(&jobfile.jobs.keys().collect::<Vec<_>>());
    conn.prepare_cached(
        "UPDATE definitions SET removed_at = ?2 WHERE removed_at IS NULL \
         AND name NOT IN (SELECT value FROM json_each(?1))",
    )?
    .execute(params![names, now])?;
    conn.prepare_cached(
        "UPDATE definitions SET removed_at = NULL WHERE removed_at IS NOT NULL \
         AND name IN (SELECT value FROM json_each(?1))",
    )?
    .execute([names])?;
    Ok(())
}

fn read_queues(conn: &Connection) -> Result<BTreeMap<String, u32>> {
    let mut stmt = conn.prepare_cached("SELECT name, workers FROM queues")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn stored_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredJob> {
    let state: String = row.get(2)?;
    Ok(StoredJob {
        id: row.get(0)?,
        definition: row.get(1)?,
        state: parse_state(&state)?,
        spec_hash: row.get(3)?,
        command: row.get(4)?,
        env: from_json(row, 5)?,
        cwd: row.get(6)?,
        queue: row.get(7)?,
        priority: row.get(8)?,
        timeout_ms: row.get(9)?,
        retry: RetryPolicy {
            max_retries: row.get(10)?,
            backoff_base: row.get(11)?,
            max_delay_ms: row.get(12)?,
            jitter: row.get(13)?,
            no_retry_exit_codes: from_json(row, 14)?,
        },
        after: from_json_or_empty(row, 15)?,
        reason: row.get(16)?,
    })
}

fn apply_plan(
    conn: &Connection,
    jobfile: &Jobfile,
    plan: &Plan,
    commit: Option<&str>,
    now: i64,
) -> Result<()> {
    let mut cancel = conn.prepare_cached(
        "UPDATE jobs SET state = 'cancelled', reason = ?2, finished_at = ?3, updated_at = ?3 \
         WHERE id = ?1 AND state IN ('pending', 'failed')",
    )?;
    for action in &plan.actions {
        match action {
            Action::Enqueue { name, .. } | Action::Requeue { name, .. } => {
                if let Action::Requeue { replaces, .. } = action {
                    for id in replaces {
                        cancel.execute(params![id, "replaced by a new spec", now])?;
                    }
                }
                if let Some(def) = jobfile.jobs.get(name) {
                    let job = def.new_job(&jobfile.dir, Origin::Jobfile, commit, now);
                    super::jobs::insert(conn, &job)?;
                }
            }
            Action::Update { name, ids, .. } => {
                let Some(def) = jobfile.jobs.get(name) else {
                    continue;
                };
                let mut update = conn.prepare_cached(
                    "UPDATE jobs SET command = ?2, env = ?3, cwd = ?4, queue = ?5, priority = ?6, \
                     timeout_ms = ?7, max_retries = ?8, backoff_base = ?9, max_delay_ms = ?10, \
                     jitter = ?11, no_retry_codes = ?12, after_deps = ?13, spec_hash = ?14, \
                     updated_at = ?15 WHERE id = ?1 AND state IN ('pending', 'failed')",
                )?;
                let mut env_of = conn.prepare_cached("SELECT env FROM jobs WHERE id = ?1")?;
                for id in ids {
                    // The definition's env, and what queuectl gave this job
                    // itself (its tick, its changed paths).
                    let stored: String = env_of.query_row([id], |row| row.get(0))?;
                    let stored: Vec<(String, String)> =
                        serde_json::from_str(&stored).unwrap_or_default();
                    let mut env = def.env.clone();
                    env.extend(
                        stored
                            .into_iter()
                            .filter(|(k, _)| k.starts_with(reconcile::RESERVED_ENV)),
                    );
                    update.execute(params![
                        id,
                        def.command,
                        to_json(&env),
                        reconcile::cwd_of(def, &jobfile.dir),
                        def.queue,
                        def.priority,
                        def.timeout.map(crate::duration::as_millis_i64),
                        def.retry.max_retries,
                        def.retry.backoff_base,
                        def.retry.max_delay_ms,
                        def.retry.jitter,
                        to_json(&def.retry.no_retry_exit_codes),
                        deps_json(&def.after),
                        def.spec_hash(),
                        now,
                    ])?;
                }
            }
            Action::Cancel { ids, .. } => {
                for id in ids {
                    cancel.execute(params![id, reconcile::REMOVED, now])?;
                }
            }
            Action::Queue {
                name,
                to: Some(workers),
                ..
            } => {
                conn.execute(
                    "INSERT INTO queues (name, workers) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO UPDATE SET workers = excluded.workers",
                    params![name, workers],
                )?;
            }
            Action::Queue { name, to: None, .. } => {
                conn.execute("DELETE FROM queues WHERE name = ?1", [name])?;
            }
        }
    }
    Ok(())
}
