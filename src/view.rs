//! What the read commands show, where several show the same thing: the
//! job table (`list`, `dlq list`), the schedules (`status`, `list
//! --scheduled`) and a worker's state (`status`, `worker status`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::{local, now_ms, relative};
use crate::driver::{StopMode, WorkerInfo};
use crate::engine::Engine;
use crate::error::Result;
use crate::job::{Job, JobState};
use crate::jobfile::{Jobfile, Trigger};
use crate::output::{Cell, Painter, cell, state_style, table, truncate};
use crate::trigger::cron;

/// A schedule of the jobfile and when it fires next.
#[derive(Debug, Serialize)]
pub struct ScheduleView {
    pub definition: String,
    pub schedule: String,
    pub timezone: String,
    pub description: String,
    /// The next tick (ms since the epoch) and in local time (for people).
    #[serde(rename = "next_tick_at", with = "crate::output::json_time::option")]
    pub next_tick: Option<i64>,
    #[serde(skip)]
    pub next_tick_local: Option<String>,
    /// The last tick handled by a `run`.
    #[serde(rename = "last_tick_at", with = "crate::output::json_time::option")]
    pub last_tick: Option<i64>,
    /// Ticks that fell while no `run` was looking, since the expression
    /// was last set: those a `run` handled (by its `missed` policy) and
    /// those that fell since the last look, if none looks now.
    pub missed_ticks: u64,
    /// The latest of them.
    #[serde(
        rename = "last_missed_tick_at",
        with = "crate::output::json_time::option"
    )]
    pub last_missed_tick: Option<i64>,
}

/// A queue as `queue list` and `status` show it.
#[derive(Debug, Serialize)]
pub struct QueueView {
    pub name: String,
    /// The workers the applied jobfile declares for it (its limit).
    pub workers: Option<u32>,
    pub paused: bool,
    /// Since when it is paused.
    #[serde(rename = "paused_at", with = "crate::output::json_time::option")]
    pub paused_since: Option<i64>,
    /// Its jobs in each state (every state, zeros included).
    pub counts: BTreeMap<&'static str, u64>,
}

impl QueueView {
    /// Its jobs in `state`.
    pub fn count(&self, state: JobState) -> u64 {
        self.counts.get(state.as_str()).copied().unwrap_or(0)
    }

    /// Its jobs pending or waiting for a retry.
    pub fn waiting(&self) -> u64 {
        JobState::WAITING.iter().map(|s| self.count(*s)).sum()
    }
}

/// Every queue a job, the applied jobfile or a pause names, by name.
pub fn queue_views(engine: &mut Engine) -> Result<Vec<QueueView>> {
    let declared = engine.declared_queues()?;
    let paused = engine.paused_queues()?;
    let counts = engine.counts()?;
    let mut views: BTreeMap<String, QueueView> = BTreeMap::new();
    let names = declared
        .keys()
        .chain(paused.keys())
        .chain(counts.rows.iter().map(|(queue, _, _)| queue));
    for name in names {
        views.entry(name.clone()).or_insert_with(|| QueueView {
            name: name.clone(),
            workers: declared.get(name).copied(),
            paused: paused.contains_key(name),
            paused_since: paused.get(name).copied(),
            counts: JobState::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
        });
    }
    for (queue, state, n) in &counts.rows {
        if let Some(view) = views.get_mut(queue) {
            *view.counts.entry(state.as_str()).or_default() += n;
        }
    }
    Ok(views.into_values().collect())
}

