//! Progress bars on a terminal: one overall bar across the terminal's
//! width (done/total, retrying, dead, elapsed) and one row per worker slot
//! (its job, attempt and time, or idle); failures and other events are
//! printed above them, a failed attempt with the end of its output. All
//! on stderr, coloured by stderr's decision.

use crate::events::Receiver;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::lines::{Lines, output_block, plain_line};
use super::record::RunRecord;
use crate::events::Event;
use crate::job::{AttemptOutcome, JobState};
use crate::output::truncate;

/// Where the overall bar stands. Both numbers only ever grow: a job that
/// finishes moves the position; a job that appears grows the total; a job
/// that left the queue without this run seeing it end (cancelled, run by
/// another worker) moves the position too. When nothing is left, the
/// position is the total.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub position: u64,
    pub total: u64,
}

impl Progress {
    /// A job of this run ended for good (completed, dead, cancelled).
    pub fn finished(&mut self) {
        self.position += 1;
        self.total = self.total.max(self.position);
    }

    /// The queue has `unfinished` jobs (pending, running, waiting for a
    /// retry) now.
    pub fn unfinished(&mut self, unfinished: u64) {
        let known = self.position + unfinished;
        if known > self.total {
            self.total = known;
        } else {
            self.position = self.total - unfinished;
        }
    }
}

