//! Cron schedules' memory in SQLite: each schedule's last tick (which
//! never moves back), and whether a tick's job exists (a tick is a unique
//! key of the jobs of its definition).

use rusqlite::{OptionalExtension, params};

use super::SqliteOps;
use crate::driver::{ScheduleRow, Triggers};
use crate::error::Result;

impl Triggers for SqliteOps<'_> {
    fn schedule(&mut self, definition: &str) -> Result<Option<ScheduleRow>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT expression, timezone, last_tick, checked_at, missed, missed_at \
                 FROM schedules WHERE definition = ?1",
            )?
            .query_row([definition], |row| {
                Ok(ScheduleRow {
                    expression: row.get("expression")?,
                    timezone: row.get("timezone")?,
                    last_tick: row.get("last_tick")?,
                    checked_at: row.get("checked_at")?,
                    missed: row.get("missed")?,
                    missed_at: row.get("missed_at")?,
                })
            })
            .optional()?)
    }

    fn record_schedule(&mut self, definition: &str, row: &ScheduleRow) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO schedules (definition, expression, timezone, last_tick, checked_at, \
                 missed, missed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (definition) DO UPDATE SET \
                 missed = CASE WHEN expression = excluded.expression \
                     AND timezone = excluded.timezone THEN missed + excluded.missed \
                     ELSE excluded.missed END, \
                 missed_at = CASE WHEN expression = excluded.expression \
                     AND timezone = excluded.timezone \
                     THEN COALESCE(excluded.missed_at, missed_at) ELSE excluded.missed_at END, \
                 expression = excluded.expression, timezone = excluded.timezone, \
                 last_tick = MAX(last_tick, excluded.last_tick), checked_at = excluded.checked_at",
            )?
            .execute(params![
                definition,
                row.expression,
                row.timezone,
                row.last_tick,
                row.checked_at,
                row.missed,
                row.missed_at
            ])?;
        Ok(())
    }

    fn tick_enqueued(&mut self, definition: &str, tick: i64) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE definition = ?1 AND tick_at = ?2)",
            )?
            .query_row(params![definition, tick], |row| row.get(0))?)
    }
}
