//! Jobs and attempts in SQLite: inserts, the claim, the decided ends of
//! attempts, and the reads of the commands.

use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::SqliteOps;
use super::definitions::{follow, record_new};
use super::rows::{self, CLAIMED_COLUMNS, JOB_COLUMNS, deps_json, to_json};
use crate::driver::{
    ClaimParams, Counts, DlqStat, FinishParams, JobFilter, JobUpdate, Jobs, LostParams,
    MinuteCount, Moved, QueueFilter, Tally,
};
use crate::error::{Error, Result};
use crate::job::{Attempt, Claimed, Job, JobState, NewJob, Payload};

impl Jobs for SqliteOps<'_> {
    fn insert_jobs(&mut self, jobs: &[NewJob]) -> Result<()> {
        // New rows take row ids above the largest (see migration 12).
        let before: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(rowid), 0) FROM jobs")?
            .query_row([], |row| row.get(0))?;
        for job in jobs {
            insert(self.conn, job)?;
            if job.definition.is_some() {
                record_new(self.conn, job)?;
            }
        }
        self.conn
            .prepare_cached(
                "INSERT INTO jobs_text (rowid, command) \
                 SELECT rowid, command FROM jobs WHERE rowid > ?1 ORDER BY rowid",
            )?
            .execute([before])?;
        Ok(())
    }

    fn claim_jobs(&mut self, params: &ClaimParams<'_>) -> Result<Vec<Claimed>> {
        let mut claimed = Vec::new();
        // One at a time: each claim sees the ones before it, so two jobs of
        // one exclusive key never start together.
        while claimed.len() < params.limit {
            match claim_one(self.conn, params)? {
                Some(job) => claimed.push(job),
                None => break,
            }
        }
        Ok(claimed)
    }

    fn claimable(&mut self, params: &ClaimParams<'_>) -> Result<bool> {
        Ok(find_claimable(self.conn, params)?.is_some())
    }

    fn finish_attempts(&mut self, finishes: &[FinishParams<'_>]) -> Result<Vec<bool>> {
        let mut owned = Vec::with_capacity(finishes.len());
        for finish in finishes {
            owned.push(finish_one(self.conn, finish)?);
        }
        Ok(owned)
    }

    fn cancel_waiting(&mut self, ids: &[String], reason: &str, now: i64) -> Result<Vec<Moved>> {
        move_each(
            self.conn,
            "UPDATE jobs SET state = 'cancelled', reason = ?2, finished_at = ?3, updated_at = ?3 \
             WHERE id = ?1 AND state IN ('pending', 'failed') RETURNING definition",
            ids,
            &[&reason, &now],
        )
    }

    fn request_cancel(&mut self, ids: &[String], reason: Option<&str>, now: i64) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE jobs SET cancel_requested = 1, reason = COALESCE(?2, reason), updated_at = ?3 \
             WHERE id = ?1 AND state = 'processing' RETURNING definition",
        )?;
        for id in ids {
            let definition: Option<Option<String>> = stmt
                .query_row(params![id, reason, now], |row| row.get(0))
                .optional()?;
            if definition.flatten().is_some() {
                follow(self.conn, id)?;
            }
        }
        Ok(())
    }

    fn set_blocked(&mut self, ids: &[String], blocked: bool) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE jobs SET blocked = ?2 WHERE id = ?1")?;
        for id in ids {
            stmt.execute(params![id, blocked])?;
        }
        Ok(())
    }

    fn requeue_dead(
        &mut self,
        ids: &[String],
        keep_attempts: bool,
        now: i64,
    ) -> Result<Vec<Moved>> {
        move_each(
            self.conn,
            "UPDATE jobs SET state = 'pending', run_at = ?2, updated_at = ?2, \
             finished_at = NULL, reason = NULL, attempts = CASE WHEN ?3 THEN attempts ELSE 0 END \
             WHERE id = ?1 AND state = 'dead' RETURNING definition",
            ids,
            &[&now, &keep_attempts],
        )
    }

    fn delete_jobs(&mut self, ids: &[String]) -> Result<Vec<(String, u32)>> {
        // Out of the text index first, all in one statement (migration 12).
        let ids_json = crate::driver::to_json(ids);
        mending_text_index(self.conn, || {
            self.conn
                .prepare_cached(
                    "INSERT INTO jobs_text (jobs_text, rowid, command) \
                     SELECT 'delete', rowid, command FROM jobs \
                     WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY rowid",
                )?
                .execute([&ids_json])
        })?;
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM jobs WHERE id = ?1 RETURNING runs")?;
        let mut deleted = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(runs) = stmt.query_row([id], |row| row.get(0)).optional()? {
                deleted.push((id.clone(), runs));
            }
        }
        Ok(deleted)
    }

    fn update_waiting(&mut self, id: &str, update: &JobUpdate<'_>) -> Result<()> {
        // A new command moves the job in the text index (a trigger).
        let changed = mending_text_index(self.conn, || {
            self.conn
                .prepare_cached(
                    "UPDATE jobs SET command = ?2, env = ?3, cwd = ?4, queue = ?5, priority = ?6, \
                 timeout_ms = ?7, max_retries = ?8, backoff_base = ?9, max_delay_ms = ?10, \
                 jitter = ?11, no_retry_codes = ?12, after_deps = ?13, spec_hash = ?14, \
                 updated_at = ?15 WHERE id = ?1 AND state IN ('pending', 'failed')",
                )?
                .execute(params![
                    id,
                    update.command,
                    to_json(update.env),
                    update.cwd,
                    update.queue,
                    update.priority,
                    update.timeout_ms,
                    update.retry.max_retries,
                    update.retry.backoff_base,
                    update.retry.max_delay_ms,
                    update.retry.jitter,
                    to_json(&update.retry.no_retry_exit_codes),
                    deps_json(update.after),
                    update.spec_hash,
                    update.now,
                ])
        })?;
        if changed > 0 {
            follow(self.conn, id)?;
        }
        Ok(())
    }

    fn set_payload(&mut self, id: &str, payload: &Payload, now: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE jobs SET payload = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![id, to_json(payload), now])?;
        Ok(())
    }

    fn set_lost(&mut self, lost: &[LostParams<'_>]) -> Result<()> {
        let mut attempt = self.conn.prepare_cached(
            "UPDATE attempts SET outcome = 'lost', finished_at = ?2, error = ?3 \
             WHERE job_id = ?1 AND run = (SELECT runs FROM jobs WHERE id = ?1) \
             AND outcome IS NULL",
        )?;
        let mut job = self.conn.prepare_cached(
            "UPDATE jobs SET state = ?2, run_at = ?3, finished_at = ?4, runner = NULL, \
             lease_until = NULL, cancel_requested = 0, updated_at = ?5, last_error = ?6 \
             WHERE id = ?1 AND state = 'processing' RETURNING definition",
        )?;
        for lost in lost {
            attempt.execute(params![lost.id, lost.now, lost.error])?;
            let definition: Option<Option<String>> = job
                .query_row(
                    params![
                        lost.id,
                        lost.state.as_str(),
                        lost.run_at,
                        lost.finished_at,
                        lost.now,
                        lost.error
                    ],
                    |row| row.get(0),
                )
                .optional()?;
            if definition.flatten().is_some() {
                follow(self.conn, lost.id)?;
            }
        }
        Ok(())
    }

    fn job(&mut self, id: &str) -> Result<Option<Job>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
            .query_row([id], rows::job)
            .optional()?)
    }

    fn job_states(&mut self, ids: &[String]) -> Result<Vec<Option<JobState>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state FROM jobs WHERE id = ?1")?;
        let mut states = Vec::with_capacity(ids.len());
        for id in ids {
            states.push(
                stmt.query_row([id], |row| rows::state(row, "state"))
                    .optional()?,
            );
        }
        Ok(states)
    }

    fn attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT run, started_at, finished_at, exit_code, outcome, error, output_bytes, \
             runner, host FROM attempts WHERE job_id = ?1 ORDER BY run",
        )?;
        let rows = stmt.query_map([id], |row| {
            Ok(Attempt {
                run: row.get("run")?,
                started_at: row.get("started_at")?,
                finished_at: row.get("finished_at")?,
                exit_code: row.get("exit_code")?,
                outcome: rows::outcome(row, "outcome")?,
                error: row.get("error")?,
                output_bytes: row.get("output_bytes")?,
                worker: row.get("runner")?,
                host: row.get("host")?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn list_jobs(&mut self, filter: &JobFilter) -> Result<Vec<Job>> {
        let state = filter.state.map(JobState::as_str);
        let rare = rare_text(self.conn, filter)?;
        let (conditions, mut args) = filter_conditions(filter, &state, &rare);
        let from = jobs_read_by(&rare);
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM {from} WHERE 1 = 1{conditions} \
             ORDER BY created_at DESC, id DESC LIMIT ?"
        );
        args.push(&filter.limit);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(args.as_slice(), rows::job)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn count_jobs(&mut self, filter: &JobFilter) -> Result<u64> {
        let state = filter.state.map(JobState::as_str);
        let rare = rare_text(self.conn, filter)?;
        let (conditions, args) = filter_conditions(filter, &state, &rare);
        let from = jobs_read_by(&rare);
        let sql = format!("SELECT COUNT(*) FROM {from} WHERE 1 = 1{conditions}");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.query_row(args.as_slice(), |row| row.get(0))?)
    }

    fn counts(&mut self) -> Result<Counts> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT queue, state, SUM(n) AS n FROM job_counts GROUP BY queue, state \
             HAVING SUM(n) > 0 ORDER BY queue",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get("queue")?, rows::state(row, "state")?, row.get("n")?))
        })?;
        Ok(Counts {
            rows: rows.collect::<rusqlite::Result<Vec<_>>>()?,
        })
    }

    fn unfinished_counts(&mut self) -> Result<(u64, u64, u64)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT state, SUM(n) AS n FROM job_counts \
             WHERE state IN ('pending', 'processing', 'failed') GROUP BY state",
        )?;
        let mut counts = (0, 0, 0);
        let rows = stmt.query_map([], |row| Ok((rows::state(row, "state")?, row.get("n")?)))?;
        for row in rows {
            match row? {
                (JobState::Pending, n) => counts.0 = n,
                (JobState::Processing, n) => counts.1 = n,
                (_, n) => counts.2 = n,
            }
        }
        Ok(counts)
    }

    fn has_unfinished(&mut self, queues: &QueueFilter) -> Result<bool> {
        let (filter, value) = queue_condition(queues, "queue", 1);
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM job_counts WHERE n > 0 \
             AND state IN ('pending', 'processing', 'failed') AND {filter})"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(match value {
            Some(v) => stmt.query_row([v], |row| row.get(0))?,
            None => stmt.query_row([], |row| row.get(0))?,
        })
    }

    fn next_run_at(&mut self, queues: &QueueFilter) -> Result<Option<i64>> {
        let (filter, value) = queue_condition(queues, "queue", 1);
        let sql = format!(
            "SELECT MIN(run_at) FROM jobs WHERE state IN ('pending', 'failed') AND blocked = 0 \
             AND {filter}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(match value {
            Some(v) => stmt.query_row([v], |row| row.get(0))?,
            None => stmt.query_row([], |row| row.get(0))?,
        })
    }

    fn finished_by_minute(&mut self, since: i64) -> Result<Vec<MinuteCount>> {
        let mut stmt = self.conn.prepare_cached(
            // The partial indexes' own conditions, word for word, so that
            // SQLite sees they apply: a range of `jobs_finished` and one of
            // `attempts_failed`, not a scan of every finished job.
            "SELECT 0 AS failed, finished_at / 60000 AS minute, COUNT(*) AS n \
             FROM jobs INDEXED BY jobs_finished \
             WHERE (state = 'completed' OR state = 'dead' OR state = 'cancelled') \
             AND state = 'completed' AND finished_at >= ?1 GROUP BY minute \
             UNION ALL \
             SELECT 1, finished_at / 60000, COUNT(*) FROM attempts INDEXED BY attempts_failed \
             WHERE (outcome = 'failed' OR outcome = 'timeout' OR outcome = 'lost') \
             AND finished_at >= ?1 GROUP BY 2 \
             ORDER BY minute, failed",
        )?;
        let rows = stmt.query_map([since], |row| {
            Ok(MinuteCount {
                minute: row.get("minute")?,
                tally: if row.get::<_, i64>("failed")? == 0 {
                    Tally::Completed
                } else {
                    Tally::Failed
                },
                count: row.get("n")?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn dlq_stats(&mut self) -> Result<Vec<DlqStat>> {
        let mut groups = self.conn.prepare_cached(
            "SELECT queue, code, n FROM job_counts WHERE state = 'dead' AND n > 0 \
             ORDER BY queue, n DESC",
        )?;
        let groups = groups
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, u64>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        // The newest of each group: one seek of the dead jobs' index.
        let mut newest = self.conn.prepare_cached(
            "SELECT MAX(finished_at) FROM jobs INDEXED BY jobs_dead \
             WHERE state = 'dead' AND queue = ?1 AND exit_code IS ?2",
        )?;
        let mut stats = Vec::with_capacity(groups.len());
        for (queue, code, count) in groups {
            // -1 stands for a dead job without an exit code.
            let exit_code = (code != -1).then_some(code);
            let newest_at = newest.query_row(params![queue, exit_code], |row| row.get(0))?;
            stats.push(DlqStat {
                queue,
                exit_code: exit_code.and_then(|c| i32::try_from(c).ok()),
                count,
                newest_at,
            });
        }
        Ok(stats)
    }

    fn dead_ids(&mut self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM jobs WHERE state = 'dead' ORDER BY id")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn finished_before(&mut self, states: &[JobState], before: i64) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM jobs WHERE state = ?1 AND finished_at < ?2")?;
        let mut ids = Vec::new();
        for state in states {
            for id in stmt.query_map(params![state.as_str(), before], |row| row.get(0))? {
                ids.push(id?);
            }
        }
        Ok(ids)
    }

    fn dead_beyond(&mut self, keep: u64, older_than: i64) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM jobs WHERE state = 'dead' AND (finished_at < ?1 OR id IN \
             (SELECT id FROM jobs WHERE state = 'dead' ORDER BY finished_at DESC \
             LIMIT -1 OFFSET ?2))",
        )?;
        let rows = stmt.query_map(params![older_than, keep], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn running_counts(&mut self, queues: &[String]) -> Result<Vec<u32>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COALESCE(SUM(n), 0) FROM job_counts WHERE queue = ?1 AND state = 'processing'",
        )?;
        let mut counts = Vec::with_capacity(queues.len());
        for queue in queues {
            counts.push(stmt.query_row([queue], |row| row.get(0))?);
        }
        Ok(counts)
    }
}

/// Runs a state change (`sql`, `?1` the id, then `args`, `RETURNING
/// definition`) on each job of `ids`; returns those it moved, their
/// definitions' latest runs following them.
fn move_each(
    conn: &Connection,
    sql: &str,
    ids: &[String],
    args: &[&dyn ToSql],
) -> Result<Vec<Moved>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut moved = Vec::new();
    for id in ids {
        let mut all: Vec<&dyn ToSql> = vec![id];
        all.extend_from_slice(args);
        let row: Option<Option<String>> = stmt
            .query_row(all.as_slice(), |row| row.get(0))
            .optional()?;
        if let Some(definition) = row {
            if definition.is_some() {
                follow(conn, id)?;
            }
            moved.push(Moved {
                id: id.clone(),
                definition,
            });
        }
    }
    Ok(moved)
}