/// Shows every event until the senders are gone; returns what happened.
pub fn report_bars(events: Receiver, lines: Lines, target: ProgressDrawTarget) -> RunRecord {
    let started = Instant::now();
    let mut record = RunRecord::default();
    let multi = MultiProgress::with_draw_target(target);
    // The bars are on stderr, coloured by its decision (the painter's).
    // console applies a template's styles by its setting for stderr only
    // when indicatif knows the target is stderr, which a forced target
    // (`--progress always`) is not: it would follow stdout's. So without
    // colour on stderr, the templates have no styles at all.
    let color = lines.painter.enabled;
    let template = |styled: &'static str, plain: &'static str| {
        ProgressStyle::with_template(if color { styled } else { plain })
    };
    let overall = multi.add(ProgressBar::new(0));
    overall.set_style(
        template(
            "{elapsed_precise:.dim} [{wide_bar:.green/dim}] {pos}/{len} done  {msg}",
            "{elapsed_precise} [{wide_bar}] {pos}/{len} done  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    overall.enable_steady_tick(Duration::from_millis(200));
    let busy = template(
        "  {spinner:.cyan} {prefix:24} {msg}  {elapsed:.dim}",
        "  {spinner} {prefix:24} {msg}  {elapsed}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let idle = template("    {prefix:.dim}", "    {prefix}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut rows: BTreeMap<usize, ProgressBar> = BTreeMap::new();
    let row = |rows: &mut BTreeMap<usize, ProgressBar>, slot: usize| {
        rows.entry(slot)
            .or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(idle.clone());
                bar.set_prefix("idle");
                bar.enable_steady_tick(Duration::from_millis(100));
                bar
            })
            .clone()
    };
    let set_idle = |bar: &ProgressBar| {
        bar.set_style(idle.clone());
        bar.set_prefix("idle");
        bar.set_message("");
    };
    let mut progress = Progress::default();
    let (mut dead, mut retrying) = (0u64, 0u64);
    for event in events {
        record.record(&event);
        match &event {
            Event::Ready { slots, .. } => {
                if let Some(line) = plain_line(&event, lines) {
                    let _ = multi.println(line);
                }
                for slot in 0..*slots as usize {
                    row(&mut rows, slot);
                }
            }
            Event::Started {
                slot,
                id,
                attempt,
                max_attempts,
                ..
            } => {
                let name = record.job(id).map_or(id.clone(), |j| j.name.clone());
                let bar = row(&mut rows, *slot);
                bar.set_style(busy.clone());
                bar.set_prefix(truncate(&name, 24));
                bar.set_message(format!("attempt {attempt}/{max_attempts}"));
                bar.reset_elapsed();
            }
            Event::Finished {
                slot,
                state,
                outcome,
                output_tail,
                ..
            } => {
                set_idle(&row(&mut rows, *slot));
                if state.is_finished() {
                    progress.finished();
                }
                if *state == JobState::Dead {
                    dead += 1;
                }
                if *outcome != AttemptOutcome::Completed
                    && let Some(line) = plain_line(&event, lines)
                {
                    let tail = output_block(output_tail.as_deref().unwrap_or_default());
                    let _ = multi.println(format!("{line}\n{tail}").trim_end());
                }
            }
            Event::Discarded { slot, .. } => {
                set_idle(&row(&mut rows, *slot));
                if let Some(line) = plain_line(&event, lines) {
                    let _ = multi.println(line);
                }
            }
            Event::Counts {
                pending,
                processing,
                failed,
            } => {
                progress.unfinished(pending + processing + failed);
                retrying = *failed;
            }
            other => {
                if let Some(line) = plain_line(other, lines) {
                    let _ = multi.println(line);
                }
            }
        }
        overall.set_length(progress.total);
        overall.set_position(progress.position);
        overall.set_message(format!("{retrying} retrying, {dead} dead"));
    }
    for bar in rows.values() {
        bar.finish_and_clear();
    }
    overall.finish_and_clear();
    record.elapsed = started.elapsed();
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::channel;
    use crate::output::Painter;
    use indicatif::InMemoryTerm;

    #[test]
    fn progress_only_grows_and_ends_full() {
        let mut p = Progress::default();
        p.unfinished(3);
        assert_eq!(
            p,
            Progress {
                position: 0,
                total: 3
            }
        );
        p.finished();
        p.unfinished(2);
        assert_eq!(
            p,
            Progress {
                position: 1,
                total: 3
            }
        );
        // Two more arrive while one finishes.
        p.finished();
        p.unfinished(3);
        assert_eq!(
            p,
            Progress {
                position: 2,
                total: 5
            }
        );
        // One is cancelled without this run seeing it end.
        p.unfinished(2);
        assert_eq!(
            p,
            Progress {
                position: 3,
                total: 5
            }
        );
        p.finished();
        p.finished();
        p.unfinished(0);
        assert_eq!(
            p,
            Progress {
                position: 5,
                total: 5
            }
        );
    }

    fn started(slot: usize, id: &str, name: &str) -> Event {
        Event::Started {
            slot,
            id: id.into(),
            definition: Some(name.into()),
            command: "sleep 1".into(),
            queue: "default".into(),
            attempt: 1,
            max_attempts: 4,
        }
    }

    #[test]
    fn bars_show_progress_and_a_row_per_slot() {
        let term = InMemoryTerm::new(12, 80);
        let (sender, receiver) = channel();
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let lines = Lines {
            painter: Painter { enabled: false },
            verbose: false,
        };
        let reporter = std::thread::spawn(move || report_bars(receiver, lines, target));
        let send = |e| sender.send(e);
        send(Event::Ready {
            pid: 1,
            slots: 3,
            queues: vec![],
        });
        send(Event::Counts {
            pending: 3,
            processing: 0,
            failed: 0,
        });
        send(started(0, "j1", "build"));
        send(started(1, "j2", "lint"));
        send(Event::Finished {
            slot: 1,
            id: "j2".into(),
            definition: None,
            attempt: 1,
            outcome: AttemptOutcome::Failed,
            state: JobState::Dead,
            exit_code: 3,
            duration: Duration::from_millis(10),
            retry_at: None,
            error: Some("exit code 3".into()),
            output_tail: Some("lint says no\n".into()),
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
            screen.contains("dead      j2  exit code 3 after 1 attempt(s)\n    lint says no"),
            "{screen}"
        );
        assert!(screen.contains("1/3 done  0 retrying, 1 dead"), "{screen}");
        assert!(screen.contains("build"), "{screen}");
        assert!(screen.contains("attempt 1/4"), "{screen}");
        assert_eq!(
            screen.matches("idle").count(),
            2,
            "a row per slot: {screen}"
        );
        assert_eq!(record.jobs.len(), 2);
    }
}
