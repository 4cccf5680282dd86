//! The transitions users ask for (enqueue, cancel, dlq retry and remove,
//! prune) and the reads of the commands. Each is one transaction; a list
//! of ids is all or nothing.

use std::collections::BTreeMap;

use super::{Engine, deps};
use crate::driver::{Counts, DlqStat, JobFilter, MinuteCount, QueueFilter, WorkerInfo};
use crate::error::{Error, Result};
use crate::job::{Attempt, ID_PREFIX, Job, JobState, NewJob};

/// Why a user's cancel ends a waiting job.
pub const CANCELLED_BY_USER: &str = "cancelled by user";

impl Engine {
    /// Inserts `jobs` in one transaction: all of them or, on any error (a
    /// duplicate id), none. A job whose dependencies cannot run (a
    /// dependency never ran, or is dead) is cancelled at once, not left to
    /// wait forever.
    pub fn enqueue(&mut self, jobs: &[NewJob]) -> Result<()> {
        let now = jobs.iter().map(|j| j.created_at).max().unwrap_or(0);
        self.write(|ops| {
            ops.insert_jobs(jobs)?;
            let changed: Vec<String> = jobs
                .iter()
                .flat_map(|j| j.definition.iter().chain(&j.after))
                .cloned()
                .collect();
            if !changed.is_empty() {
                deps::settle(ops, changed, now)?;
            }
            Ok(())
        })
    }