/// Inserts one job; a duplicate id is an input error.
fn insert(conn: &Connection, job: &NewJob) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR FAIL INTO jobs (id, command, definition, origin, queue, priority, state, \
         max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, timeout_ms, env, \
         cwd, run_at, created_at, updated_at, spec_hash, source_commit, after_deps, tick_at, \
         inputs, payload, exclusive) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
         ?15, ?16, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
    )?;
    let result = insert.execute(params![
        job.id,
        job.command,
        job.definition,
        job.origin.as_str(),
        job.queue,
        job.priority,
        job.retry.max_retries,
        job.retry.backoff_base,
        job.retry.max_delay_ms,
        job.retry.jitter,
        to_json(&job.retry.no_retry_exit_codes),
        job.timeout_ms,
        to_json(&job.env),
        job.cwd,
        job.run_at,
        job.created_at,
        job.spec_hash,
        job.source_commit,
        deps_json(&job.after),
        job.tick_at,
        job.inputs.as_ref().map(to_json),
        job.payload.as_ref().map(to_json),
        job.exclusive,
    ]);
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_primary_key_violation(&e) => Err(Error::input_with_hint(
            format!("job id `{}` already exists", job.id),
            "choose another --id, or leave it out to get a generated one",
        )),
        Err(e) => Err(e.into()),
    }
}