/// The schedules of the jobfile, if it has a valid one.
pub fn schedules(jobfile: Option<&Jobfile>, engine: &mut Engine) -> Result<Vec<ScheduleView>> {
    let Some(jobfile) = jobfile else {
        return Ok(Vec::new());
    };
    let now = jiff::Timestamp::now();
    let mut views = Vec::new();
    for def in jobfile.jobs.values() {
        let Trigger::Schedule(schedule) = &def.trigger else {
            continue;
        };
        let Ok(cron) = cron::parse_cron(&schedule.expression) else {
            continue;
        };
        let zone = cron::time_zone(schedule.timezone.as_deref());
        let next = cron::next_tick(&cron, &zone, now).map(|t| t.as_millisecond());
        let zone_name = cron::zone_name(schedule.timezone.as_deref());
        let stored = engine.schedule(&def.name)?;
        let (missed_ticks, last_missed_tick) = match &stored {
            Some(s) if s.expression == schedule.expression && s.timezone == zone_name => {
                // What a `run` starting now would find missed.
                let since = cron::decide(
                    &cron,
                    &zone,
                    Some((s.last_tick, s.checked_at)),
                    true,
                    schedule.missed,
                    now.as_millisecond(),
                );
                match since.missed {
                    0 => (s.missed, s.missed_at),
                    n => (s.missed.saturating_add(n), Some(since.last_tick)),
                }
            }
            _ => (0, None),
        };
        views.push(ScheduleView {
            definition: def.name.clone(),
            schedule: schedule.expression.clone(),
            timezone: zone_name.to_string(),
            description: cron::describe(&cron),
            next_tick: next,
            next_tick_local: next.map(crate::clock::local),
            last_tick: stored.map(|s| s.last_tick),
            missed_ticks,
            last_missed_tick,
        });
    }
    Ok(views)
}

/// The schedules as lines, for people.
pub fn render_schedules(views: &[ScheduleView], now: i64) -> String {
    let mut text = String::new();
    for s in views {
        let next = match (&s.next_tick_local, s.next_tick) {
            (Some(local), Some(at)) => format!("next {local} ({})", relative(at, now)),
            _ => "no next tick".into(),
        };
        let missed = match (s.missed_ticks, s.last_missed_tick) {
            (0, _) => String::new(),
            (n, Some(at)) => format!(
                "  missed {n} tick{} (latest {})",
                if n == 1 { "" } else { "s" },
                crate::clock::local(at)
            ),
            (n, None) => format!("  missed {n} tick{}", if n == 1 { "" } else { "s" }),
        };
        text.push_str(&format!(
            "  {}  `{}` ({})  {next}  {}{missed}\n",
            s.definition, s.schedule, s.timezone, s.description
        ));
    }
    text
}

