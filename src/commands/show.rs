//! `queuectl show ID`: one job, its provenance and every attempt.

use serde::Serialize;

use crate::clock::{local, now_ms, relative};
use crate::context::Context;
use crate::duration::short;
use crate::error::{EXIT_OK, Result};
use crate::job::{Attempt, Job, JobState, Payload};
use crate::output::{BOLD, Painter, cell, print_json, print_out, state_style, table};

#[derive(Debug, Serialize)]
struct Shown {
    #[serde(flatten)]
    job: Job,
    attempt_history: Vec<Attempt>,
    /// For a waiting job: the dependencies whose latest run has not
    /// completed (`state` null: it never ran).
    waiting_for: Vec<Waiting>,
}

#[derive(Debug, Serialize)]
struct Waiting {
    definition: String,
    state: Option<JobState>,
}

/// `show ID|NAME`.
pub fn run(context: &Context, arg: &str) -> Result<u8> {
    let mut store = context.engine_read()?;
    let id = store.resolve_job(arg)?;
    let job = store.job(&id)?;
    let attempts = store.attempts(&id)?;
    let waiting_for = if job.state.is_waiting() {
        store
            .latest_states(&job.after)?
            .into_iter()
            .filter(|(_, state)| *state != Some(JobState::Completed))
            .map(|(definition, state)| Waiting { definition, state })
            .collect()
    } else {
        Vec::new()
    };
    let shown = Shown {
        job,
        attempt_history: attempts,
        waiting_for,
    };
    if context.json {
        print_json(&shown)?;
    } else {
        print_out(&render(context, &shown))?;
    }
    Ok(EXIT_OK)
}

fn render(context: &Context, shown: &Shown) -> String {
    let (job, attempts) = (&shown.job, shown.attempt_history.as_slice());
    let painter = Painter {
        enabled: context.color,
    };
    let now = now_ms();
    let mut lines: Vec<(&str, String)> = vec![
        ("id", job.id.clone()),
        (
            "state",
            painter.paint(job.state.as_str(), state_style(job.state)),
        ),
        ("command", job.command.clone()),
        ("queue", job.queue.clone()),
        ("priority", job.priority.to_string()),
        ("origin", job.origin.as_str().to_string()),
    ];
    if let Some(definition) = &job.definition {
        lines.push(("definition", definition.clone()));
    }
    if let Some(hash) = &job.spec_hash {
        lines.push(("spec hash", hash.clone()));
    }
    if let Some(commit) = &job.source_commit {
        lines.push(("jobfile commit", commit.clone()));
    }
    lines.push((
        "attempts",
        format!(
            "{} of {} (max_retries {})",
            job.attempts,
            job.retry.max_attempts(),
            job.retry.max_retries
        ),
    ));
    lines.push((
        "backoff",
        format!(
            "{}^n s{}{}",
            job.retry.backoff_base,
            job.retry
                .max_delay_ms
                .map(|ms| format!(
                    ", at most {}",
                    short(std::time::Duration::from_millis(ms.max(0) as u64))
                ))
                .unwrap_or_default(),
            if job.retry.jitter { ", jitter" } else { "" }
        ),
    ));
    if let Some(ms) = job.timeout_ms {
        lines.push((
            "timeout",
            short(std::time::Duration::from_millis(ms.max(0) as u64)),
        ));
    }
    if let Some(cwd) = &job.cwd {
        lines.push(("cwd", cwd.clone()));
    }
    for (key, value) in &job.env {
        lines.push(("env", format!("{key}={value}")));
    }
    // What its trigger gave it, as the command sees it.
    for (key, value) in job.payload.iter().flat_map(Payload::env) {
        lines.push(("trigger", format!("{key}={}", value.replace('\n', " "))));
    }
    lines.push((
        "created",
        format!(
            "{} ({})",
            local(job.created_at),
            relative(job.created_at, now)
        ),
    ));
    if !job.state.is_finished() && job.run_at > now {
        lines.push((
            "runs at",
            format!("{} ({})", local(job.run_at), relative(job.run_at, now)),
        ));
    }
    if !shown.waiting_for.is_empty() {
        let deps: Vec<String> = shown
            .waiting_for
            .iter()
            .map(|w| match w.state {
                Some(state) => format!("`{}` ({state})", w.definition),
                None => format!("`{}` (never ran)", w.definition),
            })
            .collect();
        lines.push(("waits for", deps.join(", ")));
    }
    if let Some(at) = job.finished_at {
        lines.push(("finished", format!("{} ({})", local(at), relative(at, now))));
    }
    if let Some(code) = job.exit_code {
        lines.push(("exit code", code.to_string()));
    }
    if let Some(error) = &job.last_error {
        lines.push(("last error", error.clone()));
    }
    if let Some(reason) = &job.reason {
        lines.push(("reason", reason.clone()));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (key, value) in &lines {
        text.push_str(&format!(
            "{}  {value}\n",
            painter.paint(&format!("{key:<width$}"), BOLD)
        ));
    }
    if !attempts.is_empty() {
        text.push('\n');
        let rows: Vec<_> = attempts
            .iter()
            .map(|a| {
                vec![
                    cell(a.run.to_string()),
                    cell(local(a.started_at)),
                    cell(
                        a.finished_at
                            .map(|f| {
                                short(std::time::Duration::from_millis(
                                    (f - a.started_at).max(0) as u64
                                ))
                            })
                            .unwrap_or_else(|| "running".into()),
                    ),
                    cell(a.outcome.map_or("-", |o| o.as_str())),
                    cell(a.exit_code.map_or("-".into(), |c| c.to_string())),
                    cell(a.output_bytes.to_string()),
                    cell(match (a.worker, &a.host) {
                        (Some(worker), Some(host)) => format!("{worker}@{host}"),
                        (Some(worker), None) => worker.to_string(),
                        (None, _) => "-".into(),
                    }),
                    cell(a.error.clone().unwrap_or_default()),
                ]
            })
            .collect();
        text.push_str(&table(
            painter,
            &[
                "RUN", "STARTED", "TOOK", "OUTCOME", "EXIT", "OUTPUT", "WORKER", "ERROR",
            ],
            &rows,
        ));
    }
    text
}
