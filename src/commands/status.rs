//! `queuectl status`: jobs counted by queue and state, and the live workers.

use std::collections::BTreeMap;

use serde::Serialize;

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use crate::cli::StatusArgs;
use crate::clock::{local, now_ms, relative};
use crate::context::Context;
use crate::duration::{self, human};
use crate::engine::Engine;
use crate::error::{EXIT_OK, Error, Result};
use crate::job::JobState;
use crate::output::{Painter, cell, print_json, print_out, state_style, table, write_out};
use crate::view::{
    QueueView, ScheduleView, WorkerView, job_label, queue_views, render_schedules, schedules,
    worker_views,
};

#[derive(Debug, Serialize)]
struct Status {
    /// Every queue a job, the applied jobfile or a pause names.
    queues: Vec<QueueView>,
    /// Jobs in each state, over every queue.
    totals: BTreeMap<&'static str, u64>,
    workers: Vec<WorkerView>,
    schedules: Vec<ScheduleView>,
}

pub fn run(context: &Context, args: &StatusArgs) -> Result<u8> {
    let mut store = context.engine_read()?;
    if args.watch {
        let interval = duration::parse(&args.interval, "--interval")?;
        if interval.is_zero() {
            return Err(Error::input_with_hint(
                "--interval must be longer than 0",
                "give a duration such as `500ms` or `2s`",
            ));
        }
        return watch(context, &mut store, interval);
    }
    let now = now_ms();
    let status = read(context, &mut store, now)?;
    if context.json {
        print_json(&status)?;
    } else {
        print_out(&render(context, &status, now))?;
    }
    Ok(EXIT_OK)
}

fn read(context: &Context, store: &mut Engine, now: i64) -> Result<Status> {
    let queues = queue_views(store)?;
    let totals = JobState::ALL
        .iter()
        .map(|s| (s.as_str(), queues.iter().map(|q| q.count(*s)).sum()))
        .collect();
    let workers = worker_views(store, now)?;
    let schedules = schedules(context.jobfile().ok().flatten().as_ref(), store)?;
    Ok(Status {
        queues,
        totals,
        workers,
        schedules,
    })
}

/// `status --watch`: shows it again each time the queue changes (the
/// change feed wakes it) and at least every `interval`, while the reader
/// reads: redrawn in place on a terminal, appended elsewhere (only when
/// it differs), one compact JSON object a line with `--json`.
fn watch(context: &Context, store: &mut Engine, interval: Duration) -> Result<u8> {
    let terminal = std::io::stdout().is_terminal();
    // A queue file that does not exist yet (or is still being made)
    // reads as empty: open it again each time until it shows something.
    let mut absent = context.location.file().is_some_and(|f| !f.exists());
    let mut feed = store.change_feed()?;
    let mut last = String::new();
    loop {
        if absent && context.location.file().is_some_and(Path::exists) {
            *store = context.engine_read()?;
            feed = store.change_feed()?;
        }
        let now = now_ms();
        let status = read(context, store, now)?;
        absent &= status.queues.is_empty() && status.workers.is_empty();
        let text = if context.json {
            let mut line = serde_json::to_string(&status)
                .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))?;
            line.push('\n');
            line
        } else {
            render(context, &status, now)
        };
        if text != last {
            let shown = if terminal && !context.json {
                format!(
                    "\x1b[H\x1b[2J{}  (every {}; Ctrl-C ends)\n\n{text}",
                    local(now),
                    human(interval)
                )
            } else if context.json {
                text.clone()
            } else {
                format!("{}\n{text}\n", local(now))
            };
            if !write_out(&shown)? {
                return Ok(EXIT_OK);
            }
            last = text;
        }
        feed.wait(interval)?;
    }
}

fn render(context: &Context, status: &Status, now: i64) -> String {
    let painter = Painter {
        enabled: context.color,
    };
    let mut headers = vec!["QUEUE", "WORKERS"];
    headers.extend(JobState::ALL.iter().map(|s| s.as_str()));
    let row = |name: &str, workers: Option<u32>, counts: &BTreeMap<&'static str, u64>| {
        let workers = workers.map_or("-".to_string(), |w| w.to_string());
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
    let mut rows: Vec<_> = status
        .queues
        .iter()
        .map(|q| {
            let name = if q.paused {
                format!("{} (paused)", q.name)
            } else {
                q.name.clone()
            };
            row(&name, q.workers, &q.counts)
        })
        .collect();
    if status.queues.len() > 1 {
        rows.push(row("total", None, &status.totals));
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
    for w in &status.workers {
        let queues = if w.pools.is_empty() {
            "every queue".to_string()
        } else {
            w.pools_text()
        };
        text.push_str(&format!(
            "  pid {} on {}  {}/{} busy  {queues}  {} (heartbeat {})\n",
            w.pid,
            w.host,
            w.busy,
            w.slots,
            w.state,
            relative(w.heartbeat_at, now)
        ));
        for job in &w.jobs {
            text.push_str(&format!("    running {}\n", job_label(job)));
        }
    }
    if !status.schedules.is_empty() {
        text.push_str(&format!("\nschedules: {}\n", status.schedules.len()));
        text.push_str(&render_schedules(&status.schedules, now));
    }
    text
}
