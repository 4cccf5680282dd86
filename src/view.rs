//! What the read commands show, where several show the same thing: the
//! job table (`list`, `dlq list`), the schedules (`status`, `list
//! --scheduled`) and a worker's state (`status`, `worker status`).

use serde::Serialize;

use crate::clock::{local, now_ms, relative};
use crate::driver::{StopMode, WorkerInfo};
use crate::engine::Engine;
use crate::error::Result;
use crate::job::Job;
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
    /// The next tick (ms since the epoch) and in local time.
    pub next_tick: Option<i64>,
    pub next_tick_local: Option<String>,
    /// The last tick handled by a `run`.
    pub last_tick: Option<i64>,
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
        views.push(ScheduleView {
            definition: def.name.clone(),
            schedule: schedule.expression.clone(),
            timezone: schedule.timezone.clone().unwrap_or_else(|| "local".into()),
            description: cron::describe(&cron),
            next_tick: next,
            next_tick_local: next.map(crate::clock::local),
            last_tick: engine.schedule(&def.name)?.map(|s| s.last_tick),
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
        text.push_str(&format!(
            "  {}  `{}` ({})  {next}  {}\n",
            s.definition, s.schedule, s.timezone, s.description
        ));
    }
    text
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
