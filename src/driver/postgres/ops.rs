//! Definitions, cron schedules and worker processes on PostgreSQL: the
//! statements of SQLite's `definitions.rs`, `triggers.rs` and
//! `workers.rs`, in PostgreSQL's dialect.

use std::collections::BTreeMap;

use super::PgOps;
use super::jobs::big;
use super::rows::{self, LATEST_COLUMNS, ORPHAN_COLUMNS, WAITING_COLUMNS, to_json};
use crate::driver::{
    Definitions, JobRef, LatestRun, Orphan, Presence, Registration, ScheduleRow, StopMode,
    Triggers, Waiter, WaitingJob, WorkerInfo, Workers,
};
use crate::error::Result;
use crate::job::JobState;

impl Definitions for PgOps<'_> {
    fn latest_runs(&mut self) -> Result<BTreeMap<String, LatestRun>> {
        self.conn
            .rows(
                &format!("SELECT {LATEST_COLUMNS} FROM queuectl_definitions"),
                &[],
            )?
            .iter()
            .map(rows::latest)
            .collect()
    }

    fn latest_states(&mut self, names: &[String]) -> Result<Vec<Option<JobState>>> {
        let mut states = Vec::with_capacity(names.len());
        for name in names {
            states.push(
                self.conn
                    .row(
                        "SELECT state FROM queuectl_definitions WHERE name = $1",
                        &[name],
                    )?
                    .map(|row| rows::state(&row, "state"))
                    .transpose()?,
            );
        }
        Ok(states)
    }

    fn latest_job(&mut self, name: &str) -> Result<Option<String>> {
        self.conn
            .row(
                "SELECT job_id FROM queuectl_definitions WHERE name = $1",
                &[&name],
            )?
            .map(|row| rows::get(&row, "job_id"))
            .transpose()
    }

    fn mark_removed(&mut self, declared: &[String], now: i64) -> Result<()> {
        self.conn.exec(
            "UPDATE queuectl_definitions SET removed_at = $2 WHERE removed_at IS NULL \
             AND name <> ALL($1::text[])",
            &[&declared, &now],
        )?;
        self.conn.exec(
            "UPDATE queuectl_definitions SET removed_at = NULL WHERE removed_at IS NOT NULL \
             AND name = ANY($1::text[])",
            &[&declared],
        )?;
        Ok(())
    }

    fn waiting_of_definitions(&mut self) -> Result<Vec<WaitingJob>> {
        self.conn
            .rows(
                &format!(
                    "SELECT {WAITING_COLUMNS} FROM queuectl_jobs WHERE definition IS NOT NULL \
                     AND state IN ('pending', 'failed') ORDER BY id"
                ),
                &[],
            )?
            .iter()
            .map(rows::waiting)
            .collect()
    }

    fn waiting_for(&mut self, definition: &str) -> Result<Vec<Waiter>> {
        self.conn
            .rows(
                "SELECT j.id, j.definition, j.after_deps, j.blocked FROM queuectl_jobs j \
                 WHERE j.after_deps IS NOT NULL AND j.state IN ('pending', 'failed') \
                 AND j.after_deps::jsonb ? $1 ORDER BY j.id",
                &[&definition],
            )?
            .iter()
            .map(|row| {
                Ok(Waiter {
                    id: rows::get(row, "id")?,
                    definition: rows::get(row, "definition")?,
                    after: rows::json_or_empty(row, "after_deps")?,
                    blocked: rows::get(row, "blocked")?,
                })
            })
            .collect()
    }

    fn definition_jobs(&mut self, definition: &str, states: &[JobState]) -> Result<Vec<JobRef>> {
        let wanted: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        self.conn
            .rows(
                "SELECT id, state, origin, payload FROM queuectl_jobs WHERE definition = $1 \
                 AND state = ANY($2::text[]) ORDER BY created_at, id",
                &[&definition, &wanted],
            )?
            .iter()
            .map(|row| {
                Ok(JobRef {
                    id: rows::get(row, "id")?,
                    state: rows::state(row, "state")?,
                    origin: rows::origin(row, "origin")?,
                    payload: rows::json_or_none(row, "payload")?,
                })
            })
            .collect()
    }

    fn queue_limits(&mut self) -> Result<BTreeMap<String, u32>> {
        self.conn
            .rows("SELECT name, workers FROM queuectl_queues", &[])?
            .iter()
            .map(|row| Ok((rows::get(row, "name")?, rows::count(row, "workers")?)))
            .collect()
    }

    fn set_queue_limit(&mut self, name: &str, workers: Option<u32>) -> Result<()> {
        match workers {
            Some(workers) => self.conn.exec(
                "INSERT INTO queuectl_queues (name, workers) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET workers = excluded.workers",
                &[&name, &big(workers)],
            )?,
            None => self
                .conn
                .exec("DELETE FROM queuectl_queues WHERE name = $1", &[&name])?,
        };
        Ok(())
    }

    fn paused_queues(&mut self) -> Result<BTreeMap<String, i64>> {
        self.conn
            .rows("SELECT name, since FROM queuectl_paused_queues", &[])?
            .iter()
            .map(|row| Ok((rows::get(row, "name")?, rows::get(row, "since")?)))
            .collect()
    }

    fn set_paused(&mut self, name: &str, since: Option<i64>) -> Result<bool> {
        let changed = match since {
            Some(since) => self.conn.exec(
                "INSERT INTO queuectl_paused_queues (name, since) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &since],
            )?,
            None => self.conn.exec(
                "DELETE FROM queuectl_paused_queues WHERE name = $1",
                &[&name],
            )?,
        };
        Ok(changed > 0)
    }
}

