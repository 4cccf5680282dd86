//! Showing what a run does. The long-running parts never print: they send
//! [`Event`]s, and one reporter, chosen once at the start, renders them:
//! progress bars on a terminal ([`bars`]), plain lines elsewhere
//! ([`lines`]; under GitHub Actions with its workflow commands,
//! [`github`]), JSON Lines (`--json`), or nothing (`-q`). Every mode folds
//! the events into a [`RunRecord`] ([`record`]), from which the end of the
//! run is written: the failures and counts, the JUnit file ([`junit`]),
//! GitHub's step summary.

pub mod bars;
pub mod github;
pub mod junit;
pub mod lines;
pub mod record;

use crate::events::Receiver;
use std::time::Instant;

use indicatif::ProgressDrawTarget;

pub use lines::{Lines, SummaryMode};
pub use record::{Declared, RunRecord};

use crate::events::Event;
use crate::output::print_out;

/// How events are shown.
#[derive(Debug, Clone)]
pub enum Style {
    /// A line per event on stdout; with `github`, GitHub's workflow
    /// commands around them.
    Plain {
        lines: Lines,
        github: Option<github::Annotations>,
    },
    /// Progress bars on stderr; `force` draws them even off a terminal.
    Bars {
        lines: Lines,
        force: bool,
    },
    /// One JSON object per event on stdout.
    Json,
    Quiet,
}

/// Runs a worker process with a reporter thread showing its events in
/// `style`; returns the process's summary and the run's record.
pub fn supervise(
    options: &crate::runtime::Options,
    owner: Option<Box<dyn crate::driver::OwnerLock>>,
    style: Style,
    started_at: i64,
) -> crate::error::Result<(crate::runtime::Summary, RunRecord)> {
    let (sender, receiver) = crate::events::channel();
    let reporter = std::thread::spawn(move || report(receiver, style, started_at));
    let result = crate::runtime::supervise(options, owner, &sender);
    drop(sender);
    let record = reporter.join().unwrap_or_default();
    Ok((result?, record))
}

/// Shows every event until the senders are gone; returns what happened.
/// `started_at` (ms since the epoch) is when the run began.
pub fn report(events: Receiver, style: Style, started_at: i64) -> RunRecord {
    let mut record = match style {
        Style::Bars { lines, force } => {
            let target = if force {
                ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10)
            } else {
                ProgressDrawTarget::stderr_with_hz(10)
            };
            bars::report_bars(events, lines, target)
        }
        other => report_lines(events, other),
    };
    record.started_at = started_at;
    record
}

fn report_lines(events: Receiver, style: Style) -> RunRecord {
    let started = Instant::now();
    let mut record = RunRecord::default();
    let mut github = match &style {
        Style::Plain {
            github: Some(annotations),
            ..
        } => Some(github::Github::new(annotations.clone())),
        _ => None,
    };
    let mut events = events;
    while let Some(event) = events.next() {
        record.record(&event);
        let text = match &style {
            Style::Quiet | Style::Bars { .. } => continue,
            Style::Json => event.json_line(events.sent_at()),
            Style::Plain { lines, .. } => {
                let Some(line) = lines::plain_line(&event, *lines) else {
                    continue;
                };
                match github.as_mut() {
                    Some(github) => github.wrap(&event, line, &record),
                    None => with_output(&event, line),
                }
            }
        };
        let _ = print_out(&format!("{text}\n"));
    }
    record.elapsed = started.elapsed();
    record
}

/// A failed attempt's line with the end of its output under it.
fn with_output(event: &Event, line: String) -> String {
    match event {
        Event::Finished {
            output_tail: Some(tail),
            ..
        } if !tail.is_empty() => format!("{line}\n{}", lines::output_block(tail).trim_end()),
        _ => line,
    }
}

/// The last line of `--json` output of a run (`run`, `worker start
/// --foreground`): `{"event": "summary", …}` with what the run's jobs
/// came to and the exit code the process ends with.
pub fn summary_line(record: &RunRecord, exit_code: u8) -> String {
    use crate::job::JobState;
    let ids = |keep: fn(&record::JobRecord) -> bool| -> Vec<&str> {
        record
            .jobs
            .iter()
            .filter(|j| keep(j))
            .map(|j| j.id.as_str())
            .collect()
    };
    serde_json::json!({
        "event": "summary",
        "timestamp": crate::clock::rfc3339(crate::clock::now_ms()),
        "completed": record.count(JobState::Completed),
        "dead": record.count(JobState::Dead),
        "retrying": record.count(JobState::Failed),
        "cancelled": record.count(JobState::Cancelled),
        "dead_ids": ids(|j| j.state == Some(JobState::Dead)),
        "flaky_ids": ids(record::JobRecord::is_flaky),
        "elapsed_ms": u64::try_from(record.elapsed.as_millis()).unwrap_or(u64::MAX),
        "exit_code": exit_code,
    })
    .to_string()
}
