//! `queuectl status`: jobs counted by queue and state, and the live workers.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::{now_ms, relative};
use crate::context::Context;
use crate::duration::as_millis_i64;
use crate::error::{EXIT_OK, Result};
use crate::job::JobState;
use crate::output::{Painter, cell, print_json, print_out, state_style, table};
use crate::runtime::LEASE;
use crate::store::WorkerInfo;

#[derive(Debug, Serialize)]
struct Status {
    /// queue → state → count (every state present, zeros included).
    queues: BTreeMap<String, BTreeMap<&'static str, u64>>,
    totals: BTreeMap<&'static str, u64>,
    /// Worker counts the jobfile declares (as of the last apply).
    declared: BTreeMap<String, u32>,
    workers: Vec<WorkerView>,
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
    let status = Status {
        queues,
        totals,
        declared,
        workers,
    };
    if context.json {
        print_json(&status)?;
    } else {
        print_out(&render(context, &status, now))?;
    }
    Ok(EXIT_OK)
}

/// `running`, `draining`/`stopping` once asked to stop, `stale` when its
/// heartbeat is older than a lease (it probably died).
pub fn worker_state(info: &WorkerInfo, now: i64) -> &'static str {
    if info.heartbeat_at < now - as_millis_i64(LEASE) {
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
    text
}