impl Triggers for PgOps<'_> {
    fn schedule(&mut self, definition: &str) -> Result<Option<ScheduleRow>> {
        self.conn
            .row(
                "SELECT expression, timezone, last_tick, checked_at, missed, missed_at \
                 FROM queuectl_schedules WHERE definition = $1",
                &[&definition],
            )?
            .map(|row| {
                Ok(ScheduleRow {
                    expression: rows::get(&row, "expression")?,
                    timezone: rows::get(&row, "timezone")?,
                    last_tick: rows::get(&row, "last_tick")?,
                    checked_at: rows::get(&row, "checked_at")?,
                    missed: rows::count(&row, "missed")?,
                    missed_at: rows::get(&row, "missed_at")?,
                })
            })
            .transpose()
    }

    fn record_schedule(&mut self, definition: &str, row: &ScheduleRow) -> Result<()> {
        self.conn.exec(
            "INSERT INTO queuectl_schedules AS s (definition, expression, timezone, last_tick, \
             checked_at, missed, missed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (definition) DO UPDATE SET \
             missed = CASE WHEN s.expression = excluded.expression \
                 AND s.timezone = excluded.timezone THEN s.missed + excluded.missed \
                 ELSE excluded.missed END, \
             missed_at = CASE WHEN s.expression = excluded.expression \
                 AND s.timezone = excluded.timezone \
                 THEN COALESCE(excluded.missed_at, s.missed_at) ELSE excluded.missed_at END, \
             expression = excluded.expression, timezone = excluded.timezone, \
             last_tick = GREATEST(s.last_tick, excluded.last_tick), \
             checked_at = excluded.checked_at",
            &[
                &definition,
                &row.expression,
                &row.timezone,
                &row.last_tick,
                &row.checked_at,
                &i64::try_from(row.missed).unwrap_or(i64::MAX),
                &row.missed_at,
            ],
        )?;
        Ok(())
    }

    fn tick_enqueued(&mut self, definition: &str, tick: i64) -> Result<bool> {
        Ok(self
            .conn
            .row(
                "SELECT 1 FROM queuectl_jobs WHERE definition = $1 AND tick_at = $2",
                &[&definition, &tick],
            )?
            .is_some())
    }
}

