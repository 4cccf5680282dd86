//! Firing triggers in the `run` that owns the queue: the cron
//! [`Scheduler`] (it looks at the wall clock every time round the
//! supervisor's loop, never a long sleep on the monotonic clock, so a
//! suspend or an NTP jump is seen at once) and the watch batches whose
//! debounce ended. The decisions are the engine's and
//! [`crate::trigger`]'s; this module only fires them and reports.

use std::path::PathBuf;
use std::time::Instant;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::supervisor::Supervisor;
use crate::clock::now_ms;
use crate::driver::ScheduleRow;
use crate::engine::{Engine, TickOutcome, WatchOutcome};
use crate::error::Result;
use crate::events::Event;
use crate::job::{Origin, Payload};
use crate::jobfile::{JobDef, Jobfile, Trigger, jobfile_commit};
use crate::trigger::cron::{decide, next_tick, parse_cron, time_zone, zone_name};
use crate::trigger::triggered_job;

/// Look at every schedule at least this often, whatever the next tick.
const CHECK_EVERY: i64 = 5_000;

/// The schedules of a jobfile, run by the `run` that owns the queue.
#[derive(Debug)]
pub struct Scheduler {
    entries: Vec<Entry>,
    dir: PathBuf,
    commit: Option<String>,
    next_check: i64,
}

#[derive(Debug)]
struct Entry {
    def: JobDef,
    cron: Cron,
    zone: TimeZone,
    zone_name: String,
}

impl Scheduler {
    /// The scheduled definitions of `jobfile`; `None` when it has none.
    pub fn new(jobfile: &Jobfile) -> Option<Scheduler> {
        let entries: Vec<Entry> = jobfile
            .jobs
            .values()
            .filter_map(|def| match &def.trigger {
                Trigger::Schedule(schedule) => Some(Entry {
                    cron: parse_cron(&schedule.expression).ok()?,
                    zone: time_zone(schedule.timezone.as_deref()),
                    zone_name: zone_name(schedule.timezone.as_deref()).to_string(),
                    def: def.clone(),
                }),
                _ => None,
            })
            .collect();
        (!entries.is_empty()).then(|| Scheduler {
            entries,
            dir: jobfile.dir.clone(),
            commit: jobfile_commit(&jobfile.path),
            next_check: 0,
        })
    }

    /// Enqueues the ticks due at `now` (ms, wall clock); cheap when none is.
    pub fn step(&mut self, engine: &mut Engine, now: i64) -> Result<Vec<Event>> {
        if now < self.next_check {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        let mut next_check = now + CHECK_EVERY;
        for entry in &self.entries {
            let Trigger::Schedule(schedule) = &entry.def.trigger else {
                continue;
            };
            let stored = engine.schedule(&entry.def.name)?;
            let same = stored.as_ref().is_some_and(|s| {
                s.expression == schedule.expression && s.timezone == entry.zone_name
            });
            let decision = decide(
                &entry.cron,
                &entry.zone,
                stored.map(|s| (s.last_tick, s.checked_at)),
                same,
                schedule.missed,
                now,
            );
            let job = decision.enqueue.map(|due| {
                triggered_job(
                    &entry.def,
                    &self.dir,
                    Origin::Schedule,
                    self.commit.as_deref(),
                    Payload::Scheduled(due.tick),
                    now,
                )
            });
            let row = ScheduleRow {
                expression: schedule.expression.clone(),
                timezone: entry.zone_name.clone(),
                last_tick: decision.last_tick,
                checked_at: now,
                missed: decision.missed,
                missed_at: (decision.missed > 0).then_some(decision.last_tick),
            };
            let outcome =
                engine.schedule_tick(&entry.def.name, &row, job.as_ref(), schedule.overlap, now)?;
            if let (Some(due), Some(outcome)) = (decision.enqueue, outcome) {
                events.push(Event::Ticked {
                    definition: entry.def.name.clone(),
                    tick: due.tick,
                    catch_up: due.missed,
                    id: match &outcome {
                        TickOutcome::Enqueued(id) => Some(id.clone()),
                        _ => None,
                    },
                    skipped: match outcome {
                        TickOutcome::Enqueued(_) => None,
                        TickOutcome::SkippedBusy => Some("the last run is still going".into()),
                        TickOutcome::AlreadyDone => Some("already enqueued".into()),
                    },
                });
            }
            let after = Timestamp::from_millisecond(now).unwrap_or(Timestamp::UNIX_EPOCH);
            if let Some(next) = next_tick(&entry.cron, &entry.zone, after) {
                next_check = next_check.min(next.as_millisecond());
            }
        }
        self.next_check = next_check;
        Ok(events)
    }
}

impl Supervisor<'_> {
    /// Enqueues the jobs of the watch batches whose debounce ended.
    pub(super) fn fire_watches(&mut self) -> Result<()> {
        let (Some(triggers), Some(jobfile)) = (self.triggers.as_mut(), self.jobfile.as_ref())
        else {
            return Ok(());
        };
        for batch in triggers.poll(Instant::now()) {
            let Some(def) = jobfile.jobs.get(&batch.definition) else {
                continue;
            };
            let now = now_ms();
            let payloads = batch.payloads();
            let outcomes = self.engine.watch_enqueue(
                &def.name,
                &payloads,
                batch.on_busy,
                |payload| triggered_job(def, &jobfile.dir, Origin::Watch, None, payload, now),
                now,
            )?;
            for (payload, outcome) in payloads.iter().zip(outcomes) {
                let paths = match payload {
                    Payload::Path(path) => vec![path.clone()],
                    _ => batch.paths.clone(),
                };
                let (outcome, id) = match outcome {
                    WatchOutcome::Enqueued(id) => ("enqueued", Some(id)),
                    WatchOutcome::Merged(id) => ("merged into", Some(id)),
                    WatchOutcome::Skipped => ("skipped (a run is going)", None),
                };
                self.events.send(Event::Triggered {
                    definition: batch.definition.clone(),
                    paths,
                    outcome: outcome.into(),
                    id,
                });
            }
        }
        Ok(())
    }
}
