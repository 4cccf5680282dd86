//! Jobs and attempts: enqueue, claim, finish and the queries of the read
//! commands. Each public method is one transaction.

use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};
use serde::Serialize;

use super::Store;
use crate::error::{Error, Result};
use crate::job::{Attempt, AttemptOutcome, Claimed, Job, JobState, NewJob, Origin};
use crate::retry::RetryPolicy;

const JOB_COLUMNS: &str = "id, command, definition, origin, queue, priority, state, attempts, \
    runs, max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, timeout_ms, env, cwd, \
    run_at, created_at, updated_at, started_at, finished_at, exit_code, last_error, spec_hash, \
    source_commit, reason, after_deps, tick_at";

/// What `enqueue` inserted.
#[derive(Debug, Default)]
pub struct EnqueueOutcome {
    pub ids: Vec<String>,
}

/// Which jobs `list` shows.
#[derive(Debug, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub queue: Option<String>,
    pub definition: Option<String>,
    pub limit: u32,
}

/// Jobs counted by queue and state.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    /// (queue, state, count), sorted by queue.
    pub rows: Vec<(String, JobState, u64)>,
}

impl Counts {
    pub fn total(&self, state: JobState) -> u64 {
        self.rows
            .iter()
            .filter(|(_, s, _)| *s == state)
            .map(|(_, _, n)| n)
            .sum()
    }
}

/// Dead jobs of one queue and exit code.
#[derive(Debug, Serialize)]
pub struct DlqStat {
    pub queue: String,
    pub exit_code: Option<i32>,
    pub count: u64,
    pub newest_at: Option<i64>,
}

/// How an attempt ended, and the state its job moves to.
#[derive(Debug)]
pub struct Finish<'a> {
    pub id: &'a str,
    pub run: u32,
    pub runner: i64,
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub error: Option<&'a str>,
    pub output_bytes: u64,
    /// The job's next state.
    pub state: JobState,
    /// For `failed` and `pending`: when it may run again.
    pub run_at: Option<i64>,
    pub now: i64,
}

/// The job a worker should run next, if any.
#[derive(Debug, Clone, Copy)]
pub struct ClaimArgs<'a> {
    pub runner: i64,
    pub queues: &'a QueueFilter,
    pub lease_until: i64,
    pub now: i64,
}

/// Which queues a worker slot takes jobs from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueFilter {
    /// Every queue.
    Any,
    /// These queues.
    Only(Vec<String>),
    /// Every queue but these (the default pool: the others have their own).
    Except(Vec<String>),
}