/// What makes a waiting job claimable now, on a row of `jobs` named `c`:
/// not blocked, due, and no running job holds its exclusive key.
const CLAIMABLE: &str = "c.state IN ('pending', 'failed') AND c.blocked = 0 AND c.run_at <= ?3 \
    AND (c.exclusive IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r INDEXED BY jobs_exclusive \
    WHERE r.exclusive = c.exclusive AND r.state = 'processing'))";

/// Moves the job whose rowid is `?4` to `processing` for runner `?1`, if
/// it still waits and the runner is still registered. The job's row was
/// read by the claim's pick (see [`ClaimSql::pick`]) in the same
/// transaction; a `RETURNING` clause would cost an ephemeral table.
const CLAIM_UPDATE: &str = "UPDATE OR FAIL jobs SET state = 'processing', attempts = attempts + 1, \
    runs = runs + 1, runner = ?1, lease_until = ?2, started_at = ?3, updated_at = ?3, \
    exit_code = NULL WHERE rowid = ?4 AND state IN ('pending', 'failed') \
    AND EXISTS (SELECT 1 FROM workers w WHERE w.id = ?1)";

/// [`CLAIMED_COLUMNS`] with `attempts` and `runs` as [`CLAIM_UPDATE`]
/// leaves them: what a claim's pick reads before the update.
fn picked_columns() -> String {
    let columns = CLAIMED_COLUMNS.replacen("attempts, runs", "attempts + 1, runs + 1", 1);
    debug_assert_ne!(
        columns, CLAIMED_COLUMNS,
        "the claimed shape lists attempts, runs"
    );
    columns
}

