//! Jobs and attempts on PostgreSQL: inserts, the claim (`FOR UPDATE SKIP
//! LOCKED` on the ready index), the decided ends of attempts, and the
//! reads of the commands. The statements are SQLite's, in PostgreSQL's
//! dialect; the decisions are the engine's.

use postgres::error::SqlState;
use postgres::types::ToSql;

use super::rows::{self, CLAIMED_COLUMNS, JOB_COLUMNS, deps_json, to_json};
use super::{PgConn, PgOps};
use crate::driver::{
    ClaimParams, Counts, DlqStat, FinishParams, JobFilter, JobUpdate, Jobs, LostParams,
    MinuteCount, Moved, Output, QueueFilter, Tally,
};
use crate::error::{Error, Result};
use crate::job::{Attempt, Claimed, Job, JobState, NewJob, Payload};

/// A count as stored.
pub(super) fn big(n: u32) -> i64 {
    i64::from(n)
}

impl Jobs for PgOps<'_> {
    fn insert_jobs(&mut self, jobs: &[NewJob]) -> Result<()> {
        for job in jobs {
            insert(self.conn, job)?;
            if job.definition.is_some() {
                record_new(self.conn, job)?;
            }
        }
        Ok(())
    }

    fn claim_jobs(&mut self, params: &ClaimParams<'_>) -> Result<Vec<Claimed>> {
        let mut claimed = Vec::new();
        while claimed.len() < params.limit {
            match claim_one(self.conn, params)? {
                Some(job) => claimed.push(job),
                None => break,
            }
        }
        Ok(claimed)
    }

    fn claimable(&mut self, params: &ClaimParams<'_>) -> Result<bool> {
        let (filter, value) = queue_condition(params.queues, "c.queue", 3);
        let exclude: Vec<&str> = params.exclude.iter().map(String::as_str).collect();
        let sql = format!(
            "SELECT c.id FROM queuectl_jobs c WHERE {CLAIMABLE} AND {filter} \
             AND c.queue <> ALL($2::text[]) ORDER BY c.priority DESC, c.run_at, c.id LIMIT 1"
        );
        let row = match &value {
            Some(v) => self.conn.row(&sql, &[&params.now, &exclude, v])?,
            None => self.conn.row(&sql, &[&params.now, &exclude])?,
        };
        Ok(row.is_some())
    }

    fn finish_attempts(&mut self, finishes: &[FinishParams<'_>]) -> Result<Vec<bool>> {
        let mut owned = Vec::with_capacity(finishes.len());
        for finish in finishes {
            owned.push(finish_one(self.conn, finish)?);
        }
        Ok(owned)
    }

    fn cancel_waiting(&mut self, ids: &[String], reason: &str, now: i64) -> Result<Vec<Moved>> {
        let reason = reason.to_string();
        move_each(
            self.conn,
            "UPDATE queuectl_jobs SET state = 'cancelled', reason = $2, finished_at = $3, \
             updated_at = $3 WHERE id = $1 AND state IN ('pending', 'failed') RETURNING definition",
            ids,
            &[&reason, &now],
        )
    }

    fn request_cancel(&mut self, ids: &[String], reason: Option<&str>, now: i64) -> Result<()> {
        for id in ids {
            let row = self.conn.row(
                "UPDATE queuectl_jobs SET cancel_requested = true, \
                 reason = COALESCE($2, reason), updated_at = $3 \
                 WHERE id = $1 AND state = 'processing' RETURNING definition",
                &[id, &reason, &now],
            )?;
            if let Some(row) = row
                && rows::get::<Option<String>>(&row, "definition")?.is_some()
            {
                follow(self.conn, id)?;
            }
        }
        Ok(())
    }

    fn set_blocked(&mut self, ids: &[String], blocked: bool) -> Result<()> {
        for id in ids {
            self.conn.exec(
                "UPDATE queuectl_jobs SET blocked = $2 WHERE id = $1",
                &[id, &blocked],
            )?;
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
            "UPDATE queuectl_jobs SET state = 'pending', run_at = $2, updated_at = $2, \
             finished_at = NULL, reason = NULL, \
             attempts = CASE WHEN $3 THEN attempts ELSE 0 END \
             WHERE id = $1 AND state = 'dead' RETURNING definition",
            ids,
            &[&now, &keep_attempts],
        )
    }

    fn delete_jobs(&mut self, ids: &[String]) -> Result<Vec<(String, u32)>> {
        let mut deleted = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = self.conn.row(
                "DELETE FROM queuectl_jobs WHERE id = $1 RETURNING runs",
                &[id],
            )? {
                deleted.push((id.clone(), rows::count(&row, "runs")?));
            }
        }
        Ok(deleted)
    }

    fn update_waiting(&mut self, id: &str, update: &JobUpdate<'_>) -> Result<()> {
        let changed = self.conn.exec(
            "UPDATE queuectl_jobs SET command = $2, env = $3, cwd = $4, queue = $5, priority = $6, \
             timeout_ms = $7, max_retries = $8, backoff_base = $9, max_delay_ms = $10, \
             jitter = $11, no_retry_codes = $12, after_deps = $13, spec_hash = $14, \
             updated_at = $15 WHERE id = $1 AND state IN ('pending', 'failed')",
            &[
                &id,
                &update.command,
                &to_json(update.env),
                &update.cwd,
                &update.queue,
                &update.priority,
                &update.timeout_ms,
                &big(update.retry.max_retries),
                &update.retry.backoff_base,
                &update.retry.max_delay_ms,
                &update.retry.jitter,
                &to_json(&update.retry.no_retry_exit_codes),
                &deps_json(update.after),
                &update.spec_hash,
                &update.now,
            ],
        )?;
        if changed > 0 {
            follow(self.conn, id)?;
        }
        Ok(())
    }

    fn set_payload(&mut self, id: &str, payload: &Payload, now: i64) -> Result<()> {
        self.conn.exec(
            "UPDATE queuectl_jobs SET payload = $2, updated_at = $3 WHERE id = $1",
            &[&id, &to_json(payload), &now],
        )?;
        Ok(())
    }

    fn set_lost(&mut self, lost: &[LostParams<'_>]) -> Result<()> {
        for lost in lost {
            self.conn.exec(
                "UPDATE queuectl_attempts SET outcome = 'lost', finished_at = $2, error = $3 \
                 WHERE job_id = $1 AND run = (SELECT runs FROM queuectl_jobs WHERE id = $1) \
                 AND outcome IS NULL",
                &[&lost.id, &lost.now, &lost.error],
            )?;
            let row = self.conn.row(
                "UPDATE queuectl_jobs SET state = $2, run_at = $3, finished_at = $4, \
                 runner = NULL, lease_until = NULL, cancel_requested = false, updated_at = $5, \
                 last_error = $6 WHERE id = $1 AND state = 'processing' RETURNING definition",
                &[
                    &lost.id,
                    &lost.state.as_str(),
                    &lost.run_at,
                    &lost.finished_at,
                    &lost.now,
                    &lost.error,
                ],
            )?;
            if let Some(row) = row
                && rows::get::<Option<String>>(&row, "definition")?.is_some()
            {
                follow(self.conn, lost.id)?;
            }
        }
        Ok(())
    }

    fn job(&mut self, id: &str) -> Result<Option<Job>> {
        self.conn
            .row(
                &format!("SELECT {JOB_COLUMNS} FROM queuectl_jobs WHERE id = $1"),
                &[&id],
            )?
            .map(|row| rows::job(&row))
            .transpose()
    }

    fn job_states(&mut self, ids: &[String]) -> Result<Vec<Option<JobState>>> {
        let mut states = Vec::with_capacity(ids.len());
        for id in ids {
            states.push(
                self.conn
                    .row("SELECT state FROM queuectl_jobs WHERE id = $1", &[id])?
                    .map(|row| rows::state(&row, "state"))
                    .transpose()?,
            );
        }
        Ok(states)
    }

    fn attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        self.conn
            .rows(
                "SELECT run, started_at, finished_at, exit_code, outcome, error, output_bytes, \
                 runner, host FROM queuectl_attempts WHERE job_id = $1 ORDER BY run",
                &[&id],
            )?
            .iter()
            .map(|row| {
                Ok(Attempt {
                    run: rows::count(row, "run")?,
                    started_at: rows::get(row, "started_at")?,
                    finished_at: rows::get(row, "finished_at")?,
                    exit_code: rows::get(row, "exit_code")?,
                    outcome: rows::outcome(row, "outcome")?,
                    error: rows::get(row, "error")?,
                    output_bytes: rows::count(row, "output_bytes")?,
                    worker: rows::get(row, "runner")?,
                    host: rows::get(row, "host")?,
                })
            })
            .collect()
    }

    fn list_jobs(&mut self, filter: &JobFilter) -> Result<Vec<Job>> {
        let state = filter.state.map(JobState::as_str);
        let limit = i64::from(filter.limit);
        let (conditions, mut args) = filter_conditions(filter, &state);
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM queuectl_jobs WHERE TRUE{conditions}");
        args.push(&limit);
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT ${}",
            args.len()
        ));
        self.conn.rows(&sql, &args)?.iter().map(rows::job).collect()
    }

    fn count_jobs(&mut self, filter: &JobFilter) -> Result<u64> {
        let state = filter.state.map(JobState::as_str);
        let (conditions, args) = filter_conditions(filter, &state);
        let sql = format!("SELECT COUNT(*) AS n FROM queuectl_jobs WHERE TRUE{conditions}");
        match self.conn.row(&sql, &args)? {
            Some(row) => rows::count(&row, "n"),
            None => Ok(0),
        }
    }

    fn counts(&mut self) -> Result<Counts> {
        let rows = self.conn.rows(
            "SELECT queue, state, SUM(n)::bigint AS n FROM queuectl_job_counts \
             GROUP BY queue, state HAVING SUM(n) > 0 ORDER BY queue, state",
            &[],
        )?;
        Ok(Counts {
            rows: rows
                .iter()
                .map(|row| {
                    Ok((
                        rows::get(row, "queue")?,
                        rows::state(row, "state")?,
                        rows::count(row, "n")?,
                    ))
                })
                .collect::<Result<_>>()?,
        })
    }

    fn unfinished_counts(&mut self) -> Result<(u64, u64, u64)> {
        let mut counts = (0, 0, 0);
        for row in self.conn.rows(
            "SELECT state, SUM(n)::bigint AS n FROM queuectl_job_counts \
             WHERE state IN ('pending', 'processing', 'failed') GROUP BY state",
            &[],
        )? {
            let n = rows::count(&row, "n")?;
            match rows::state(&row, "state")? {
                JobState::Pending => counts.0 = n,
                JobState::Processing => counts.1 = n,
                _ => counts.2 = n,
            }
        }
        Ok(counts)
    }

    fn has_unfinished(&mut self, queues: &QueueFilter) -> Result<bool> {
        let (filter, value) = queue_condition(queues, "queue", 1);
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM queuectl_job_counts WHERE n > 0 \
             AND state IN ('pending', 'processing', 'failed') AND {filter})"
        );
        let row = match &value {
            Some(v) => self.conn.row(&sql, &[v])?,
            None => self.conn.row(&sql, &[])?,
        };
        row.map_or(Ok(false), |row| rows::get(&row, "exists"))
    }

    fn next_run_at(&mut self, queues: &QueueFilter) -> Result<Option<i64>> {
        let (filter, value) = queue_condition(queues, "queue", 1);
        let sql = format!(
            "SELECT MIN(run_at) AS at FROM queuectl_jobs WHERE state IN ('pending', 'failed') \
             AND NOT blocked AND {filter}"
        );
        let row = match &value {
            Some(v) => self.conn.row(&sql, &[v])?,
            None => self.conn.row(&sql, &[])?,
        };
        row.map_or(Ok(None), |row| rows::get(&row, "at"))
    }

    fn finished_by_minute(&mut self, since: i64) -> Result<Vec<MinuteCount>> {
        self.conn
            .rows(
                "SELECT 0 AS failed, finished_at / 60000 AS minute, COUNT(*) AS n \
                 FROM queuectl_jobs WHERE state = 'completed' AND finished_at >= $1 \
                 GROUP BY minute \
                 UNION ALL \
                 SELECT 1, finished_at / 60000, COUNT(*) FROM queuectl_attempts \
                 WHERE outcome IN ('failed', 'timeout', 'lost') AND finished_at >= $1 \
                 GROUP BY 2 \
                 ORDER BY minute, failed",
                &[&since],
            )?
            .iter()
            .map(|row| {
                Ok(MinuteCount {
                    minute: rows::get(row, "minute")?,
                    tally: if rows::get::<i32>(row, "failed")? == 0 {
                        Tally::Completed
                    } else {
                        Tally::Failed
                    },
                    count: rows::count(row, "n")?,
                })
            })
            .collect()
    }

    fn dlq_stats(&mut self) -> Result<Vec<DlqStat>> {
        let groups = self.conn.rows(
            "SELECT queue, code, n FROM queuectl_job_counts WHERE state = 'dead' AND n > 0 \
             ORDER BY queue, n DESC",
            &[],
        )?;
        let mut stats = Vec::with_capacity(groups.len());
        for row in groups {
            let queue: String = rows::get(&row, "queue")?;
            let code: i64 = rows::get(&row, "code")?;
            let count = rows::count(&row, "n")?;
            // -1 stands for a dead job without an exit code.
            let exit_code = (code != -1).then(|| i32::try_from(code).ok()).flatten();
            let newest = match exit_code {
                Some(code) => self.conn.row(
                    "SELECT MAX(finished_at) AS at FROM queuectl_jobs \
                     WHERE state = 'dead' AND queue = $1 AND exit_code = $2",
                    &[&queue, &code],
                )?,
                None => self.conn.row(
                    "SELECT MAX(finished_at) AS at FROM queuectl_jobs \
                     WHERE state = 'dead' AND queue = $1 AND exit_code IS NULL",
                    &[&queue],
                )?,
            };
            let newest_at = newest.map_or(Ok(None), |row| rows::get(&row, "at"))?;
            stats.push(DlqStat {
                queue,
                exit_code,
                count,
                newest_at,
            });
        }
        Ok(stats)
    }

    fn dead_ids(&mut self) -> Result<Vec<String>> {
        self.conn
            .rows(
                "SELECT id FROM queuectl_jobs WHERE state = 'dead' ORDER BY id",
                &[],
            )?
            .iter()
            .map(|row| rows::get(row, "id"))
            .collect()
    }

    fn finished_before(&mut self, states: &[JobState], before: i64) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for state in states {
            for row in self.conn.rows(
                "SELECT id FROM queuectl_jobs WHERE state = $1 AND finished_at < $2",
                &[&state.as_str(), &before],
            )? {
                ids.push(rows::get(&row, "id")?);
            }
        }
        Ok(ids)
    }

    fn dead_beyond(&mut self, keep: u64, older_than: i64) -> Result<Vec<String>> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.conn
            .rows(
                "SELECT id FROM queuectl_jobs WHERE state = 'dead' AND (finished_at < $1 OR id IN \
                 (SELECT id FROM queuectl_jobs WHERE state = 'dead' \
                  ORDER BY finished_at DESC OFFSET $2))",
                &[&older_than, &keep],
            )?
            .iter()
            .map(|row| rows::get(row, "id"))
            .collect()
    }

    fn running_counts(&mut self, queues: &[String]) -> Result<Vec<u32>> {
        let mut counts = Vec::with_capacity(queues.len());
        for queue in queues {
            let row = self.conn.row(
                "SELECT COALESCE(SUM(n), 0)::bigint AS n FROM queuectl_job_counts \
                 WHERE queue = $1 AND state = 'processing'",
                &[queue],
            )?;
            counts.push(row.map_or(Ok(0), |row| rows::count(&row, "n"))?);
        }
        Ok(counts)
    }

    fn store_output(&mut self, id: &str, run: u32, output: &Output) -> Result<()> {
        let produced = i64::try_from(output.produced).unwrap_or(i64::MAX);
        self.conn.exec(
            "INSERT INTO queuectl_outputs (job_id, run, bytes, produced) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM queuectl_jobs WHERE id = $1) \
             ON CONFLICT (job_id, run) DO UPDATE \
             SET bytes = excluded.bytes, produced = excluded.produced",
            &[&id, &big(run), &output.bytes, &produced],
        )?;
        Ok(())
    }

    fn output(&mut self, id: &str, run: u32) -> Result<Option<Output>> {
        let Some(row) = self.conn.row(
            "SELECT bytes, produced FROM queuectl_outputs WHERE job_id = $1 AND run = $2",
            &[&id, &big(run)],
        )?
        else {
            return Ok(None);
        };
        let bytes: Vec<u8> = rows::get(&row, "bytes")?;
        let produced: Option<i64> = rows::get(&row, "produced")?;
        let produced = produced
            .and_then(|p| u64::try_from(p).ok())
            .unwrap_or(bytes.len() as u64);
        Ok(Some(Output { bytes, produced }))
    }
}

