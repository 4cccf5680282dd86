//! Worker processes: registration under an id of their own, heartbeats
//! with lease renewal, stop requests, and the rescue of the jobs of
//! workers declared dead.
//!
//! Who is dead is not decided here: the caller judges by what it saw
//! ([`crate::runtime`]'s liveness), and [`Store::declare_dead`] removes
//! the workers it names only if their heartbeat is still the one the
//! caller saw, so a worker that just proved it is alive is never removed.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::Store;
use super::jobs::{from_json, to_json};
use crate::error::Result;
use crate::job::JobState;
use crate::retry::{Decision, RetryPolicy};

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
    /// Empty: every queue.
    pub queues: Vec<String>,
    pub slots: u32,
    pub busy: u32,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// How long it may stay silent before it is declared dead.
    pub lease_ms: i64,
    /// `drain` or `force` once `worker stop` asked it to stop.
    pub stop: Option<String>,
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

/// What a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    /// The worker is registered; its stop request, if any (`drain`/`force`).
    Alive(Option<String>),
    /// Its row is gone: another worker declared it dead and rescued its jobs.
    Gone,
}

/// What a rescue did.
#[derive(Debug, Default)]
pub struct Reclaimed {
    /// Workers removed: (id, pid, host).
    pub workers: Vec<(i64, u32, String)>,
    /// Jobs taken back: (id, now dead?).
    pub jobs: Vec<(String, bool)>,
}

const LOST: &str = "the worker running it was lost";