/// The statements of a claim, by the shape of its queue filter: built
/// once, not at each claim.
struct ClaimSql {
    /// The best claimable job's id (`?4`: the filter's value, if any).
    best: String,
    /// The best claimable job as its claim returns it ([`rows::claimed`]:
    /// `attempts` and `runs` as [`CLAIM_UPDATE`] leaves them), then its
    /// rowid.
    pick: String,
}

fn claim_sql(filter: &QueueFilter) -> &'static ClaimSql {
    use std::sync::LazyLock;
    fn build(filter: &str, index: &str) -> ClaimSql {
        let from = format!(
            "FROM jobs c INDEXED BY {index} WHERE {CLAIMABLE} AND {filter} \
             ORDER BY c.priority DESC, c.run_at, c.id LIMIT 1"
        );
        let columns = picked_columns();
        ClaimSql {
            best: format!("SELECT c.id {from}"),
            pick: format!("SELECT {columns}, c.rowid {from}"),
        }
    }
    static ANY: LazyLock<ClaimSql> = LazyLock::new(|| build("1 = 1", "jobs_ready"));
    static ONE: LazyLock<ClaimSql> = LazyLock::new(|| build("c.queue = ?4", "jobs_ready_by_queue"));
    static SOME: LazyLock<ClaimSql> =
        LazyLock::new(|| build("c.queue IN (SELECT value FROM json_each(?4))", "jobs_ready"));
    static ALL_BUT: LazyLock<ClaimSql> = LazyLock::new(|| {
        build(
            "c.queue NOT IN (SELECT value FROM json_each(?4))",
            "jobs_ready",
        )
    });
    match filter {
        QueueFilter::Any => &ANY,
        QueueFilter::Except(queues) if queues.is_empty() => &ANY,
        QueueFilter::Only(queues) if queues.len() == 1 => &ONE,
        QueueFilter::Only(_) => &SOME,
        QueueFilter::Except(_) => &ALL_BUT,
    }
}

