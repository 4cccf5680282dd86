//! Renders [`Event`]s, chosen once at the start: progress bars on a
//! terminal (indicatif: one overall bar, a line per running job, failures
//! printed above the bars), plain lines elsewhere (one per event; under
//! GitHub Actions with `::group::` around a dead job's output and
//! `::error::` annotations), JSON Lines (`--json`), or nothing (`-q`). Every
//! mode folds the events into a [`RunRecord`] for the summary at the end.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::clock;
use crate::duration::short;
use crate::events::Event;
use crate::job::{AttemptOutcome, JobState};
use crate::output::{DIM, GREEN, Painter, RED, YELLOW, print_out, truncate};
use crate::report::RunRecord;

/// GitHub allows this many error annotations per step.
const GITHUB_MAX_ERRORS: usize = 10;

/// How events are shown.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    /// A line per event on stdout; `github` adds workflow commands.
    Plain {
        painter: Painter,
        github: bool,
    },
    /// Progress bars on stderr; `force` draws them even off a terminal.
    Bars {
        painter: Painter,
        force: bool,
    },
    /// One JSON object per event on stdout.
    Json,
    Quiet,
}

/// Shows every event until the senders are gone; returns what happened.
pub fn report(events: Receiver<Event>, style: Style) -> RunRecord {
    match style {
        Style::Bars { painter, force } => {
            let target = if force {
                ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10)
            } else {
                ProgressDrawTarget::stderr_with_hz(10)
            };
            report_bars(events, painter, target)
        }
        other => report_lines(events, other),
    }
}

fn report_lines(events: Receiver<Event>, style: Style) -> RunRecord {
    let started = Instant::now();
    let mut record = RunRecord::default();
    let mut errors = 0;
    for event in events {
        record.record(&event);
        let text = match style {
            Style::Quiet | Style::Bars { .. } => continue,
            Style::Json => serde_json::to_string(&event).unwrap_or_default(),
            Style::Plain { painter, github } => {
                let Some(line) = plain_line(&event, painter) else {
                    continue;
                };
                if github {
                    github_wrap(&event, line, &record, &mut errors)
                } else {
                    line
                }
            }
        };
        let _ = print_out(&format!("{text}\n"));
    }
    record.elapsed = started.elapsed();
    record
}

/// Adds GitHub workflow commands around a dead job's line: its output in a
/// collapsed group, and an error annotation (at most [`GITHUB_MAX_ERRORS`]).
fn github_wrap(event: &Event, line: String, record: &RunRecord, errors: &mut usize) -> String {
    let Event::Finished {
        id,
        state: JobState::Dead,
        output_tail,
        error,
        ..
    } = event
    else {
        return line;
    };
    let name = record.job(id).map_or(id.as_str(), |j| j.name.as_str());
    let mut text = format!("::group::{line}\n{}", output_tail.as_deref().unwrap_or(""));
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("::endgroup::");
    if *errors < GITHUB_MAX_ERRORS {
        *errors += 1;
        let message = error.as_deref().unwrap_or("dead");
        text.push_str(&format!(
            "\n::error title={}::{}",
            escape_property(&format!("{name} is dead")),
            escape_data(&format!("{name} ({id}): {message}"))
        ));
    }
    text
}

/// GitHub's escaping of a workflow command's message.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// …and of a property value.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The bars: an overall bar and a line per running job.
fn report_bars(events: Receiver<Event>, painter: Painter, target: ProgressDrawTarget) -> RunRecord {
    let started = Instant::now();
    let mut record = RunRecord::default();
    let multi = MultiProgress::with_draw_target(target);
    let overall = multi.add(ProgressBar::new(0));
    overall.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise:.dim} [{bar:30.green/dim}] {pos}/{len} done  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    overall.enable_steady_tick(Duration::from_millis(200));
    let job_style =
        ProgressStyle::with_template("  {spinner:.cyan} {prefix:24} {msg}  {elapsed:.dim}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut running: HashMap<String, ProgressBar> = HashMap::new();
    let (mut done, mut dead, mut remaining) = (0u64, 0u64, 0u64);
    let mut retrying = 0u64;
    for event in events {
        record.record(&event);
        match &event {
            Event::Started {
                id,
                attempt,
                max_attempts,
                ..
            } => {
                let name = record.job(id).map_or(id.clone(), |j| j.name.clone());
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(job_style.clone());
                bar.set_prefix(truncate(&name, 24));
                bar.set_message(format!("attempt {attempt}/{max_attempts}"));
                bar.enable_steady_tick(Duration::from_millis(100));
                if let Some(old) = running.insert(id.clone(), bar) {
                    multi.remove(&old);
                }
            }
            Event::Discarded { id, .. } => {
                if let Some(bar) = running.remove(id) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                if let Some(line) = plain_line(&event, painter) {
                    let _ = multi.println(line);
                }
            }
            Event::Finished {
                id, state, outcome, ..
            } => {
                if let Some(bar) = running.remove(id) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                match (state, outcome) {
                    (JobState::Completed, _) => done += 1,
                    (JobState::Dead, _) => dead += 1,
                    _ => {}
                }
                if *outcome != AttemptOutcome::Completed
                    && let Some(line) = plain_line(&event, painter)
                {
                    let _ = multi.println(line);
                }
            }
            Event::Counts {
                pending,
                processing,
                failed,
            } => {
                remaining = pending + processing + failed;
                retrying = *failed;
            }
            other => {
                if let Some(line) = plain_line(other, painter) {
                    let _ = multi.println(line);
                }
            }
        }
        overall.set_length(done + dead + remaining.max(running.len() as u64));
        overall.set_position(done + dead);
        overall.set_message(format!("{retrying} retrying, {dead} dead"));
    }
    overall.finish_and_clear();
    record.elapsed = started.elapsed();
    record
}

