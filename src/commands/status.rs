//! `queuectl status`: jobs counted by queue and state, and the live workers.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::{now_ms, relative};
use crate::context::Context;
use crate::driver::WorkerInfo;
use crate::error::{EXIT_OK, Result};
use crate::job::JobState;
use crate::output::{Painter, cell, print_json, print_out, state_style, table};
use crate::view::{ScheduleView, render_schedules, schedules, worker_state};

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

#[derive(Debug, Serialize)]
struct WorkerView {
    #[serde(flatten)]
    info: WorkerInfo,
    state: &'static str,
}

pub fn run(context: &Context) -> Result<u8> {
    let mut store = context.engine_read()?;
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
    let schedules = schedules(context.jobfile().ok().flatten().as_ref(), &mut store)?;
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
