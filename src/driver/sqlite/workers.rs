//! Worker processes in SQLite: registration under a random id, heartbeats
//! with lease renewal, stop requests, and the reads of a rescue. Who is
//! dead is not decided here: [`Workers::remove_workers`] removes only the
//! workers whose heartbeat is still the one the caller saw, so a worker
//! that just proved it is alive is never removed.

use rusqlite::{OptionalExtension, params};

use super::SqliteOps;
use super::rows::{self, to_json};
use crate::driver::{Orphan, Presence, Registration, StopMode, WorkerInfo, Workers};
use crate::error::Result;

impl Workers for SqliteOps<'_> {
    fn register_worker(&mut self, worker: &Registration<'_>) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO workers (id, pid, host, process_view, queues, slots, lease_ms, \
                 started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            )?
            .execute(params![
                worker.id,
                worker.pid,
                worker.host,
                worker.process_view,
                to_json(worker.queues),
                worker.slots,
                worker.lease_ms,
                worker.now
            ])?;
        Ok(())
    }

    fn update_worker(&mut self, id: i64, queues: &[String], slots: u32) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE workers SET queues = ?2, slots = ?3 WHERE id = ?1")?
            .execute(params![id, to_json(queues), slots])?;
        Ok(())
    }

    fn touch_worker(&mut self, id: i64, now: i64) -> Result<Presence> {
        let stop: Option<Option<String>> = self
            .conn
            .prepare_cached("UPDATE workers SET heartbeat_at = ?2 WHERE id = ?1 RETURNING stop")?
            .query_row(params![id, now], |row| row.get(0))
            .optional()?;
        Ok(presence(stop))
    }

    fn extend_leases(&mut self, runner: i64, until: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE jobs SET lease_until = ?2 WHERE runner = ?1 AND state = 'processing'",
            )?
            .execute(params![runner, until])?;
        Ok(())
    }

    fn presence(&mut self, id: i64) -> Result<Presence> {
        let stop: Option<Option<String>> = self
            .conn
            .prepare_cached("SELECT stop FROM workers WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?;
        Ok(presence(stop))
    }

    fn request_stop(&mut self, mode: StopMode) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE workers SET stop = ?1 WHERE stop IS NULL OR stop != 'force'")?
            .execute([mode.as_str()])?;
        Ok(())
    }

    fn remove_workers(&mut self, seen: &[(i64, i64)]) -> Result<Vec<(i64, u32, String)>> {
        let mut remove = self.conn.prepare_cached(
            "DELETE FROM workers WHERE id = ?1 AND heartbeat_at = ?2 RETURNING pid, host",
        )?;
        let mut removed = Vec::new();
        for &(id, heartbeat_at) in seen {
            if let Some((pid, host)) = remove
                .query_row(params![id, heartbeat_at], |row| {
                    Ok((row.get("pid")?, row.get("host")?))
                })
                .optional()?
            {
                removed.push((id, pid, host));
            }
        }
        Ok(removed)
    }

    fn deregister_worker(&mut self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM workers WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    fn workers(&mut self) -> Result<Vec<WorkerInfo>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT w.id, w.pid, w.host, w.process_view, w.queues, w.slots, w.started_at, \
             w.heartbeat_at, w.lease_ms, w.stop, (SELECT COUNT(*) FROM jobs j \
             WHERE j.runner = w.id AND j.state = 'processing') AS busy FROM workers w \
             ORDER BY w.started_at, w.id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(WorkerInfo {
                id: row.get("id")?,
                pid: row.get("pid")?,
                host: row.get("host")?,
                process_view: row.get("process_view")?,
                queues: rows::json(row, "queues")?,
                slots: row.get("slots")?,
                started_at: row.get("started_at")?,
                heartbeat_at: row.get("heartbeat_at")?,
                lease_ms: row.get("lease_ms")?,
                stop: row
                    .get::<_, Option<String>>("stop")?
                    .as_deref()
                    .and_then(StopMode::parse),
                busy: row.get("busy")?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn running_jobs(&mut self, runners: &[i64]) -> Result<Vec<(String, Option<String>)>> {
        let mut stmt = self.conn.prepare_cached(
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
    }

    fn cancel_requests(&mut self, runner: i64) -> Result<Vec<String>> {
        // Sorted here: an ORDER BY would cost a temporary b-tree on every
        // look the supervisor takes, for the few running jobs.
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM jobs WHERE runner = ?1 AND state = 'processing' \
             AND cancel_requested = 1",
        )?;
        let rows = stmt.query_map([runner], |row| row.get(0))?;
        let mut ids: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    fn orphaned_jobs(&mut self) -> Result<Vec<Orphan>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM jobs j WHERE state = 'processing' AND (runner IS NULL \
             OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.runner)) ORDER BY id",
            rows::orphan::COLUMNS
        ))?;
        let rows = stmt.query_map([], |row| {
            use rows::orphan as c;
            Ok(Orphan {
                id: row.get(c::id)?,
                definition: row.get(c::definition)?,
                attempts: row.get(c::attempts)?,
                retry: rows::retry(row, c::max_retries)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A stop column as read: the row gone, or its stop request.
fn presence(stop: Option<Option<String>>) -> Presence {
    match stop {
        None => Presence::Gone,
        Some(stop) => Presence::Alive(stop.as_deref().and_then(StopMode::parse)),
    }
}