/// The plain line of an event, if it has one.
pub fn plain_line(event: &Event, painter: Painter) -> Option<String> {
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
            let id = &match definition {
                Some(name) => format!("{name} ({id})"),
                None => id.clone(),
            };
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
        Event::Discarded { id, definition, .. } => {
            let id = match definition {
                Some(name) => format!("{name} ({id})"),
                None => id.clone(),
            };
            format!(
                "{} {id}  result discarded: another worker rescued the job from this one",
                tag("dropped", YELLOW)
            )
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;
    use std::sync::mpsc::channel;

    fn started(id: &str, name: &str) -> Event {
        Event::Started {
            slot: 0,
            id: id.into(),
            definition: Some(name.into()),
            command: "sleep 1".into(),
            queue: "default".into(),
            attempt: 1,
            max_attempts: 4,
        }
    }

    #[test]
    fn bars_show_progress_and_running_jobs() {
        let term = InMemoryTerm::new(10, 80);
        let (sender, receiver) = channel();
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let painter = Painter { enabled: false };
        let reporter = std::thread::spawn(move || report_bars(receiver, painter, target));
        let send = |e| sender.send(e).unwrap_or_default();
        send(Event::Counts {
            pending: 3,
            processing: 0,
            failed: 0,
        });
        send(started("j1", "build"));
        send(started("j2", "lint"));
        send(Event::Finished {
            slot: 0,
            id: "j2".into(),
            definition: None,
            attempt: 1,
            outcome: AttemptOutcome::Failed,
            state: JobState::Dead,
            exit_code: 3,
            duration: Duration::from_millis(10),
            retry_at: None,
            error: Some("exit code 3".into()),
            output_tail: None,
        });
        send(Event::Counts {
            pending: 1,
            processing: 1,
            failed: 0,
        });
        // Let the bars draw, then read the screen while they are up.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !term.contents().contains("1/3 done") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let screen = term.contents();
        drop(sender);
        let record = reporter.join().unwrap_or_default();
        assert!(
            screen.contains("dead      j2  exit code 3 after 1 attempt(s)"),
            "{screen}"
        );
        assert!(screen.contains("1/3 done  0 retrying, 1 dead"), "{screen}");
        assert!(screen.contains("build"), "{screen}");
        assert!(screen.contains("attempt 1/4"), "{screen}");
        assert_eq!(record.jobs.len(), 2);
    }

    #[test]
    fn github_annotations_for_dead_jobs() {
        let mut record = RunRecord::default();
        let start = started("j9", "deploy");
        record.record(&start);
        let dead = Event::Finished {
            slot: 0,
            id: "j9".into(),
            definition: Some("deploy".into()),
            attempt: 2,
            outcome: AttemptOutcome::Failed,
            state: JobState::Dead,
            exit_code: 1,
            duration: Duration::from_millis(10),
            retry_at: None,
            error: Some("exit code 1; 100% broken\nreally".into()),
            output_tail: Some("last words\n".into()),
        };
        record.record(&dead);
        let mut errors = 0;
        let line = plain_line(&dead, Painter { enabled: false }).unwrap_or_default();
        assert_eq!(
            line,
            "dead      deploy (j9)  exit code 1 after 2 attempt(s)"
        );
        let text = github_wrap(&dead, "dead j9".into(), &record, &mut errors);
        assert_eq!(
            text,
            "::group::dead j9\nlast words\n::endgroup::\n::error title=deploy is dead::deploy (j9): exit code 1; 100%25 broken%0Areally"
        );
        errors = GITHUB_MAX_ERRORS;
        assert!(!github_wrap(&dead, "x".into(), &record, &mut errors).contains("::error"));
    }
}
