//! Events as plain lines (CI logs, pipes, the lines printed above the
//! bars), the output of failed attempts under them, and the end of a run:
//! the failures, then the counts.

use std::time::Duration;

use super::record::{JobRecord, RunRecord, what_failed};
use crate::clock;
use crate::duration::short;
use crate::events::Event;
use crate::job::{AttemptOutcome, JobState};
use crate::output::{DIM, GREEN, Painter, RED, YELLOW, cell, state_style, table, truncate};

/// How lines are written.
#[derive(Debug, Clone, Copy)]
pub struct Lines {
    pub painter: Painter,
    /// `-v`: every line of a long plan.
    pub verbose: bool,
}

/// What the end of a run lists (`run --summary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryMode {
    /// The jobs that failed, were flaky or were cancelled.
    Failures,
    /// A table of every job.
    All,
}

/// The plain line of an event, if it has one (the output of a failed
/// attempt is [`output_block`]'s).
pub fn plain_line(event: &Event, lines: Lines) -> Option<String> {
    let painter = lines.painter;
    let tag = |text: &str, style| painter.paint(&format!("{text:<9}"), style);
    Some(match event {
        Event::Ready { pid, slots, queues } => {
            format!(
                "worker pid {pid} ready: {slots} slot(s), {}",
                queues.join(", ")
            )
        }
        Event::Started {
            id,
            command,
            attempt,
            max_attempts,
            definition,
            ..
        } => {
            let what = definition.as_deref().map_or_else(
                || truncate(command, 60),
                |d| format!("{d}: {}", truncate(command, 50)),
            );
            format!(
                "{} {id}  attempt {attempt}/{max_attempts}  {what}",
                tag("start", DIM)
            )
        }
        Event::Finished {
            id,
            definition,
            attempt,
            outcome,
            state,
            exit_code,
            duration,
            retry_at,
            error,
            ..
        } => {
            let id = &named(id, definition.as_deref());
            match (outcome, state) {
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
            }
        }
        Event::Discarded { id, definition, .. } => format!(
            "{} {}  result discarded: another worker rescued the job from this one",
            tag("dropped", YELLOW),
            named(id, definition.as_deref())
        ),
        Event::DeclaredDead { stopped, lease_ms } => {
            let lease = short(Duration::from_millis(*lease_ms));
            let jobs = match stopped.as_slice() {
                [] => String::new(),
                ids => format!(
                    "; stopped its {} running job(s) here ({}), their results discarded",
                    ids.len(),
                    ids.join(", ")
                ),
            };
            format!(
                "{} this worker was declared dead by another: it was silent past its {lease} lease (suspended?) and its jobs were rescued elsewhere{jobs}; it rejoins as a new worker",
                tag("warning", YELLOW)
            )
        }
        Event::Reclaimed { id, dead, worker } => {
            let then = if *dead { "dead" } else { "will retry" };
            format!("{} {id}  from {worker}; {then}", tag("reclaim", YELLOW))
        }
        Event::Stopping {
            force: false,
            reason,
            again,
        } => {
            let again = again
                .as_deref()
                .map(|a| format!("; {a} again to stop now"))
                .unwrap_or_default();
            format!("stopping ({reason}): running jobs finish, no new ones start{again}")
        }
        Event::Stopping {
            force: true,
            reason,
            ..
        } => {
            format!("stopping now ({reason}): running jobs are stopped and returned to the queue")
        }
        Event::Warning { message } => format!("{} {message}", tag("warning", YELLOW)),
        Event::Counts { .. } => return None,
        Event::Triggered {
            definition,
            paths,
            outcome,
            id,
        } => {
            let what = match paths.as_slice() {
                [one] => one.clone(),
                many => format!("{} paths", many.len()),
            };
            let id = id.as_deref().map(|id| format!(" {id}")).unwrap_or_default();
            format!(
                "{} {definition}  {what} changed: {outcome}{id}",
                tag("change", DIM)
            )
        }
        Event::Ticked {
            definition,
            tick,
            catch_up,
            id,
            skipped,
        } => {
            let when = clock::local(*tick);
            let what = match (id, skipped) {
                (Some(id), _) if *catch_up => format!("enqueued {id} (catch-up for a missed tick)"),
                (Some(id), _) => format!("enqueued {id}"),
                (None, Some(why)) => format!("skipped: {why}"),
                (None, None) => String::new(),
            };
            format!("{} {definition}  {when}: {what}", tag("tick", DIM))
        }
        Event::Applied { plan } => {
            format!(
                "jobfile changed, applied:\n{}",
                plan_lines(plan, lines.verbose).join("\n")
            )
        }
        Event::ConfigError { message } => format!("{} {message}", tag("error", RED.bold())),
        Event::Resized { pool, from, to } => format!("queue {pool}: {from} -> {to} worker(s)"),
    })
}