/// The value a claim statement binds to `?4` for `filter`, if any.
fn filter_value(filter: &QueueFilter) -> Option<String> {
    match filter {
        QueueFilter::Any => None,
        QueueFilter::Except(queues) if queues.is_empty() => None,
        QueueFilter::Only(queues) if queues.len() == 1 => Some(queues[0].clone()),
        QueueFilter::Only(queues) | QueueFilter::Except(queues) => Some(to_json(queues)),
    }
}

/// One claim: the best claimable job, moved to `processing` for the
/// runner (only if the runner is still registered), plus the attempt's
/// row. Without excluded queues it is one statement over a ready index,
/// which holds the claim's order, so the first row that qualifies is the
/// one (left to itself the planner takes the state index and sorts every
/// waiting job on each claim).
fn claim_one(conn: &Connection, params: &ClaimParams<'_>) -> Result<Option<Claimed>> {
    let picked: Option<(Claimed, i64)> = if params.exclude.is_empty() {
        let value = filter_value(params.queues);
        let mut args: Vec<&dyn ToSql> = vec![&params.runner, &params.lease_until, &params.now];
        if let Some(value) = &value {
            args.push(value);
        }
        conn.prepare_cached(&claim_sql(params.queues).pick)?
            .query_row(args.as_slice(), |row| {
                Ok((rows::claimed(row)?, row.get("rowid")?))
            })
            .optional()?
    } else {
        match best_of_queues(conn, params)? {
            Some(id) => {
                static BY_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    format!("SELECT {}, rowid FROM jobs WHERE id = ?1", picked_columns())
                });
                conn.prepare_cached(&BY_ID)?
                    .query_row([id], |row| Ok((rows::claimed(row)?, row.get("rowid")?)))
                    .optional()?
            }
            None => None,
        }
    };
    let Some((job, rowid)) = picked else {
        return Ok(None);
    };
    let moved = conn.prepare_cached(CLAIM_UPDATE)?.execute(params![
        params.runner,
        params.lease_until,
        params.now,
        rowid
    ])?;
    if moved == 0 {
        // The runner is no longer registered (declared dead meanwhile).
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO attempts (job_id, run, runner, host, started_at) \
         VALUES (?1, ?2, ?3, (SELECT host FROM workers WHERE id = ?3), ?4) \
         ON CONFLICT (job_id, run) DO UPDATE SET runner = excluded.runner, host = excluded.host, \
         started_at = excluded.started_at, finished_at = NULL, exit_code = NULL, \
         outcome = NULL, error = NULL, output_bytes = 0",
    )?
    .execute(params![job.id, job.run, params.runner, params.now])?;
    if job.definition.is_some() {
        follow(conn, &job.id)?;
    }
    Ok(Some(job))
}