impl QueueFilter {
    /// An SQL condition on `column`, and the value to bind to `?{param}`.
    fn sql(&self, column: &str, param: usize) -> (String, Option<String>) {
        match self {
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

    /// Whether a job of `queue` may be taken.
    pub fn allows(&self, queue: &str) -> bool {
        match self {
            QueueFilter::Any => true,
            QueueFilter::Only(queues) => queues.iter().any(|q| q == queue),
            QueueFilter::Except(queues) => !queues.iter().any(|q| q == queue),
        }
    }
}

impl Store {
    /// Inserts `jobs` in one durable transaction: all of them or, on any
    /// error (a duplicate id), none.
    pub fn enqueue(&mut self, jobs: &[NewJob]) -> Result<EnqueueOutcome> {
        self.write(|tx| {
            let mut ids = Vec::with_capacity(jobs.len());
            for job in jobs {
                insert(tx, job)?;
                ids.push(job.id.clone());
            }
            // A run of a definition whose dependency cannot run (it never
            // did, or is dead) is cancelled now, not left to wait forever.
            if let Some(now) = jobs
                .iter()
                .filter(|j| !j.after.is_empty())
                .map(|j| j.created_at)
                .max()
            {
                cancel_blocked(tx, now)?;
            }
            Ok(EnqueueOutcome { ids })
        })
    }

    /// Atomically claims the best ready job (priority, then run_at, then id).
    pub fn claim(&mut self, args: ClaimArgs<'_>) -> Result<Option<Claimed>> {
        self.write(|tx| claim_in(tx, args))
    }

    /// Records the end of an attempt and, in the same transaction, claims the
    /// worker's next job. Returns whether the attempt was still this
    /// worker's: false when the worker was declared dead and the job
    /// rescued meanwhile, and then nothing is written (the rescuer's history
    /// stands) and nothing is claimed.
    pub fn finish(
        &mut self,
        finish: &Finish<'_>,
        next: Option<ClaimArgs<'_>>,
    ) -> Result<(bool, Option<Claimed>)> {
        self.write(|tx| {
            let owned = tx
                .prepare_cached(
                    "SELECT 1 FROM jobs WHERE id = ?1 AND runner = ?2 AND runs = ?3 \
                     AND state = 'processing'",
                )?
                .exists(params![finish.id, finish.runner, finish.run])?;
            if !owned {
                return Ok((false, None));
            }
            tx.prepare_cached(
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
            let uncount = i64::from(finish.outcome == AttemptOutcome::Interrupted);
            let finished_at = finish.state.is_finished().then_some(finish.now);
            tx.prepare_cached(
                "UPDATE jobs SET state = ?3, exit_code = ?4, last_error = ?5, \
                     run_at = COALESCE(?6, run_at), finished_at = ?7, attempts = attempts - ?8, \
                     runner = NULL, lease_until = NULL, cancel_requested = 0, updated_at = ?9 \
                     WHERE id = ?1 AND runner = ?2 AND state = 'processing'",
            )?
            .execute(params![
                finish.id,
                finish.runner,
                finish.state.as_str(),
                finish.exit_code,
                finish.error,
                finish.run_at,
                finished_at,
                uncount,
                finish.now,
            ])?;
            if matches!(finish.state, JobState::Dead | JobState::Cancelled) {
                cancel_blocked(tx, finish.now)?;
            }
            let claimed = match next {
                Some(args) => claim_in(tx, args)?,
                None => None,
            };
            Ok((owned, claimed))
        })
    }

    /// One job, or [`Error::UnknownJob`].
    pub fn job(&self, id: &str) -> Result<Job> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([id], job_from_row)
                .optional()?
                .ok_or_else(|| Error::UnknownJob(id.to_string()))
        })
    }