impl Store {
    /// Registers a worker process.
    pub fn register_worker(&mut self, worker: &Registration<'_>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO workers (id, pid, host, process_view, queues, slots, lease_ms, \
                 started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    worker.id,
                    worker.pid,
                    worker.host,
                    worker.process_view,
                    to_json(worker.queues),
                    worker.slots,
                    worker.lease_ms,
                    worker.now
                ],
            )?;
            Ok(())
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
    /// `lease_until`; or finds that it was declared dead.
    pub fn heartbeat(&mut self, runner: i64, lease_until: i64, now: i64) -> Result<Heartbeat> {
        self.write(|tx| {
            let stop: Option<Option<String>> = tx
                .prepare_cached(
                    "UPDATE workers SET heartbeat_at = ?2 WHERE id = ?1 RETURNING stop",
                )?
                .query_row(params![runner, now], |row| row.get(0))
                .optional()?;
            let Some(stop) = stop else {
                return Ok(Heartbeat::Gone);
            };
            tx.prepare_cached(
                "UPDATE jobs SET lease_until = ?2 WHERE runner = ?1 AND state = 'processing'",
            )?
            .execute(params![runner, lease_until])?;
            Ok(Heartbeat::Alive(stop))
        })
    }

    /// The stop request of `runner`, read without writing; [`Heartbeat::Gone`]
    /// when it was declared dead.
    pub fn stop_request(&self, runner: i64) -> Result<Heartbeat> {
        self.read(|conn| {
            let stop: Option<Option<String>> = conn
                .prepare_cached("SELECT stop FROM workers WHERE id = ?1")?
                .query_row([runner], |row| row.get(0))
                .optional()?;
            Ok(stop.map_or(Heartbeat::Gone, Heartbeat::Alive))
        })
    }

    /// The jobs these workers are running: (id, definition).
    pub fn running_jobs(&self, runners: &[i64]) -> Result<Vec<(String, Option<String>)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, definition FROM jobs WHERE runner = ?1 AND state = 'processing' \
                 ORDER BY id",
            )?;
            let mut jobs = Vec::new();
            for runner in runners {
                for row in stmt.query_map([runner], |row| Ok((row.get(0)?, row.get(1)?)))? {
                    jobs.push(row?);
                }
            }
            Ok(jobs)
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
                "SELECT w.id, w.pid, w.host, w.process_view, w.queues, w.slots, w.started_at, \
                 w.heartbeat_at, w.lease_ms, w.stop, (SELECT COUNT(*) FROM jobs j \
                 WHERE j.runner = w.id AND j.state = 'processing') FROM workers w \
                 ORDER BY w.started_at, w.id",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(WorkerInfo {
                    id: row.get(0)?,
                    pid: row.get(1)?,
                    host: row.get(2)?,
                    process_view: row.get(3)?,
                    queues: from_json(row, 4)?,
                    slots: row.get(5)?,
                    started_at: row.get(6)?,
                    heartbeat_at: row.get(7)?,
                    lease_ms: row.get(8)?,
                    stop: row.get(9)?,
                    busy: row.get(10)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Whether some job runs under a worker that is no longer registered.
    pub fn has_orphaned_jobs(&self) -> Result<bool> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM jobs j WHERE state = 'processing' AND \
                     (runner IS NULL OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.runner)))",
                )?
                .query_row([], |row| row.get(0))?)
        })
    }

    /// Removes the workers named (id, the heartbeat the caller saw) unless
    /// they heartbeated since, and rescues every job whose worker is no
    /// longer registered: its attempt is `lost` and counts, and the job's
    /// retry policy decides (a retry after its backoff, or dead). `random`
    /// in `[0, 1)` feeds jitter. One transaction.
    pub fn declare_dead(
        &mut self,
        dead: &[(i64, i64)],
        now: i64,
        random: f64,
    ) -> Result<Reclaimed> {
        self.write(|tx| {
            let mut reclaimed = Reclaimed::default();
            let mut remove = tx.prepare_cached(
                "DELETE FROM workers WHERE id = ?1 AND heartbeat_at = ?2 RETURNING pid, host",
            )?;
            for &(id, heartbeat_at) in dead {
                if let Some((pid, host)) = remove
                    .query_row(params![id, heartbeat_at], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()?
                {
                    reclaimed.workers.push((id, pid, host));
                }
            }
            let lost: Vec<(String, u32, RetryPolicy)> = tx
                .prepare_cached(
                    "SELECT id, attempts, max_retries, backoff_base, max_delay_ms, jitter, \
                     no_retry_codes FROM jobs j \
                     WHERE state = 'processing' AND (runner IS NULL \
                     OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.runner))",
                )?
                .query_map([], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        RetryPolicy {
                            max_retries: row.get(2)?,
                            backoff_base: row.get(3)?,
                            max_delay_ms: row.get(4)?,
                            jitter: row.get(5)?,
                            no_retry_exit_codes: from_json(row, 6)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut attempt = tx.prepare_cached(
                "UPDATE attempts SET outcome = 'lost', finished_at = ?2, error = ?3 \
                 WHERE job_id = ?1 AND run = (SELECT runs FROM jobs WHERE id = ?1) \
                 AND outcome IS NULL",
            )?;
            let mut job = tx.prepare_cached(
                "UPDATE jobs SET state = ?2, run_at = ?3, finished_at = ?4, runner = NULL, \
                 lease_until = NULL, cancel_requested = 0, updated_at = ?5, last_error = ?6 \
                 WHERE id = ?1 AND state = 'processing'",
            )?;
            let mut any_dead = false;
            for (id, attempts, policy) in lost {
                // The lost attempt failed with no exit code.
                let (state, run_at) = match policy.decide(attempts, None, random) {
                    Decision::Retry(delay) => (
                        JobState::Failed,
                        now.saturating_add(crate::duration::as_millis_i64(delay)),
                    ),
                    Decision::Dead(_) => (JobState::Dead, now),
                };
                let dead = state == JobState::Dead;
                attempt.execute(params![id, now, LOST])?;
                job.execute(params![
                    id,
                    state.as_str(),
                    run_at,
                    dead.then_some(now),
                    now,
                    LOST
                ])?;
                any_dead |= dead;
                reclaimed.jobs.push((id, dead));
            }
            if any_dead {
                super::jobs::cancel_blocked(tx, now)?;
            }
            Ok(reclaimed)
        })
    }
}