/// A worker process as `status` and `worker status` show it.
#[derive(Debug, Serialize)]
pub struct WorkerView {
    /// Random 64 bits: a string in JSON, which a double cannot hold.
    #[serde(serialize_with = "crate::output::json_string")]
    pub id: i64,
    pub pid: u32,
    pub host: String,
    /// See [`worker_state`].
    pub state: &'static str,
    /// Its pools: which queue each serves (`*`: every queue without a
    /// pool of its own) with how many slots.
    pub pools: Vec<PoolView>,
    pub slots: u32,
    pub busy: u32,
    #[serde(with = "crate::output::json_time")]
    pub started_at: i64,
    #[serde(with = "crate::output::json_time")]
    pub heartbeat_at: i64,
    /// How long it may stay silent before it is declared dead.
    pub lease_ms: i64,
    /// The jobs it runs now.
    pub jobs: Vec<RunningJob>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PoolView {
    /// The queues it serves; `["*"]`: every queue without a pool of its own.
    pub queues: Vec<String>,
    pub slots: u32,
}

#[derive(Debug, Serialize)]
pub struct RunningJob {
    pub id: String,
    pub definition: Option<String>,
}

impl WorkerView {
    /// Its pools, shortly: `*:2, deploy:1`.
    pub fn pools_text(&self) -> String {
        let pools: Vec<String> = self
            .pools
            .iter()
            .map(|p| format!("{}:{}", p.queues.join("+"), p.slots))
            .collect();
        pools.join(", ")
    }
}

/// A pool as a worker registers it (`queue+queue:slots`); a label
/// without a count has no slots of its own (0).
fn pool_view(text: &str) -> PoolView {
    let (label, slots) = match text.rsplit_once(':') {
        Some((label, slots)) => match slots.parse::<u32>() {
            Ok(slots) => (label, slots),
            Err(_) => (text, 0),
        },
        None => (text, 0),
    };
    PoolView {
        queues: label.split('+').map(str::to_string).collect(),
        slots,
    }
}

/// A running job as the worker views name it: `build (ID)`, or its id.
pub fn job_label(job: &RunningJob) -> String {
    match &job.definition {
        Some(name) => format!("{name} ({})", job.id),
        None => job.id.clone(),
    }
}

/// The registered workers, each with the jobs it runs.
pub fn worker_views(engine: &mut Engine, now: i64) -> Result<Vec<WorkerView>> {
    let mut views = Vec::new();
    for info in engine.workers()? {
        let jobs = engine
            .running_jobs(&[info.id])?
            .into_iter()
            .map(|(id, definition)| RunningJob { id, definition })
            .collect();
        views.push(WorkerView {
            state: worker_state(&info, now),
            pools: info.queues.iter().map(|q| pool_view(q)).collect(),
            id: info.id,
            pid: info.pid,
            host: info.host,
            slots: info.slots,
            busy: info.busy,
            started_at: info.started_at,
            heartbeat_at: info.heartbeat_at,
            lease_ms: info.lease_ms,
            jobs,
        });
    }
    Ok(views)
}

/// `running`, `draining`/`stopping` once asked to stop, `stale` when its
/// heartbeat is older than its lease by this machine's clock (it probably
/// died; the other workers judge by what they observe, not by clocks).
pub fn worker_state(info: &WorkerInfo, now: i64) -> &'static str {
    if info.heartbeat_at < now.saturating_sub(info.lease_ms) {
        "stale"
    } else {
        match info.stop {
            Some(StopMode::Force) => "stopping",
            Some(StopMode::Drain) => "draining",
            None => "running",
        }
    }
}

/// The table `list` and `dlq list` print; with `-v`, where each job came
/// from, when it was made, and its whole command.
pub fn jobs_table(jobs: &[Job], painter: Painter, verbose: bool) -> String {
    let now = now_ms();
    let rows: Vec<Vec<Cell>> = jobs
        .iter()
        .map(|job| {
            let when = match job.state {
                state if state.is_waiting() && job.run_at > now => {
                    format!("runs {}", relative(job.run_at, now))
                }
                _ => relative(job.updated_at, now),
            };
            let mut row = vec![
                cell(&job.id),
                cell(job.definition.as_deref().unwrap_or("-")),
                (job.state.to_string(), state_style(job.state)),
                cell(&job.queue),
                cell(job.priority.to_string()),
                cell(format!("{}/{}", job.attempts, job.retry.max_attempts())),
                cell(
                    job.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                ),
                cell(when),
            ];
            if verbose {
                row.push(cell(job.origin.as_str()));
                row.push(cell(local(job.created_at)));
                row.push(cell(job.command.replace('\n', " ")));
            } else {
                row.push(cell(truncate(&job.command, 50)));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "ID", "NAME", "STATE", "QUEUE", "PRI", "ATTEMPTS", "EXIT", "UPDATED",
    ];
    if verbose {
        headers.extend(["ORIGIN", "CREATED"]);
    }
    headers.push("COMMAND");
    table(painter, &headers, &rows)
}

#[cfg(test)]
#[test]
fn a_pool_reads_as_its_queue_and_slots() {
    let pool = |queues: &[&str], slots| PoolView {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        slots,
    };
    assert_eq!(pool_view("*:2"), pool(&["*"], 2));
    assert_eq!(pool_view("a+b:3"), pool(&["a", "b"], 3));
    assert_eq!(pool_view("deploy"), pool(&["deploy"], 0));
    assert_eq!(pool_view("deploy:x"), pool(&["deploy:x"], 0));
}