    /// The job an argument names: a job id, or a definition's name (its
    /// latest run); `id:ID` is an id whatever definitions exist. A name
    /// that is both a job's id and another job's definition is an error
    /// listing both.
    pub fn resolve_job(&self, arg: &str) -> Result<String> {
        if let Some(id) = arg.strip_prefix(ID_PREFIX) {
            return self.job(id).map(|job| job.id);
        }
        self.read(|conn| {
            let by_id: bool = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?1)")?
                .query_row([arg], |row| row.get(0))?;
            let by_name: Option<String> = conn
                .prepare_cached("SELECT job_id FROM definitions WHERE name = ?1")?
                .query_row([arg], |row| row.get(0))
                .optional()?;
            match (by_id, by_name) {
                (true, Some(latest)) if latest != arg => Err(Error::input_with_hint(
                    format!(
                        "`{arg}` is ambiguous: it is the id of job `{arg}`, and names the latest run of `{arg}` ({latest})"
                    ),
                    format!("write `{ID_PREFIX}{arg}` for the job whose id it is, or `{latest}` for the latest run"),
                )),
                (true, _) => Ok(arg.to_string()),
                (false, Some(latest)) => {
                    let kept: bool = conn
                        .prepare_cached("SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?1)")?
                        .query_row([&latest], |row| row.get(0))?;
                    if kept {
                        Ok(latest)
                    } else {
                        Err(Error::input_with_hint(
                            format!("the latest run of `{arg}` ({latest}) was pruned"),
                            "`queuectl status` and `plan` still know what it did",
                        ))
                    }
                }
                (false, None) => Err(Error::UnknownJob(arg.to_string())),
            }
        })
    }

    /// The state of each definition's latest run (`None`: it never ran).
    pub fn latest_states(&self, definitions: &[String]) -> Result<Vec<(String, Option<JobState>)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT state FROM definitions WHERE name = ?1")?;
            let mut states = Vec::with_capacity(definitions.len());
            for name in definitions {
                let state: Option<String> = stmt.query_row([name], |row| row.get(0)).optional()?;
                let state = state.map(|s| parse_state(&s)).transpose()?;
                states.push((name.clone(), state));
            }
            Ok(states)
        })
    }

    /// The attempts of a job, oldest first.
    pub fn attempts(&self, id: &str) -> Result<Vec<Attempt>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT run, started_at, finished_at, exit_code, outcome, error, output_bytes \
                 FROM attempts WHERE job_id = ?1 ORDER BY run",
            )?;
            let rows = stmt.query_map([id], |row| {
                Ok(Attempt {
                    run: row.get(0)?,
                    started_at: row.get(1)?,
                    finished_at: row.get(2)?,
                    exit_code: row.get(3)?,
                    outcome: row
                        .get::<_, Option<String>>(4)?
                        .and_then(|s| AttemptOutcome::parse(&s)),
                    error: row.get(5)?,
                    output_bytes: row.get(6)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Jobs matching `filter`, newest first.
    pub fn list(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
        let mut args: Vec<&dyn ToSql> = Vec::new();
        let state = filter.state.map(JobState::as_str);
        if let Some(state) = &state {
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
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
        args.push(&filter.limit);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(args.as_slice(), job_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// How many jobs are pending, processing, and failed (waiting for a
    /// retry): cheap, through the state index, whatever the history holds.
    pub fn unfinished_counts(&self) -> Result<(u64, u64, u64)> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT state, COUNT(*) FROM jobs WHERE state IN ('pending', 'processing', 'failed') \
                 GROUP BY state",
            )?;
            let mut counts = (0, 0, 0);
            for row in stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?)))? {
                let (state, n) = row?;
                match state.as_str() {
                    "pending" => counts.0 = n,
                    "processing" => counts.1 = n,
                    _ => counts.2 = n,
                }
            }
            Ok(counts)
        })
    }

    /// How many jobs each queue has in each state.
    pub fn counts(&self) -> Result<Counts> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state ORDER BY queue",
            )?;
            let rows = stmt.query_map([], |row| {
                let state: String = row.get(1)?;
                Ok((row.get(0)?, parse_state(&state)?, row.get(2)?))
            })?;
            Ok(Counts {
                rows: rows.collect::<rusqlite::Result<Vec<_>>>()?,
            })
        })
    }

    /// Whether any job of `queues` is pending, running or waiting for a retry.
    pub fn has_unfinished(&self, queues: &QueueFilter) -> Result<bool> {
        let (filter, value) = queues.sql("queue", 1);
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('pending', 'processing', 'failed') \
             AND {filter})"
        );
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(match value {
                Some(v) => stmt.query_row([v], |row| row.get(0))?,
                None => stmt.query_row([], |row| row.get(0))?,
            })
        })
    }

    /// When the next waiting job of `queues` becomes ready, if any is waiting.
    pub fn next_run_at(&self, queues: &QueueFilter) -> Result<Option<i64>> {
        let (filter, value) = queues.sql("queue", 1);
        let sql = format!(
            "SELECT MIN(run_at) FROM jobs WHERE state IN ('pending', 'failed') AND {filter}"
        );
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(match value {
                Some(v) => stmt.query_row([v], |row| row.get(0))?,
                None => stmt.query_row([], |row| row.get(0))?,
            })
        })
    }

    /// Cancels a job: a waiting one at once; a running one is flagged, and
    /// its worker stops it. Returns the state the job was in.
    pub fn cancel(&mut self, id: &str, now: i64) -> Result<JobState> {
        self.write(|tx| {
            let state = job_state(tx, id)?;
            match state {
                JobState::Pending | JobState::Failed => {
                    tx.execute(
                        "UPDATE jobs SET state = 'cancelled', finished_at = ?2, updated_at = ?2, \
                         reason = 'cancelled by user' WHERE id = ?1",
                        params![id, now],
                    )?;
                    cancel_blocked(tx, now)?;
                }
                JobState::Processing => {
                    tx.execute(
                        "UPDATE jobs SET cancel_requested = 1, updated_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )?;
                }
                finished => {
                    return Err(Error::input(format!(
                        "job `{id}` is already {finished}; only pending, failed or processing jobs can be cancelled"
                    )));
                }
            }
            Ok(state)
        })
    }

    /// Dead jobs, most recently dead first.
    pub fn dead(&self, limit: u32) -> Result<Vec<Job>> {
        self.list(&JobFilter {
            state: Some(JobState::Dead),
            limit,
            ..JobFilter::default()
        })
    }

    /// Puts dead jobs back in the queue (`ids` empty: all of them), with
    /// their attempt count reset unless `keep_attempts`. All or nothing.
    pub fn dlq_retry(
        &mut self,
        ids: &[String],
        keep_attempts: bool,
        now: i64,
    ) -> Result<Vec<String>> {
        self.write(|tx| {
            let targets = dead_targets(tx, ids)?;
            let mut stmt = tx.prepare_cached(
                "UPDATE jobs SET state = 'pending', run_at = ?2, updated_at = ?2, \
                 finished_at = NULL, reason = NULL, attempts = CASE WHEN ?3 THEN attempts ELSE 0 END \
                 WHERE id = ?1",
            )?;
            for id in &targets {
                stmt.execute(params![id, now, keep_attempts])?;
            }
            Ok(targets)
        })
    }

    /// Deletes dead jobs (`ids` empty: all of them). Returns each deleted
    /// job's id and run count, for its logs. All or nothing.
    pub fn dlq_remove(&mut self, ids: &[String]) -> Result<Vec<(String, u32)>> {
        self.write(|tx| {
            let targets = dead_targets(tx, ids)?;
            delete_jobs(tx, &targets)
        })
    }

    /// Dead jobs counted by queue and exit code.
    pub fn dlq_stats(&self) -> Result<Vec<DlqStat>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT queue, exit_code, COUNT(*), MAX(finished_at) FROM jobs \
                 WHERE state = 'dead' GROUP BY queue, exit_code ORDER BY queue, COUNT(*) DESC",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(DlqStat {
                    queue: row.get(0)?,
                    exit_code: row.get(1)?,
                    count: row.get(2)?,
                    newest_at: row.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Deletes jobs in `states` that finished before `before`. Returns each
    /// deleted job's id and run count, for its logs.
    pub fn prune(&mut self, states: &[JobState], before: i64) -> Result<Vec<(String, u32)>> {
        self.write(|tx| {
            let mut targets = Vec::new();
            let mut stmt =
                tx.prepare_cached("SELECT id FROM jobs WHERE state = ?1 AND finished_at < ?2")?;
            for state in states {
                let ids = stmt.query_map(params![state.as_str(), before], |row| row.get(0))?;
                for id in ids {
                    targets.push(id?);
                }
            }
            delete_jobs(tx, &targets)
        })
    }

    /// Keeps the dead letter queue within `max_jobs` and `max_age_ms`,
    /// deleting the oldest dead jobs first. Returns what was deleted.
    pub fn cap_dlq(
        &mut self,
        max_jobs: u64,
        max_age_ms: i64,
        now: i64,
    ) -> Result<Vec<(String, u32)>> {
        self.write(|tx| {
            let targets: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM jobs WHERE state = 'dead' AND (finished_at < ?1 OR id IN \
                     (SELECT id FROM jobs WHERE state = 'dead' ORDER BY finished_at DESC \
                     LIMIT -1 OFFSET ?2))",
                )?
                .query_map(params![now - max_age_ms, max_jobs], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            delete_jobs(tx, &targets)
        })
    }
}