impl Workers for PgOps<'_> {
    fn register_worker(&mut self, worker: &Registration<'_>) -> Result<()> {
        self.conn.exec(
            "INSERT INTO queuectl_workers (id, pid, host, process_view, queues, slots, lease_ms, \
             started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            &[
                &worker.id,
                &big(worker.pid),
                &worker.host,
                &worker.process_view,
                &to_json(worker.queues),
                &big(worker.slots),
                &worker.lease_ms,
                &worker.now,
            ],
        )?;
        Ok(())
    }

    fn update_worker(&mut self, id: i64, queues: &[String], slots: u32) -> Result<()> {
        self.conn.exec(
            "UPDATE queuectl_workers SET queues = $2, slots = $3 WHERE id = $1",
            &[&id, &to_json(queues), &big(slots)],
        )?;
        Ok(())
    }

    fn touch_worker(&mut self, id: i64, now: i64) -> Result<Presence> {
        let row = self.conn.row(
            "UPDATE queuectl_workers SET heartbeat_at = $2 WHERE id = $1 RETURNING stop",
            &[&id, &now],
        )?;
        presence(row)
    }

    fn extend_leases(&mut self, runner: i64, until: i64) -> Result<()> {
        self.conn.exec(
            "UPDATE queuectl_jobs SET lease_until = $2 WHERE runner = $1 AND state = 'processing'",
            &[&runner, &until],
        )?;
        Ok(())
    }

    fn presence(&mut self, id: i64) -> Result<Presence> {
        let row = self
            .conn
            .row("SELECT stop FROM queuectl_workers WHERE id = $1", &[&id])?;
        presence(row)
    }

    fn request_stop(&mut self, mode: StopMode) -> Result<()> {
        self.conn.exec(
            "UPDATE queuectl_workers SET stop = $1 WHERE stop IS NULL OR stop <> 'force'",
            &[&mode.as_str()],
        )?;
        Ok(())
    }

    fn remove_workers(&mut self, seen: &[(i64, i64)]) -> Result<Vec<(i64, u32, String)>> {
        let mut removed = Vec::new();
        for (id, heartbeat_at) in seen {
            if let Some(row) = self.conn.row(
                "DELETE FROM queuectl_workers WHERE id = $1 AND heartbeat_at = $2 \
                 RETURNING pid, host",
                &[id, heartbeat_at],
            )? {
                removed.push((*id, rows::count(&row, "pid")?, rows::get(&row, "host")?));
            }
        }
        Ok(removed)
    }

    fn deregister_worker(&mut self, id: i64) -> Result<()> {
        self.conn
            .exec("DELETE FROM queuectl_workers WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn workers(&mut self) -> Result<Vec<WorkerInfo>> {
        self.conn
            .rows(
                "SELECT w.id, w.pid, w.host, w.process_view, w.queues, w.slots, w.started_at, \
                 w.heartbeat_at, w.lease_ms, w.stop, (SELECT COUNT(*) FROM queuectl_jobs j \
                 WHERE j.runner = w.id AND j.state = 'processing') AS busy \
                 FROM queuectl_workers w ORDER BY w.started_at, w.id",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(WorkerInfo {
                    id: rows::get(row, "id")?,
                    pid: rows::count(row, "pid")?,
                    host: rows::get(row, "host")?,
                    process_view: rows::get(row, "process_view")?,
                    queues: rows::json(row, "queues")?,
                    slots: rows::count(row, "slots")?,
                    started_at: rows::get(row, "started_at")?,
                    heartbeat_at: rows::get(row, "heartbeat_at")?,
                    lease_ms: rows::get(row, "lease_ms")?,
                    stop: rows::get::<Option<String>>(row, "stop")?
                        .as_deref()
                        .and_then(StopMode::parse),
                    busy: rows::count(row, "busy")?,
                })
            })
            .collect()
    }

    fn running_jobs(&mut self, runners: &[i64]) -> Result<Vec<(String, Option<String>)>> {
        let mut jobs = Vec::new();
        for runner in runners {
            for row in self.conn.rows(
                "SELECT id, definition FROM queuectl_jobs WHERE runner = $1 \
                 AND state = 'processing' ORDER BY id",
                &[runner],
            )? {
                jobs.push((rows::get(&row, "id")?, rows::get(&row, "definition")?));
            }
        }
        Ok(jobs)
    }

    fn cancel_requests(&mut self, runner: i64) -> Result<Vec<String>> {
        self.conn
            .rows(
                "SELECT id FROM queuectl_jobs WHERE runner = $1 AND state = 'processing' \
                 AND cancel_requested ORDER BY id",
                &[&runner],
            )?
            .iter()
            .map(|row| rows::get(row, "id"))
            .collect()
    }

    fn orphaned_jobs(&mut self) -> Result<Vec<Orphan>> {
        self.conn
            .rows(
                &format!(
                    "SELECT {ORPHAN_COLUMNS} FROM queuectl_jobs j WHERE state = 'processing' \
                     AND (runner IS NULL OR NOT EXISTS \
                     (SELECT 1 FROM queuectl_workers w WHERE w.id = j.runner)) ORDER BY id"
                ),
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(Orphan {
                    id: rows::get(row, "id")?,
                    definition: rows::get(row, "definition")?,
                    attempts: rows::count(row, "attempts")?,
                    retry: rows::retry(row)?,
                })
            })
            .collect()
    }
}

/// A stop column as read: the row gone, or its stop request.
fn presence(row: Option<postgres::Row>) -> Result<Presence> {
    Ok(match row {
        None => Presence::Gone,
        Some(row) => Presence::Alive(
            rows::get::<Option<String>>(&row, "stop")?
                .as_deref()
                .and_then(StopMode::parse),
        ),
    })
}