/// The best claimable job of the filter's queues, skipping excluded ones.
pub(super) fn find_claimable(
    conn: &Connection,
    params: &ClaimParams<'_>,
) -> Result<Option<String>> {
    if !params.exclude.is_empty() {
        return best_of_queues(conn, params);
    }
    let value = filter_value(params.queues);
    // ?1 and ?2 are not used here; numbered as in the claim, so bound.
    let mut args: Vec<&dyn ToSql> = vec![&params.runner, &params.lease_until, &params.now];
    if let Some(value) = &value {
        args.push(value);
    }
    Ok(conn
        .prepare_cached(&claim_sql(params.queues).best)?
        .query_row(args.as_slice(), |row| row.get(0))
        .optional()?)
}

/// The best job when some queues are excluded (at their limit): skipping
/// their jobs on the ready index would walk all of them, so instead look
/// at the head of each other queue that has a waiting job (one index seek
/// each) and take the best head.
fn best_of_queues(conn: &Connection, params: &ClaimParams<'_>) -> Result<Option<String>> {
    let mut head = conn.prepare_cached(&format!(
        "SELECT c.id, c.priority, c.run_at FROM jobs c INDEXED BY jobs_ready_by_queue \
         WHERE c.queue = ?4 AND {CLAIMABLE} ORDER BY c.priority DESC, c.run_at, c.id LIMIT 1"
    ))?;
    let mut best: Option<(i64, i64, String)> = None;
    for queue in waiting_queues(conn)? {
        if !params.queues.allows(&queue) || params.exclude.contains(&queue) {
            continue;
        }
        let found: Option<(String, i64, i64)> = head
            .query_row(
                params![params.runner, params.lease_until, params.now, queue],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        if let Some((id, priority, run_at)) = found {
            // Priority first (higher), then run_at, then id (lower).
            let better = best.as_ref().is_none_or(|(p, r, i)| {
                (priority, std::cmp::Reverse(run_at), std::cmp::Reverse(&id))
                    > (*p, std::cmp::Reverse(*r), std::cmp::Reverse(i))
            });
            if better {
                best = Some((priority, run_at, id));
            }
        }
    }
    Ok(best.map(|(_, _, id)| id))
}

/// The queues that have waiting, unblocked jobs: a loose index scan of the
/// ready-by-queue index, one seek per queue.
fn waiting_queues(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE q(name) AS ( \
           SELECT (SELECT MIN(queue) FROM jobs INDEXED BY jobs_ready_by_queue \
                   WHERE state IN ('pending', 'failed') AND blocked = 0) \
           UNION ALL \
           SELECT (SELECT MIN(queue) FROM jobs INDEXED BY jobs_ready_by_queue \
                   WHERE state IN ('pending', 'failed') AND blocked = 0 AND queue > q.name) \
           FROM q WHERE q.name IS NOT NULL) \
         SELECT name FROM q WHERE name IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records one attempt's end if the job is still the runner's: the job's
/// update is the ownership check (its runner, run and `processing`).
/// Neither statement returns rows: a `RETURNING` clause costs SQLite an
/// ephemeral table per statement, on the path every job takes.
fn finish_one(conn: &Connection, finish: &FinishParams<'_>) -> Result<bool> {
    let uncount = i64::from(!finish.counts);
    let moved = conn
        .prepare_cached(
            "UPDATE OR FAIL jobs SET state = ?4, exit_code = ?5, last_error = ?6, \
             run_at = COALESCE(?7, run_at), finished_at = ?8, attempts = attempts - ?9, \
             runner = NULL, lease_until = NULL, cancel_requested = 0, updated_at = ?10 \
             WHERE id = ?1 AND runner = ?2 AND runs = ?3 AND state = 'processing'",
        )?
        .execute(params![
            finish.id,
            finish.runner,
            finish.run,
            finish.state.as_str(),
            finish.exit_code,
            finish.error,
            finish.run_at,
            finish.finished_at,
            uncount,
            finish.now,
        ])?;
    if moved == 0 {
        return Ok(false);
    }
    conn.prepare_cached(
        "UPDATE attempts SET finished_at = ?3, exit_code = ?4, outcome = ?5, error = ?6, \
         output_bytes = ?7 WHERE job_id = ?1 AND run = ?2 AND outcome IS NULL",
    )?
    .execute(params![
        finish.id,
        finish.run,
        finish.now,
        finish.exit_code,
        finish.outcome.as_str(),
        finish.error,
        finish.output_bytes,
    ])?;
    if finish.definition.is_some() {
        follow(conn, finish.id)?;
    }
    Ok(true)
}

/// An SQL condition on `column` for `filter`, and the value to bind to
/// `?{param}`.
pub(super) fn queue_condition(
    filter: &QueueFilter,
    column: &str,
    param: usize,
) -> (String, Option<String>) {
    match filter {
        QueueFilter::Any => ("1 = 1".into(), None),
        QueueFilter::Except(queues) if queues.is_empty() => ("1 = 1".into(), None),
        QueueFilter::Only(queues) if queues.len() == 1 => {
            (format!("{column} = ?{param}"), Some(queues[0].clone()))
        }
        QueueFilter::Only(queues) => (
            format!("{column} IN (SELECT value FROM json_each(?{param}))"),
            Some(to_json(queues)),
        ),
        QueueFilter::Except(queues) => (
            format!("{column} NOT IN (SELECT value FROM json_each(?{param}))"),
            Some(to_json(queues)),
        ),
    }
}

fn is_primary_key_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Beyond this many commands containing a text, the text is common: the
/// newest-first walk of the jobs finds a page of them sooner than the
/// trigram index lists them all.
const COMMON_TEXT: i64 = 10_000;

/// The `GLOB` pattern of the commands that contain `text`, where the
/// trigram index can find them (three characters or more); `*`, `?` and
/// `[` stand for themselves.
fn text_pattern(text: &str) -> Option<String> {
    if text.chars().count() < 3 {
        return None;
    }
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('*');
    for c in text.chars() {
        match c {
            '*' | '?' | '[' => {
                pattern.push('[');
                pattern.push(c);
                pattern.push(']');
            }
            c => pattern.push(c),
        }
    }
    pattern.push('*');
    Some(pattern)
}

/// Whether an error is SQLite's word that the text index does not match
/// the jobs (rows another program wrote or deleted bypass it): FTS5 then
/// refuses to unindex a row it never indexed, or to read a row gone.
fn text_index_stale(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DatabaseCorrupt)
}

/// Runs a write that moves jobs in the text index; where the index turns
/// out stale, rebuilds it from the jobs (in the same transaction; the
/// failed statement changed nothing) and runs the write again.
fn mending_text_index<T>(conn: &Connection, write: impl Fn() -> rusqlite::Result<T>) -> Result<T> {
    match write() {
        Err(e) if text_index_stale(&e) => {
            conn.execute("INSERT INTO jobs_text (jobs_text) VALUES ('rebuild')", [])?;
            Ok(write()?)
        }
        other => Ok(other?),
    }
}

/// The filter's text as a pattern of the trigram index, when few commands
/// contain it (at most [`COMMON_TEXT`]): then its matches are read from the
/// index, not found by reading every job.
fn rare_text(conn: &Connection, filter: &JobFilter) -> Result<Option<String>> {
    let Some(pattern) = filter.text.as_deref().and_then(text_pattern) else {
        return Ok(None);
    };
    let matches = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs_text WHERE command GLOB ?1 LIMIT ?2)",
        )?
        .query_row(params![pattern, COMMON_TEXT + 1], |row| {
            row.get::<_, i64>(0)
        });
    match matches {
        Ok(n) => Ok((n <= COMMON_TEXT).then_some(pattern)),
        // A stale index (see `mending_text_index`): the next delete or
        // apply mends it; until then, every job is read.
        Err(e) if text_index_stale(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a filtered read reads: the jobs by the row ids of a rare text's
/// matches (no index, so SQLite cannot walk one instead), else the jobs.
fn jobs_read_by(rare: &Option<String>) -> &'static str {
    if rare.is_some() {
        "jobs NOT INDEXED"
    } else {
        "jobs"
    }
}

/// The `WHERE` conditions of a filter (its limit aside), each ` AND …`,
/// and their arguments; `state`: the filter's state as stored; `rare`: the
/// text's pattern when its matches are to be read from the trigram index
/// (the caller then reads `jobs NOT INDEXED`: by those row ids).
fn filter_conditions<'a>(
    filter: &'a JobFilter,
    state: &'a Option<&'static str>,
    rare: &'a Option<String>,
) -> (String, Vec<&'a dyn ToSql>) {
    let mut sql = String::new();
    let mut args: Vec<&dyn ToSql> = Vec::new();
    if let Some(state) = state {
        sql.push_str(" AND state = ?");
        args.push(state);
    }
    if let Some(queue) = &filter.queue {
        sql.push_str(" AND queue = ?");
        args.push(queue);
    }
    if let Some(definition) = &filter.definition {
        sql.push_str(" AND definition = ?");
        args.push(definition);
    }
    if let Some(origin) = &filter.origin {
        sql.push_str(" AND origin = ?");
        args.push(crate::driver::origin_name(*origin));
    }
    if let Some(pattern) = rare {
        sql.push_str(" AND rowid IN (SELECT rowid FROM jobs_text WHERE command GLOB ?)");
        args.push(pattern);
    }
    if let Some(text) = &filter.text {
        sql.push_str(" AND instr(command, ?) > 0");
        args.push(text);
    }
    if let Some((created_at, id)) = &filter.before {
        // A row value: SQLite walks `jobs_newest` (or `jobs_by_state`) from there.
        sql.push_str(" AND (created_at, id) < (?, ?)");
        args.push(created_at);
        args.push(id);
    }
    (sql, args)
}