/// Written before an argument, it is a job id, never a definition's name.
pub const ID_PREFIX: &str = "id:";

/// Inserts one job; a duplicate id is an input error.
pub(super) fn insert(conn: &Connection, job: &NewJob) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO jobs (id, command, definition, origin, queue, priority, state, \
         max_retries, backoff_base, max_delay_ms, jitter, no_retry_codes, timeout_ms, env, \
         cwd, run_at, created_at, updated_at, spec_hash, source_commit, after_deps, tick_at, \
         inputs) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
         ?15, ?16, ?16, ?17, ?18, ?19, ?20, ?21)",
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

/// The state of the latest job of definition `d.value` (in a `json_each`
/// over `after_deps`), from the record that outlives pruned jobs.
pub(super) const LATEST_STATE: &str = "(SELECT x.state FROM definitions x WHERE x.name = d.value)";

/// Cancels waiting jobs whose dependency's latest run is dead or cancelled,
/// or that has never run at all, and so on down the chain: they would
/// otherwise wait forever.
pub(super) fn cancel_blocked(conn: &Connection, now: i64) -> Result<()> {
    let mut find = conn.prepare_cached(&format!(
        "SELECT j.id, d.value, {LATEST_STATE} FROM jobs j, json_each(j.after_deps) d \
         WHERE j.after_deps IS NOT NULL AND j.state IN ('pending', 'failed') \
         AND ({LATEST_STATE} IN ('dead', 'cancelled') OR {LATEST_STATE} IS NULL)"
    ))?;
    let mut cancel = conn.prepare_cached(
        "UPDATE jobs SET state = 'cancelled', reason = ?2, finished_at = ?3, updated_at = ?3 \
         WHERE id = ?1 AND state IN ('pending', 'failed')",
    )?;
    loop {
        let blocked: Vec<(String, String, Option<String>)> = find
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if blocked.is_empty() {
            return Ok(());
        }
        for (id, dep, state) in blocked {
            let reason = match state {
                Some(state) => format!("dependency `{dep}` is {state}"),
                None => format!("dependency `{dep}` has never run"),
            };
            cancel.execute(params![id, reason, now])?;
        }
    }
}