/// Runs a state change (`sql`, `$1` the id, then `args`, `RETURNING
/// definition`) on each job of `ids`; returns those it moved, their
/// definitions' latest runs following them.
fn move_each(
    conn: &mut PgConn,
    sql: &str,
    ids: &[String],
    args: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Moved>> {
    let mut moved = Vec::new();
    for id in ids {
        let mut all: Vec<&(dyn ToSql + Sync)> = vec![id];
        all.extend_from_slice(args);
        if let Some(row) = conn.row(sql, &all)? {
            let definition: Option<String> = rows::get(&row, "definition")?;
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

fn insert(conn: &mut PgConn, job: &NewJob) -> Result<()> {
    let result = conn.try_exec(
        "INSERT INTO queuectl_jobs (id, command, definition, origin, queue, priority, state, \
         max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, timeout_ms, env, \
         cwd, run_at, created_at, updated_at, spec_hash, source_commit, after_deps, tick_at, \
         inputs, payload, exclusive) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $16, $17, $18, $19, $20, $21, $22, $23)",
        &[
            &job.id,
            &job.command,
            &job.definition,
            &job.origin.as_str(),
            &job.queue,
            &job.priority,
            &big(job.retry.max_retries),
            &job.retry.backoff_base,
            &job.retry.max_delay_ms,
            &job.retry.jitter,
            &to_json(&job.retry.no_retry_exit_codes),
            &job.timeout_ms,
            &to_json(&job.env),
            &job.cwd,
            &job.run_at,
            &job.created_at,
            &job.spec_hash,
            &job.source_commit,
            &deps_json(&job.after),
            &job.tick_at,
            &job.inputs.as_ref().map(to_json),
            &job.payload.as_ref().map(to_json),
            &job.exclusive,
        ],
    );
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                && e.as_db_error().and_then(|d| d.constraint()) == Some("queuectl_jobs_pkey") =>
        {
            Err(Error::input_with_hint(
                format!("job id `{}` already exists", job.id),
                "choose another --id, or leave it out to get a generated one",
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// What makes a waiting job claimable now (`$1`: now), on a row named `c`.
const CLAIMABLE: &str = "c.state IN ('pending', 'failed') AND NOT c.blocked AND c.run_at <= $1 \
    AND (c.exclusive IS NULL OR NOT EXISTS (SELECT 1 FROM queuectl_jobs r \
    WHERE r.exclusive = c.exclusive AND r.state = 'processing'))";

/// One claim: the best claimable job, locked and skipped by any other
/// claimer, moved to `processing` for the runner if it is still
/// registered, plus the attempt's row.
fn claim_one(conn: &mut PgConn, params: &ClaimParams<'_>) -> Result<Option<Claimed>> {
    use std::sync::LazyLock;
    fn build(filter: &QueueFilter) -> String {
        let (filter, _) = queue_condition(filter, "c.queue", 5);
        format!(
            "UPDATE queuectl_jobs SET state = 'processing', attempts = attempts + 1, \
             runs = runs + 1, runner = $2, lease_until = $3, started_at = $1, updated_at = $1, \
             exit_code = NULL \
             WHERE id = (SELECT c.id FROM queuectl_jobs c WHERE {CLAIMABLE} AND {filter} \
                         AND c.queue <> ALL($4::text[]) \
                         ORDER BY c.priority DESC, c.run_at, c.id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             AND state IN ('pending', 'failed') \
             AND EXISTS (SELECT 1 FROM queuectl_workers w WHERE w.id = $2) \
             RETURNING {CLAIMED_COLUMNS}"
        )
    }
    // The statement of each filter shape, built once, not at each claim.
    static ANY: LazyLock<String> = LazyLock::new(|| build(&QueueFilter::Any));
    static ONLY: LazyLock<String> =
        LazyLock::new(|| build(&QueueFilter::Only(vec![String::new()])));
    static EXCEPT: LazyLock<String> =
        LazyLock::new(|| build(&QueueFilter::Except(vec![String::new()])));
    let (_, value) = queue_condition(params.queues, "c.queue", 5);
    let sql: &str = match (params.queues, &value) {
        (_, None) => &ANY,
        (QueueFilter::Only(_), Some(_)) => &ONLY,
        _ => &EXCEPT,
    };
    let exclude: Vec<&str> = params.exclude.iter().map(String::as_str).collect();
    let row = match &value {
        Some(v) => conn.row(
            sql,
            &[
                &params.now,
                &params.runner,
                &params.lease_until,
                &exclude,
                v,
            ],
        )?,
        None => conn.row(
            sql,
            &[&params.now, &params.runner, &params.lease_until, &exclude],
        )?,
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let job = rows::claimed(&row)?;
    conn.exec(
        "INSERT INTO queuectl_attempts (job_id, run, runner, host, started_at) \
         VALUES ($1, $2, $3, (SELECT host FROM queuectl_workers WHERE id = $3), $4) \
         ON CONFLICT (job_id, run) DO UPDATE SET runner = excluded.runner, host = excluded.host, \
         started_at = excluded.started_at, finished_at = NULL, exit_code = NULL, \
         outcome = NULL, error = NULL, output_bytes = 0",
        &[&job.id, &big(job.run), &params.runner, &params.now],
    )?;
    if job.definition.is_some() {
        follow(conn, &job.id)?;
    }
    Ok(Some(job))
}

/// Records one attempt's end if the job is still the runner's.
fn finish_one(conn: &mut PgConn, finish: &FinishParams<'_>) -> Result<bool> {
    let uncount = i64::from(!finish.counts);
    let row = conn.row(
        "UPDATE queuectl_jobs SET state = $4, exit_code = $5, last_error = $6, \
         run_at = COALESCE($7, run_at), finished_at = $8, attempts = attempts - $9, \
         runner = NULL, lease_until = NULL, cancel_requested = false, updated_at = $10 \
         WHERE id = $1 AND runner = $2 AND runs = $3 AND state = 'processing' \
         RETURNING definition",
        &[
            &finish.id,
            &finish.runner,
            &big(finish.run),
            &finish.state.as_str(),
            &finish.exit_code,
            &finish.error,
            &finish.run_at,
            &finish.finished_at,
            &uncount,
            &finish.now,
        ],
    )?;
    let Some(row) = row else {
        return Ok(false);
    };
    let output_bytes = i64::try_from(finish.output_bytes).unwrap_or(i64::MAX);
    conn.exec(
        "UPDATE queuectl_attempts SET finished_at = $3, exit_code = $4, outcome = $5, \
         error = $6, output_bytes = $7 WHERE job_id = $1 AND run = $2 AND outcome IS NULL",
        &[
            &finish.id,
            &big(finish.run),
            &finish.now,
            &finish.exit_code,
            &finish.outcome.as_str(),
            &finish.error,
            &output_bytes,
        ],
    )?;
    if rows::get::<Option<String>>(&row, "definition")?.is_some() {
        follow(conn, finish.id)?;
    }
    Ok(true)
}

/// An SQL condition on `column` for `filter`, and the array to bind to
/// `${param}` (the queues), if any.
pub(super) fn queue_condition(
    filter: &QueueFilter,
    column: &str,
    param: usize,
) -> (String, Option<Vec<String>>) {
    match filter {
        QueueFilter::Any => ("TRUE".into(), None),
        QueueFilter::Except(queues) if queues.is_empty() => ("TRUE".into(), None),
        QueueFilter::Only(queues) => (
            format!("{column} = ANY(${param}::text[])"),
            Some(queues.clone()),
        ),
        QueueFilter::Except(queues) => (
            format!("{column} <> ALL(${param}::text[])"),
            Some(queues.clone()),
        ),
    }
}

/// A new job of a definition is that definition's latest run.
pub(super) fn record_new(conn: &mut PgConn, job: &NewJob) -> Result<()> {
    conn.exec(
        "INSERT INTO queuectl_definitions (name, job_id, state, reason, spec_hash, command, env, \
         cwd, inputs, updated_at) VALUES ($1, $2, 'pending', NULL, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (name) DO UPDATE SET job_id = excluded.job_id, state = excluded.state, \
         reason = excluded.reason, spec_hash = excluded.spec_hash, command = excluded.command, \
         env = excluded.env, cwd = excluded.cwd, inputs = excluded.inputs, removed_at = NULL, \
         updated_at = excluded.updated_at",
        &[
            &job.definition,
            &job.id,
            &job.spec_hash,
            &job.command,
            &to_json(&job.env),
            &job.cwd,
            &job.inputs.as_ref().map(to_json),
            &job.created_at,
        ],
    )?;
    Ok(())
}

/// A job changed: if it is its definition's latest run, the record
/// follows its state, reason and spec.
pub(super) fn follow(conn: &mut PgConn, id: &str) -> Result<()> {
    conn.exec(
        "UPDATE queuectl_definitions d SET state = j.state, reason = j.reason, \
         spec_hash = j.spec_hash, command = j.command, env = j.env, cwd = j.cwd, \
         inputs = j.inputs, updated_at = j.updated_at FROM queuectl_jobs j \
         WHERE j.id = $1 AND d.name = j.definition AND d.job_id = j.id",
        &[&id],
    )?;
    Ok(())
}

/// The conditions of `filter` (its limit aside), each ` AND …` with its
/// parameter numbered `$1…`, with their arguments; `state` is the
/// filter's state as stored.
fn filter_conditions<'a>(
    filter: &'a JobFilter,
    state: &'a Option<&'static str>,
) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
    let mut sql = String::new();
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let columns: [(&str, Option<&'a (dyn ToSql + Sync)>); 3] = [
        ("state", state.as_ref().map(|s| s as &(dyn ToSql + Sync))),
        (
            "queue",
            filter.queue.as_ref().map(|q| q as &(dyn ToSql + Sync)),
        ),
        (
            "definition",
            filter.definition.as_ref().map(|d| d as &(dyn ToSql + Sync)),
        ),
    ];
    for (column, value) in columns {
        if let Some(value) = value {
            args.push(value);
            sql.push_str(&format!(" AND {column} = ${}", args.len()));
        }
    }
    if let Some(origin) = &filter.origin {
        args.push(crate::driver::origin_name(*origin));
        sql.push_str(&format!(" AND origin = ${}", args.len()));
    }
    if let Some(text) = &filter.text {
        args.push(text);
        sql.push_str(&format!(" AND strpos(command, ${}) > 0", args.len()));
    }
    if let Some((created_at, id)) = &filter.before {
        args.push(created_at);
        args.push(id);
        let n = args.len();
        sql.push_str(&format!(" AND (created_at, id) < (${}, ${n})", n - 1));
    }
    (sql, args)
}
