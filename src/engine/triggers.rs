//! Triggers in the engine: a watch batch and a cron tick, each enqueued
//! in one transaction after the pure decision of [`crate::trigger`] saw
//! the definition's jobs as they are in it.

use super::{Engine, deps};
use crate::driver::ScheduleRow;
use crate::error::Result;
use crate::job::{JobState, NewJob, Payload};
use crate::jobfile::{OnBusy, Overlap};
use crate::trigger::cron::{self, OverlapDecision};
use crate::trigger::watch::{self, WatchDecision};

/// Why `on_busy = "restart"` stops a running job.
pub const RESTARTED: &str = "restarted by a change";
/// Why `overlap = "replace"` cancels or stops the last run.
pub const REPLACED_BY_TICK: &str = "replaced by a newer tick";

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    Enqueued(String),
    /// The last run is still going (`overlap = "skip"`).
    SkippedBusy,
    /// Another scheduler enqueued this tick already.
    AlreadyDone,
}

/// What a watched change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchOutcome {
    Enqueued(String),
    /// Merged into a job of the definition still waiting to start.
    Merged(String),
    /// A run was going and `on_busy = "skip"`.
    Skipped,
}

impl Engine {
    /// Enqueues the jobs of a watch batch (made by `make` for each
    /// payload), in one transaction: a change for which a job of the
    /// definition is still pending merges into it; while one runs,
    /// `on_busy` decides (queue a follow-up, skip, or restart: stop the
    /// running one, which ends cancelled, not failed).
    pub fn watch_enqueue(
        &mut self,
        definition: &str,
        payloads: &[Payload],
        on_busy: OnBusy,
        mut make: impl FnMut(Payload) -> NewJob,
        now: i64,
    ) -> Result<Vec<WatchOutcome>> {
        let jobs: Vec<NewJob> = payloads.iter().cloned().map(&mut make).collect();
        self.write(|ops| {
            let mut outcomes = Vec::with_capacity(jobs.len());
            for job in &jobs {
                let Some(payload) = &job.payload else {
                    continue;
                };
                let current =
                    ops.definition_jobs(definition, &[JobState::Pending, JobState::Processing])?;
                match watch::decide(&current, payload, on_busy) {
                    WatchDecision::Merge { id, payload } => {
                        ops.set_payload(&id, &payload, now)?;
                        outcomes.push(WatchOutcome::Merged(id));
                    }
                    WatchDecision::Skip => outcomes.push(WatchOutcome::Skipped),
                    WatchDecision::Enqueue { restart } => {
                        ops.request_cancel(&restart, Some(RESTARTED), now)?;
                        ops.insert_jobs(std::slice::from_ref(job))?;
                        deps::settle(ops, [definition.to_string()], now)?;
                        outcomes.push(WatchOutcome::Enqueued(job.id.clone()));
                    }
                }
            }
            Ok(outcomes)
        })
    }

    /// A schedule as last recorded.
    pub fn schedule(&mut self, definition: &str) -> Result<Option<ScheduleRow>> {
        self.read(|ops| ops.schedule(definition))
    }

    /// Records `row`, and with `job` enqueues the tick under `overlap`, in
    /// one transaction; a tick already enqueued (by a restart, another
    /// scheduler) is not enqueued again.
    pub fn schedule_tick(
        &mut self,
        definition: &str,
        row: &ScheduleRow,
        job: Option<&NewJob>,
        overlap: Overlap,
        now: i64,
    ) -> Result<Option<TickOutcome>> {
        self.write(|ops| {
            ops.record_schedule(definition, row)?;
            let Some(job) = job else { return Ok(None) };
            if let Some(tick) = job.tick_at
                && ops.tick_enqueued(definition, tick)?
            {
                return Ok(Some(TickOutcome::AlreadyDone));
            }
            let busy = ops.definition_jobs(definition, &JobState::UNFINISHED)?;
            match cron::overlap(overlap, &busy) {
                OverlapDecision::Skip => return Ok(Some(TickOutcome::SkippedBusy)),
                OverlapDecision::Enqueue { cancel, stop } => {
                    ops.cancel_waiting(&cancel, REPLACED_BY_TICK, now)?;
                    ops.request_cancel(&stop, Some(REPLACED_BY_TICK), now)?;
                }
            }
            ops.insert_jobs(std::slice::from_ref(job))?;
            deps::settle(ops, [definition.to_string()], now)?;
            Ok(Some(TickOutcome::Enqueued(job.id.clone())))
        })
    }
}