/// The claim itself: one `UPDATE … RETURNING` on the ready index, plus the
/// attempt's row, inside the caller's transaction.
fn claim_in(conn: &Connection, args: ClaimArgs<'_>) -> Result<Option<Claimed>> {
    let (queue_filter, queue_value) = args.queues.sql("c.queue", 4);
    // Left to itself the planner takes the state index and sorts every
    // waiting job on each claim (O(n) per claim); the ready indexes hold the
    // claim's order, so the first row that qualifies is the one.
    let index = match args.queues {
        QueueFilter::Only(queues) if queues.len() == 1 => "jobs_ready_by_queue",
        _ => "jobs_ready",
    };
    let sql = format!(
        "UPDATE jobs SET state = 'processing', attempts = attempts + 1, runs = runs + 1, \
         runner = ?1, lease_until = ?2, started_at = ?3, updated_at = ?3, exit_code = NULL \
         WHERE id = (SELECT c.id FROM jobs c INDEXED BY {index} WHERE c.state IN ('pending', 'failed') \
         AND c.run_at <= ?3 AND {queue_filter} AND (c.after_deps IS NULL OR NOT EXISTS \
         (SELECT 1 FROM json_each(c.after_deps) d WHERE {LATEST_STATE} IS NOT 'completed')) \
         ORDER BY c.priority DESC, c.run_at, c.id LIMIT 1) \
         AND EXISTS (SELECT 1 FROM workers w WHERE w.id = ?1) \
         RETURNING id, command, queue, attempts, runs, max_retries, backoff_base, max_delay_ms, \
         jitter, no_retry_codes, timeout_ms, env, cwd, definition"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let row_to_claimed = |row: &Row<'_>| -> rusqlite::Result<Claimed> {
        Ok(Claimed {
            id: row.get(0)?,
            command: row.get(1)?,
            queue: row.get(2)?,
            attempts: row.get(3)?,
            run: row.get(4)?,
            retry: RetryPolicy {
                max_retries: row.get(5)?,
                backoff_base: row.get(6)?,
                max_delay_ms: row.get(7)?,
                jitter: row.get(8)?,
                no_retry_exit_codes: from_json(row, 9)?,
            },
            timeout_ms: row.get(10)?,
            env: from_json(row, 11)?,
            cwd: row.get(12)?,
            definition: row.get(13)?,
        })
    };
    let claimed = match queue_value {
        None => stmt
            .query_row(
                params![args.runner, args.lease_until, args.now],
                row_to_claimed,
            )
            .optional()?,
        Some(value) => stmt
            .query_row(
                params![args.runner, args.lease_until, args.now, value],
                row_to_claimed,
            )
            .optional()?,
    };
    if let Some(job) = &claimed {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO attempts (job_id, run, runner, started_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![job.id, job.run, args.runner, args.now])?;
    }
    Ok(claimed)
}

