//! Worker processes: registration, heartbeats with lease renewal, stop
//! requests, and the reclaim of jobs whose worker died.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::Store;
use super::jobs::to_json;
use crate::error::Result;

/// A registered worker process.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    pub id: i64,
    pub pid: u32,
    pub host: String,
    /// Empty: every queue.
    pub queues: Vec<String>,
    pub slots: u32,
    pub busy: u32,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// `drain` or `force` once `worker stop` asked it to stop.
    pub stop: Option<String>,
}

/// What a reclaim sweep did.
#[derive(Debug, Default)]
pub struct Reclaimed {
    /// Worker rows removed because their process is gone.
    pub workers: Vec<(u32, String)>,
    /// Jobs taken back from them: (id, now dead?).
    pub jobs: Vec<(String, bool)>,
}

/// Jobs whose worker is gone: lease expired, or runner no longer registered.
const LOST_JOBS: &str = "state = 'processing' AND (lease_until < ?1 OR runner IS NULL \
                         OR runner NOT IN (SELECT id FROM workers))";
const LOST: &str = "the worker running it was lost";

impl Store {
    /// Registers this process as a worker; returns its runner id.
    pub fn register_worker(
        &mut self,
        pid: u32,
        host: &str,
        queues: &[String],
        slots: u32,
        now: i64,
    ) -> Result<i64> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO workers (pid, host, queues, slots, started_at, heartbeat_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![pid, host, to_json(queues), slots, now],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Updates what a worker says it runs (its pools changed).
    pub fn update_worker(&mut self, runner: i64, queues: &[String], slots: u32) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE workers SET queues = ?2, slots = ?3 WHERE id = ?1",
                params![runner, to_json(queues), slots],
            )?;
            Ok(())
        })
    }

    /// Records that `runner` is alive and extends the leases of its jobs to
    /// `lease_until`. Returns its stop request, if any (`drain`/`force`).
    /// A runner whose row is gone (another worker declared it dead) gets
    /// `force`: its jobs may already run elsewhere.
    pub fn heartbeat(&mut self, runner: i64, lease_until: i64, now: i64) -> Result<Option<String>> {
        self.write(|tx| {
            let stop: Option<Option<String>> = tx
                .prepare_cached(
                    "UPDATE workers SET heartbeat_at = ?2 WHERE id = ?1 RETURNING stop",
                )?
                .query_row(params![runner, now], |row| row.get(0))
                .optional()?;
            tx.prepare_cached(
                "UPDATE jobs SET lease_until = ?2 WHERE runner = ?1 AND state = 'processing'",
            )?
            .execute(params![runner, lease_until])?;
            Ok(stop.unwrap_or_else(|| Some("force".into())))
        })
    }

    /// The stop request of `runner` (`drain`/`force`), read without writing.
    pub fn stop_request(&self, runner: i64) -> Result<Option<String>> {
        self.read(|conn| {
            let stop: Option<Option<String>> = conn
                .prepare_cached("SELECT stop FROM workers WHERE id = ?1")?
                .query_row([runner], |row| row.get(0))
                .optional()?;
            Ok(stop.unwrap_or_else(|| Some("force".into())))
        })
    }

    /// Jobs of `runner` that a user asked to cancel while they run.
    pub fn cancel_requests(&self, runner: i64) -> Result<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM jobs WHERE runner = ?1 AND state = 'processing' \
                 AND cancel_requested = 1",
            )?;
            let rows = stmt.query_map([runner], |row| row.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Removes this worker's row as it exits.
    pub fn deregister_worker(&mut self, runner: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM workers WHERE id = ?1", [runner])?;
            Ok(())
        })
    }

    /// Asks every registered worker to stop (`drain` or `force`); returns them.
    pub fn request_stop(&mut self, mode: &str) -> Result<Vec<WorkerInfo>> {
        self.write(|tx| {
            tx.execute(
                "UPDATE workers SET stop = ?1 WHERE stop IS NULL OR stop != 'force'",
                [mode],
            )?;
            Ok(())
        })?;
        self.workers()
    }

    /// The registered workers, with how many jobs each is running.
    pub fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT w.id, w.pid, w.host, w.queues, w.slots, w.started_at, w.heartbeat_at, \
                 w.stop, (SELECT COUNT(*) FROM jobs j WHERE j.runner = w.id \
                 AND j.state = 'processing') FROM workers w ORDER BY w.id",
            )?;
            let rows = stmt.query_map([], |row| {
                let queues: String = row.get(3)?;
                Ok(WorkerInfo {
                    id: row.get(0)?,
                    pid: row.get(1)?,
                    host: row.get(2)?,
                    queues: serde_json::from_str(&queues).unwrap_or_default(),
                    slots: row.get(4)?,
                    started_at: row.get(5)?,
                    heartbeat_at: row.get(6)?,
                    stop: row.get(7)?,
                    busy: row.get(8)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Takes back the jobs of dead workers. A worker is dead when its
    /// heartbeat is older than `stale_before`, or when it ran on `host` and
    /// `alive(pid)` says its process is gone. Also reclaims any job whose
    /// lease expired. A lost attempt counts: the job is retried at once, or
    /// is dead when it has no retries left.
    pub fn reclaim(
        &mut self,
        host: &str,
        stale_before: i64,
        now: i64,
        alive: impl Fn(u32) -> bool,
    ) -> Result<Reclaimed> {
        self.write(|tx| {
            let mut reclaimed = Reclaimed::default();
            let candidates: Vec<(i64, u32, String, i64)> = tx
                .prepare_cached("SELECT id, pid, host, heartbeat_at FROM workers")?
                .query_map([], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            for (id, pid, worker_host, heartbeat_at) in candidates {
                let dead = heartbeat_at < stale_before || (worker_host == host && !alive(pid));
                if dead {
                    tx.execute("DELETE FROM workers WHERE id = ?1", [id])?;
                    reclaimed.workers.push((pid, worker_host));
                }
            }
            tx.execute(
                &format!(
                    "UPDATE attempts SET outcome = 'lost', finished_at = ?1, error = '{LOST}' \
                     WHERE outcome IS NULL AND (job_id, run) IN \
                     (SELECT id, runs FROM jobs WHERE {LOST_JOBS})"
                ),
                [now],
            )?;
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE jobs SET \
                 state = CASE WHEN attempts > max_retries THEN 'dead' ELSE 'failed' END, \
                 finished_at = CASE WHEN attempts > max_retries THEN ?1 END, \
                 run_at = ?1, runner = NULL, lease_until = NULL, updated_at = ?1, \
                 last_error = '{LOST}' WHERE {LOST_JOBS} RETURNING id, state"
            ))?;
            let rows = stmt.query_map([now], |row| {
                let state: String = row.get(1)?;
                Ok((row.get(0)?, state == "dead"))
            })?;
            for row in rows {
                reclaimed.jobs.push(row?);
            }
            drop(stmt);
            if reclaimed.jobs.iter().any(|(_, dead)| *dead) {
                super::jobs::cancel_blocked(tx, now)?;
            }
            Ok(reclaimed)
        })
    }
}