/// `name (id)` for a job of a definition, else the id.
fn named(id: &str, definition: Option<&str>) -> String {
    match definition {
        Some(name) => format!("{name} ({id})"),
        None => id.to_string(),
    }
}

/// A plan printed whole, or (past [`LONG_PLAN`] lines, without `-v`) as
/// its summary line alone.
pub fn plan_lines(lines: &[String], verbose: bool) -> Vec<String> {
    if verbose || lines.len() <= LONG_PLAN {
        return lines.to_vec();
    }
    let summary = lines.last().cloned().unwrap_or_default();
    vec![format!("{summary} (-v for every line)")]
}

/// A plan longer than this many lines is printed as its summary.
pub const LONG_PLAN: usize = 10;

/// The end of a failed attempt's output, under its line: indented, and
/// cleaned of what a terminal would take as commands (escape sequences,
/// other control characters). Empty when there was no output.
pub fn output_block(tail: &str) -> String {
    let mut block = String::new();
    for line in tail.lines() {
        block.push_str("    ");
        block.push_str(&clean(line));
        block.push('\n');
    }
    block
}

/// A line of job output made safe to show: what follows the last carriage
/// return (what a terminal would show), ANSI escape sequences removed, other
/// control characters replaced.
pub fn clean(line: &str) -> String {
    let line = line.rsplit('\r').next().unwrap_or(line);
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters… and a final byte in @..~. Any
                // other escape (ESC ( B, a charset): ESC, intermediate
                // bytes in ' '../, and a final byte.
                if chars.next_if_eq(&'[').is_some() {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
                    chars.next();
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// What the end of a run prints: the failures (or, with
/// [`SummaryMode::All`], a table of every job), then the counts.
pub fn summary(record: &RunRecord, painter: Painter, mode: SummaryMode) -> String {
    let mut text = match mode {
        SummaryMode::All => job_table(record, painter),
        SummaryMode::Failures => failures(record, painter),
    };
    let ran = record.jobs.iter().any(|j| !j.earlier) || record.unlisted_count() > 0;
    if !ran {
        text.push_str(&format!("no jobs ran ({})\n", short(record.elapsed)));
        return text;
    }
    text.push_str(&counts_line(record));
    text
}

/// `2 completed, 1 dead, 0 retrying, 0 cancelled in 8.0s`
pub fn counts_line(record: &RunRecord) -> String {
    format!(
        "{} completed, {} dead, {} retrying, {} cancelled in {}\n",
        record.count(JobState::Completed),
        record.count(JobState::Dead),
        record.count(JobState::Failed),
        record.count(JobState::Cancelled),
        short(record.elapsed)
    )
}

/// The jobs that failed, were flaky or were cancelled: dead first, then
/// flaky, then cancelled, each with why. Empty when there are none.
pub fn failures(record: &RunRecord, painter: Painter) -> String {
    let mut rows: Vec<(&str, anstyle::Style, &JobRecord, String)> = Vec::new();
    let earlier = |job: &JobRecord| {
        if job.earlier { " (an earlier run)" } else { "" }
    };
    for job in record
        .jobs
        .iter()
        .filter(|j| j.state == Some(JobState::Dead))
    {
        let what = what_failed(job.exit_code.unwrap_or_default(), job.error.as_deref());
        let why = format!("{what} after {} attempt(s){}", job.attempts, earlier(job));
        rows.push(("dead", state_style(JobState::Dead), job, why));
    }
    for job in record.jobs.iter().filter(|j| j.is_flaky()) {
        let why = format!("completed after {} failed attempt(s)", job.failures.len());
        rows.push(("flaky", state_style(JobState::Failed), job, why));
    }
    for job in record
        .jobs
        .iter()
        .filter(|j| j.state == Some(JobState::Cancelled))
    {
        let reason = job.error.clone().unwrap_or_else(|| "cancelled".into());
        let why = format!("{reason}{}", earlier(job));
        rows.push(("cancelled", state_style(JobState::Cancelled), job, why));
    }
    if rows.is_empty() {
        return String::new();
    }
    // A job of the jobfile by its name, another by its id (what `show`
    // and `logs` take).
    let handle = |job: &JobRecord| job.definition.clone().unwrap_or_else(|| job.id.clone());
    let label_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let name_width = rows
        .iter()
        .map(|r| handle(r.2).chars().count())
        .max()
        .unwrap_or(0);
    let mut text = String::from("failures:\n");
    for (label, style, job, why) in rows {
        let label = painter.paint(&format!("{label:<label_width$}"), style);
        let name = format!("{:<name_width$}", handle(job));
        text.push_str(&format!("  {label}  {name}  {}\n", truncate(&why, 120)));
    }
    text
}

/// A table of every job the run listed.
fn job_table(record: &RunRecord, painter: Painter) -> String {
    if record.jobs.is_empty() {
        return String::new();
    }
    let rows: Vec<_> = record
        .jobs
        .iter()
        .map(|j| {
            let state = j.state.map_or("running".to_string(), |s| s.to_string());
            let style = j.state.map_or(anstyle::Style::new(), state_style);
            let flaky = if j.is_flaky() { " (flaky)" } else { "" };
            let earlier = if j.earlier { " (earlier)" } else { "" };
            vec![
                cell(&j.name),
                (format!("{state}{flaky}{earlier}"), style),
                cell(j.attempts.to_string()),
                cell(j.exit_code.map_or("-".into(), |c| c.to_string())),
                cell(short(j.time)),
            ]
        })
        .collect();
    let mut text = table(
        painter,
        &["JOB", "STATE", "ATTEMPTS", "EXIT", "TIME"],
        &rows,
    );
    let unlisted = record.unlisted_count();
    if unlisted > 0 {
        text.push_str(&format!("… and {unlisted} more, not listed\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_table() {
        let record = crate::report::junit::tests::sample();
        let text = summary(&record, Painter { enabled: false }, SummaryMode::All);
        assert_eq!(
            text,
            "JOB     STATE              ATTEMPTS  EXIT  TIME\n\
             ok      completed          1         0     100ms\n\
             flaky   completed (flaky)  2         0     200ms\n\
             broken  dead               1         3     100ms\n\
             2 completed, 1 dead, 0 retrying, 0 cancelled in 0ms\n"
        );
    }

    #[test]
    fn the_failures_section() {
        let record = crate::report::junit::tests::sample();
        let text = summary(&record, Painter { enabled: false }, SummaryMode::Failures);
        assert_eq!(
            text,
            "failures:\n  \
             dead   broken  exit code 3 after 1 attempt(s)\n  \
             flaky  flaky   completed after 1 failed attempt(s)\n\
             2 completed, 1 dead, 0 retrying, 0 cancelled in 0ms\n"
        );
    }

    #[test]
    fn output_is_cleaned_of_terminal_commands() {
        assert_eq!(clean("plain\ttext"), "plain\ttext");
        assert_eq!(clean("\u{1b}[31mred\u{1b}[0m"), "red");
        // What `cargo fmt --check` prints around a diff line.
        assert_eq!(clean("\u{1b}(B\u{1b}[m+fn a() {}"), "+fn a() {}");
        assert_eq!(clean("progress 10%\rprogress 100%"), "progress 100%");
        assert_eq!(clean("bell\u{7}"), "bell\u{fffd}");
        assert_eq!(output_block("a\nb\n"), "    a\n    b\n");
        assert_eq!(output_block(""), "");
    }

    #[test]
    fn long_plans_are_summed_up() {
        let plan: Vec<String> = (0..12)
            .map(|i| format!("+ enqueue  j{i}"))
            .chain(std::iter::once("Plan: 12 to enqueue.".to_string()))
            .collect();
        assert_eq!(
            plan_lines(&plan, false),
            vec!["Plan: 12 to enqueue. (-v for every line)"]
        );
        assert_eq!(plan_lines(&plan, true).len(), 13);
        assert_eq!(plan_lines(&plan[10..], false).len(), 3);
    }
}