    /// Cancels a job: a waiting one at once; a running one is flagged, and
    /// its worker stops it. Returns the state the job was in.
    pub fn cancel(&mut self, id: &str, now: i64) -> Result<JobState> {
        self.write(|ops| {
            let state = ops
                .job_states(&[id.to_string()])?
                .pop()
                .flatten()
                .ok_or_else(|| Error::UnknownJob(id.to_string()))?;
            match state {
                state if state.is_waiting() => {
                    let moved = ops.cancel_waiting(&[id.to_string()], CANCELLED_BY_USER, now)?;
                    deps::settle(ops, moved.into_iter().filter_map(|m| m.definition), now)?;
                }
                JobState::Processing => ops.request_cancel(&[id.to_string()], None, now)?,
                finished => {
                    return Err(Error::input(format!(
                        "job `{id}` is already {finished}; only pending, failed or processing jobs can be cancelled"
                    )));
                }
            }
            Ok(state)
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
        self.write(|ops| {
            let targets = dead_targets(ops, ids)?;
            let moved = ops.requeue_dead(&targets, keep_attempts, now)?;
            deps::settle(ops, moved.into_iter().filter_map(|m| m.definition), now)?;
            deps::recheck(ops, &targets, now)?;
            Ok(targets.clone())
        })
    }

    /// Deletes dead jobs (`ids` empty: all of them). Returns each deleted
    /// job's id and run count, for its logs. All or nothing.
    pub fn dlq_remove(&mut self, ids: &[String]) -> Result<Vec<(String, u32)>> {
        self.write(|ops| {
            let targets = dead_targets(ops, ids)?;
            ops.delete_jobs(&targets)
        })
    }

    /// Deletes jobs in `states` that finished before `before`. Returns
    /// each deleted job's id and run count, for its logs. What each
    /// definition last did is kept.
    pub fn prune(&mut self, states: &[JobState], before: i64) -> Result<Vec<(String, u32)>> {
        self.write(|ops| {
            let targets = ops.finished_before(states, before)?;
            ops.delete_jobs(&targets)
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
        self.write(|ops| {
            let targets = ops.dead_beyond(max_jobs, now.saturating_sub(max_age_ms))?;
            if targets.is_empty() {
                return Ok(Vec::new());
            }
            ops.delete_jobs(&targets)
        })
    }

    /// One job, or [`Error::UnknownJob`].
    pub fn job(&mut self, id: &str) -> Result<Job> {
        self.read(|ops| ops.job(id))?
            .ok_or_else(|| Error::UnknownJob(id.to_string()))
    }

    /// The job an argument names: a job id, or a definition's name (its
    /// latest run); `id:ID` is an id whatever definitions exist. A name
    /// that is both a job's id and another job's definition is an error
    /// listing both.
    pub fn resolve_job(&mut self, arg: &str) -> Result<String> {
        if let Some(id) = arg.strip_prefix(ID_PREFIX) {
            return self.job(id).map(|job| job.id);
        }
        let (by_id, latest, kept) = self.read(|ops| {
            let by_id = ops.job_states(&[arg.to_string()])?[0].is_some();
            let latest = ops.latest_job(arg)?;
            let kept = match &latest {
                Some(latest) => ops.job_states(std::slice::from_ref(latest))?[0].is_some(),
                None => false,
            };
            Ok((by_id, latest, kept))
        })?;
        match (by_id, latest) {
            (true, Some(latest)) if latest != arg => Err(Error::input_with_hint(
                format!(
                    "`{arg}` is ambiguous: it is the id of job `{arg}`, and names the latest run of `{arg}` ({latest})"
                ),
                format!(
                    "write `{ID_PREFIX}{arg}` for the job whose id it is, or `{latest}` for the latest run"
                ),
            )),
            (true, _) => Ok(arg.to_string()),
            (false, Some(latest)) if kept => Ok(latest),
            (false, Some(latest)) => Err(Error::input_with_hint(
                format!("the latest run of `{arg}` ({latest}) was pruned"),
                "`queuectl status` and `plan` still know what it did",
            )),
            (false, None) => Err(Error::UnknownJob(arg.to_string())),
        }
    }

    /// The state of each definition's latest run (`None`: it never ran).
    pub fn latest_states(
        &mut self,
        definitions: &[String],
    ) -> Result<Vec<(String, Option<JobState>)>> {
        let states = self.read(|ops| ops.latest_states(definitions))?;
        Ok(definitions.iter().cloned().zip(states).collect())
    }

    /// The attempts of a job, oldest first.
    pub fn attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        self.read(|ops| ops.attempts(id))
    }

    /// Jobs matching `filter`, newest first.
    pub fn list(&mut self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.read(|ops| ops.list_jobs(filter))
    }

    /// Dead jobs, most recently dead first.
    pub fn dead(&mut self, limit: u32) -> Result<Vec<Job>> {
        self.list(&JobFilter {
            state: Some(JobState::Dead),
            limit,
            ..JobFilter::default()
        })
    }

    /// How many jobs match `filter`, its limit aside: from the kept
    /// counts unless it names a definition, an origin, a text or a cursor.
    pub fn count(&mut self, filter: &JobFilter) -> Result<u64> {
        if filter.definition.is_some()
            || filter.origin.is_some()
            || filter.text.is_some()
            || filter.before.is_some()
        {
            return self.read(|ops| ops.count_jobs(filter));
        }
        Ok(self
            .counts()?
            .rows
            .iter()
            .filter(|(queue, state, _)| {
                filter.state.is_none_or(|s| s == *state)
                    && filter.queue.as_ref().is_none_or(|q| q == queue)
            })
            .map(|(_, _, n)| n)
            .sum())
    }

    /// How many jobs each queue has in each state.
    pub fn counts(&mut self) -> Result<Counts> {
        self.read(|ops| ops.counts())
    }

    /// How many jobs are pending, processing, and failed (waiting for a
    /// retry).
    pub fn unfinished_counts(&mut self) -> Result<(u64, u64, u64)> {
        self.read(|ops| ops.unfinished_counts())
    }

    /// Whether any job of `queues` is pending, running or waiting for a retry.
    pub fn has_unfinished(&mut self, queues: &QueueFilter) -> Result<bool> {
        self.read(|ops| ops.has_unfinished(queues))
    }

    /// Whether any job of `queues` that is not in a paused queue is
    /// pending, running or waiting for a retry: what `--until-idle`
    /// waits for (a paused queue's jobs wait for `queue resume`).
    pub fn has_runnable(&mut self, queues: &QueueFilter) -> Result<bool> {
        self.read(|ops| {
            let paused: Vec<String> = ops.paused_queues()?.into_keys().collect();
            ops.has_unfinished(&queues.without(&paused))
        })
    }

    /// The paused queues, each with when it was paused (ms).
    pub fn paused_queues(&mut self) -> Result<BTreeMap<String, i64>> {
        self.read(|ops| ops.paused_queues())
    }

    /// Pauses (`pause`) or resumes queues: claims skip a paused queue's
    /// jobs until it is resumed, whoever claims. Returns, for each queue,
    /// whether that changed it (it was not paused already, or was).
    pub fn set_paused(&mut self, queues: &[String], pause: bool, now: i64) -> Result<Vec<bool>> {
        self.write(|ops| {
            queues
                .iter()
                .map(|queue| ops.set_paused(queue, pause.then_some(now)))
                .collect()
        })
    }

    /// When the next waiting job of `queues` becomes ready, if any is waiting.
    pub fn next_run_at(&mut self, queues: &QueueFilter) -> Result<Option<i64>> {
        self.read(|ops| ops.next_run_at(queues))
    }

    /// The jobs completed and dead since `since`, per minute.
    pub fn finished_by_minute(&mut self, since: i64) -> Result<Vec<MinuteCount>> {
        self.read(|ops| ops.finished_by_minute(since))
    }

    /// Dead jobs counted by queue and exit code.
    pub fn dlq_stats(&mut self) -> Result<Vec<DlqStat>> {
        self.read(|ops| ops.dlq_stats())
    }

    /// The registered workers, with how many jobs each is running.
    pub fn workers(&mut self) -> Result<Vec<WorkerInfo>> {
        self.read(|ops| ops.workers())
    }

    /// The jobs these workers are running: (id, definition).
    pub fn running_jobs(&mut self, runners: &[i64]) -> Result<Vec<(String, Option<String>)>> {
        self.read(|ops| ops.running_jobs(runners))
    }
}

/// The dead jobs named by `ids` (every dead job when empty); an id that is
/// unknown or not dead is an error.
fn dead_targets(ops: &mut dyn crate::driver::Ops, ids: &[String]) -> Result<Vec<String>> {
    if ids.is_empty() {
        return ops.dead_ids();
    }
    for (id, state) in ids.iter().zip(ops.job_states(ids)?) {
        match state {
            None => return Err(Error::UnknownJob(id.clone())),
            Some(JobState::Dead) => {}
            Some(state) => {
                return Err(Error::input_with_hint(
                    format!("job `{id}` is {state}, not dead"),
                    "`queuectl dlq list` shows the dead jobs",
                ));
            }
        }
    }
    Ok(ids.to_vec())
}