fn job_state(conn: &Connection, id: &str) -> Result<JobState> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM jobs WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?;
    let state = state.ok_or_else(|| Error::UnknownJob(id.to_string()))?;
    Ok(parse_state(&state)?)
}

/// The dead jobs named by `ids` (every dead job when empty); an id that is
/// unknown or not dead is an error.
fn dead_targets(conn: &Connection, ids: &[String]) -> Result<Vec<String>> {
    if ids.is_empty() {
        let mut stmt =
            conn.prepare_cached("SELECT id FROM jobs WHERE state = 'dead' ORDER BY id")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        return Ok(rows.collect::<rusqlite::Result<_>>()?);
    }
    for id in ids {
        let state = job_state(conn, id)?;
        if state != JobState::Dead {
            return Err(Error::input_with_hint(
                format!("job `{id}` is {state}, not dead"),
                "`queuectl dlq list` shows the dead jobs",
            ));
        }
    }
    Ok(ids.to_vec())
}

fn delete_jobs(conn: &Connection, ids: &[String]) -> Result<Vec<(String, u32)>> {
    let mut stmt = conn.prepare_cached("DELETE FROM jobs WHERE id = ?1 RETURNING runs")?;
    let mut deleted = Vec::with_capacity(ids.len());
    for id in ids {
        let runs: u32 = stmt.query_row([id], |row| row.get(0))?;
        deleted.push((id.clone(), runs));
    }
    Ok(deleted)
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let origin: String = row.get(3)?;
    let state: String = row.get(6)?;
    Ok(Job {
        id: row.get(0)?,
        command: row.get(1)?,
        definition: row.get(2)?,
        origin: Origin::parse(&origin).ok_or_else(|| bad_value(3, &origin))?,
        queue: row.get(4)?,
        priority: row.get(5)?,
        state: parse_state(&state)?,
        attempts: row.get(7)?,
        runs: row.get(8)?,
        retry: RetryPolicy {
            max_retries: row.get(9)?,
            backoff_base: row.get(10)?,
            max_delay_ms: row.get(11)?,
            jitter: row.get(12)?,
            no_retry_exit_codes: from_json(row, 13)?,
        },
        timeout_ms: row.get(14)?,
        env: from_json(row, 15)?,
        cwd: row.get(16)?,
        run_at: row.get(17)?,
        created_at: row.get(18)?,
        updated_at: row.get(19)?,
        started_at: row.get(20)?,
        finished_at: row.get(21)?,
        exit_code: row.get(22)?,
        last_error: row.get(23)?,
        spec_hash: row.get(24)?,
        source_commit: row.get(25)?,
        reason: row.get(26)?,
        after: from_json_or_empty(row, 27)?,
        tick_at: row.get(28)?,
    })
}

/// `after` as stored: NULL when empty, so the claim skips the check.
pub(super) fn deps_json(after: &[String]) -> Option<String> {
    (!after.is_empty()).then(|| to_json(after))
}

pub(super) fn parse_state(s: &str) -> rusqlite::Result<JobState> {
    JobState::ALL
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| bad_value(6, s))
}

fn bad_value(column: usize, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("unexpected value `{value}`").into(),
    )
}

pub(super) fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

/// A JSON column; a value that does not decode is an error, not a default.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    column: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
    })
}

/// A nullable JSON column: NULL is the empty value.
pub(super) fn from_json_or_empty<T: serde::de::DeserializeOwned + Default>(
    row: &Row<'_>,
    column: usize,
) -> rusqlite::Result<T> {
    match row.get::<_, Option<String>>(column)? {
        Some(_) => from_json(row, column),
        None => Ok(T::default()),
    }
}

fn is_primary_key_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}
