//! `queuectl status`: jobs counted by queue and state, and the live workers.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::{now_ms, relative};
use crate::context::Context;
use crate::error::{EXIT_OK, Result};
use crate::job::JobState;
use crate::jobfile::Trigger;
use crate::output::{Painter, cell, print_json, print_out, state_style, table};
use crate::scheduler;
use crate::store::WorkerInfo;

#[derive(Debug, Serialize)]
struct Status {
    /// queue → state → count (every state present, zeros included).
    queues: BTreeMap<String, BTreeMap<&'static str, u64>>,
    totals: BTreeMap<&'static str, u64>,
    /// Worker counts the jobfile declares (as of the last apply).
    declared: BTreeMap<String, u32>,
    workers: Vec<WorkerView>,
    schedules: Vec<ScheduleView>,
}

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
pub fn schedules(context: &Context, store: &crate::store::Store) -> Result<Vec<ScheduleView>> {
    let Ok(Some(jobfile)) = context.jobfile() else {
        return Ok(Vec::new());
    };
    let now = jiff::Timestamp::now();
    let mut views = Vec::new();
    for def in jobfile.jobs.values() {
        let Trigger::Schedule(schedule) = &def.trigger else {
            continue;
        };
        let Ok(cron) = scheduler::parse_cron(&schedule.expression) else {
            continue;
        };
        let zone = scheduler::time_zone(schedule.timezone.as_deref());
        let next = scheduler::next_tick(&cron, &zone, now).map(|t| t.as_millisecond());
        views.push(ScheduleView {
            definition: def.name.clone(),
            schedule: schedule.expression.clone(),
            timezone: schedule.timezone.clone().unwrap_or_else(|| "local".into()),
            description: scheduler::describe(&cron),
            next_tick: next,
            next_tick_local: next.map(crate::clock::local),
            last_tick: store.schedule(&def.name)?.map(|s| s.last_tick),
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

#[derive(Debug, Serialize)]
struct WorkerView {
    #[serde(flatten)]
    info: WorkerInfo,
    state: &'static str,
}

pub fn run(context: &Context) -> Result<u8> {
    let store = context.store_read()?;
    let counts = store.counts()?;
    let now = now_ms();
    let workers: Vec<WorkerView> = store
        .workers()?
        .into_iter()
        .map(|info| WorkerView {
            state: worker_state(&info, now),
            info,
        })
        .collect();
    let zero = || {
        JobState::ALL
            .iter()
            .map(|s| (s.as_str(), 0))
            .collect::<BTreeMap<_, _>>()
    };
    let declared = store.declared_queues()?;
    let mut queues: BTreeMap<String, BTreeMap<&'static str, u64>> =
        declared.keys().map(|q| (q.clone(), zero())).collect();
    for (queue, state, n) in &counts.rows {
        *queues
            .entry(queue.clone())
            .or_insert_with(zero)
            .entry(state.as_str())
            .or_default() += n;
    }
    let totals = JobState::ALL
        .iter()
        .map(|s| (s.as_str(), counts.total(*s)))
        .collect();
    let schedules = schedules(context, &store)?;
    let status = Status {
        queues,
        totals,
        declared,
        workers,
        schedules,
    };
    if context.json {
        print_json(&status)?;
    } else {
        print_out(&render(context, &status, now))?;
    }
    Ok(EXIT_OK)
}

/// `running`, `draining`/`stopping` once asked to stop, `stale` when its
/// heartbeat is older than its lease by this machine's clock (it probably
/// died; the other workers judge by what they observe, not by clocks).
pub fn worker_state(info: &WorkerInfo, now: i64) -> &'static str {
    if info.heartbeat_at < now.saturating_sub(info.lease_ms) {
        "stale"
    } else {
        match info.stop.as_deref() {
            Some("force") => "stopping",
            Some(_) => "draining",
            None => "running",
        }
    }
}

fn render(context: &Context, status: &Status, now: i64) -> String {
    let painter = Painter {
        enabled: context.color,
    };
    let mut headers = vec!["QUEUE", "WORKERS"];
    headers.extend(JobState::ALL.iter().map(|s| s.as_str()));
    let row = |name: &str, counts: &BTreeMap<&'static str, u64>| {
        let workers = status
            .declared
            .get(name)
            .map_or("-".to_string(), u32::to_string);
        let mut cells = vec![cell(name), cell(workers)];
        for state in JobState::ALL {
            let n = counts.get(state.as_str()).copied().unwrap_or(0);
            let style = if n > 0 {
                state_style(state)
            } else {
                anstyle::Style::new()
            };
            cells.push((n.to_string(), style));
        }
        cells
    };
    let mut rows: Vec<_> = status.queues.iter().map(|(q, c)| row(q, c)).collect();
    if status.queues.len() > 1 {
        rows.push(row("total", &status.totals));
    }
    let mut text = if status.queues.is_empty() {
        "no jobs\n".to_string()
    } else {
        let headers: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        table(painter, &headers, &rows)
    };
    let live = status.workers.iter().filter(|w| w.state != "stale").count();
    text.push_str(&format!("\nworkers: {live} live\n"));
    for worker in &status.workers {
        let w = &worker.info;
        let queues = if w.queues.is_empty() {
            "every queue".to_string()
        } else {
            w.queues.join(", ")
        };
        text.push_str(&format!(
            "  pid {} on {}  {}/{} busy  {queues}  {} (heartbeat {})\n",
            w.pid,
            w.host,
            w.busy,
            w.slots,
            worker.state,
            relative(w.heartbeat_at, now)
        ));
    }
    if !status.schedules.is_empty() {
        text.push_str(&format!("\nschedules: {}\n", status.schedules.len()));
        text.push_str(&render_schedules(&status.schedules, now));
    }
    text
}
