//! Renders [`Event`]s for people (one plain line per event) or for
//! programs (one JSON object per line, with an `event` field).

use std::sync::mpsc::Receiver;

use crate::clock;
use crate::duration::short;
use crate::events::Event;
use crate::job::{AttemptOutcome, JobState};
use crate::output::{DIM, GREEN, Painter, RED, YELLOW, print_out, truncate};

/// How events are printed.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    Plain(Painter),
    Json,
    Quiet,
}

/// Prints every event until the senders are gone.
pub fn report(events: Receiver<Event>, style: Style) {
    for event in events {
        let line = match style {
            Style::Quiet => continue,
            Style::Json => serde_json::to_string(&event).unwrap_or_default(),
            Style::Plain(painter) => match plain_line(&event, painter) {
                Some(line) => line,
                None => continue,
            },
        };
        let _ = print_out(&format!("{line}\n"));
    }
}

/// The plain line of an event, if it has one.
pub fn plain_line(event: &Event, painter: Painter) -> Option<String> {
    let tag = |text: &str, style| painter.paint(&format!("{text:<9}"), style);
    Some(match event {
        Event::Ready { pid, slots, queues } => {
            let queues = if queues.is_empty() {
                "every queue".to_string()
            } else {
                queues.join(", ")
            };
            format!("worker pid {pid} ready: {slots} slot(s), {queues}")
        }
        Event::Started {
            id,
            command,
            attempt,
            max_attempts,
            ..
        } => format!(
            "{} {id}  attempt {attempt}/{max_attempts}  {}",
            tag("start", DIM),
            truncate(command, 60)
        ),
        Event::Finished {
            id,
            attempt,
            outcome,
            state,
            exit_code,
            duration,
            retry_at,
            error,
            ..
        } => match (outcome, state) {
            (AttemptOutcome::Completed, _) => {
                format!("{} {id}  {}", tag("done", GREEN), short(*duration))
            }
            (AttemptOutcome::Interrupted, _) => {
                format!("{} {id}  returned to the queue", tag("stopped", YELLOW))
            }
            (AttemptOutcome::Cancelled, _) => format!("{} {id}", tag("cancelled", DIM)),
            (_, JobState::Dead) => format!(
                "{} {id}  {} after {attempt} attempt(s)",
                tag("dead", RED.bold()),
                what_failed(*exit_code, error.as_deref())
            ),
            _ => {
                let retry = retry_at
                    .map(|at| format!(", retry {}", clock::relative(at, clock::now_ms())))
                    .unwrap_or_default();
                format!(
                    "{} {id}  {} in {}{retry}",
                    tag("failed", YELLOW),
                    what_failed(*exit_code, error.as_deref()),
                    short(*duration)
                )
            }
        },
        Event::Reclaimed { id, dead, worker } => {
            let then = if *dead { "dead" } else { "will retry" };
            format!("{} {id}  from {worker}; {then}", tag("reclaim", YELLOW))
        }
        Event::Stopping {
            force: false,
            reason,
        } => {
            format!("stopping ({reason}): running jobs finish, no new ones start")
        }
        Event::Stopping {
            force: true,
            reason,
        } => {
            format!("stopping now ({reason}): running jobs are stopped and returned to the queue")
        }
        Event::Warning { message } => format!("{} {message}", tag("warning", YELLOW)),
        Event::Counts { .. } => return None,
        Event::Applied { plan } => format!("jobfile changed, applied:\n{}", plan.join("\n")),
        Event::ConfigError { message } => format!("{} {message}", tag("error", RED.bold())),
        Event::Resized { pool, from, to } => format!("queue {pool}: {from} -> {to} worker(s)"),
    })
}

fn what_failed(exit_code: i32, error: Option<&str>) -> String {
    match error {
        Some(error) => truncate(error.split(';').next().unwrap_or(error), 80),
        None => format!("exit code {exit_code}"),
    }
}
