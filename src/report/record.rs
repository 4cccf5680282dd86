//! What a run did, job by job, folded from its events ([`RunRecord`]):
//! the material of the summary at the end of `run`, the JUnit report and
//! GitHub's step summary. Memory is bounded: every definition's latest run
//! is kept, and jobs of no definition up to [`MAX_LISTED`] (and failed
//! ones up to [`MAX_LISTED_FAILURES`]); the others are only counted.

use std::collections::HashMap;
use std::time::Duration;

use crate::events::Event;
use crate::job::{AttemptOutcome, JobState};
use crate::output::truncate;

/// How many jobs of no definition a run lists, besides those that failed.
pub const MAX_LISTED: usize = 500;
/// How many failed jobs of no definition a run lists.
pub const MAX_LISTED_FAILURES: usize = 500;
/// How many failed attempts of one job a run keeps (the latest).
const MAX_FAILURES_KEPT: usize = 20;

/// An attempt that failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub outcome: AttemptOutcome,
    pub exit_code: i32,
    pub duration: Duration,
    /// What went wrong: `exit code 3`, `timed out after 1s`.
    pub message: String,
    /// The end of its output.
    pub output: String,
}

/// One job as this run saw it.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: String,
    /// The definition's name, else the command, shortened.
    pub name: String,
    pub definition: Option<String>,
    pub queue: String,
    /// Attempts this run made.
    pub attempts: u32,
    /// Its failed attempts in this run, oldest first (the latest 20).
    pub failures: Vec<Failure>,
    /// The state the job was left in; `None` while it runs.
    pub state: Option<JobState>,
    pub time: Duration,
    pub exit_code: Option<i32>,
    /// Why it failed, or (cancelled) why it was cancelled.
    pub error: Option<String>,
    /// The end of the output of its last failed attempt.
    pub output_tail: Option<String>,
    /// It is a declared job's latest run from before this run: this run
    /// started nothing of it.
    pub earlier: bool,
}

impl JobRecord {
    fn new(id: &str, name: String, definition: Option<String>, queue: &str) -> JobRecord {
        JobRecord {
            id: id.to_string(),
            name,
            definition,
            queue: queue.to_string(),
            attempts: 0,
            failures: Vec::new(),
            state: None,
            time: Duration::ZERO,
            exit_code: None,
            error: None,
            output_tail: None,
            earlier: false,
        }
    }

    /// Completed after failed attempts.
    pub fn is_flaky(&self) -> bool {
        self.state == Some(JobState::Completed) && !self.failures.is_empty()
    }
}

/// The latest run of a job of the jobfile, as the store has it: what a
/// run reports for every declared one-shot job, whether it started it or
/// not.
#[derive(Debug, Clone)]
pub struct Declared {
    pub name: String,
    pub id: String,
    pub queue: String,
    pub state: JobState,
    /// Its attempts, exit code and last error, if its row is still there.
    pub attempts: u32,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub output_tail: Option<String>,
    /// This run touched it (started it, or cancelled it while it ran).
    pub touched: bool,
}

/// The jobs a run touched, in the order they started.
#[derive(Debug, Default, Clone)]
pub struct RunRecord {
    pub jobs: Vec<JobRecord>,
    pub elapsed: Duration,
    /// When the run started (ms since the epoch).
    pub started_at: i64,
    /// Where each listed id is in `jobs`.
    index: HashMap<String, usize>,
    /// Where each definition's latest run is in `jobs`.
    by_definition: HashMap<String, usize>,
    /// Jobs running (or waiting for a retry) that are not listed.
    unlisted: HashMap<String, JobRecord>,
    /// Listed jobs of no definition, all and failed.
    listed: usize,
    listed_failures: usize,
    /// Jobs that ended unlisted, by their state.
    uncounted: HashMap<JobState, usize>,
}

impl RunRecord {
    /// Folds one event in.
    pub fn record(&mut self, event: &Event) {
        match event {
            Event::Started {
                id,
                definition,
                command,
                queue,
                ..
            } => {
                if self.job(id).is_none() {
                    let name = definition.clone().unwrap_or_else(|| truncate(command, 40));
                    let record = JobRecord::new(id, name, definition.clone(), queue);
                    self.start(record);
                }
                if let Some(job) = self.job_mut(id) {
                    job.attempts += 1;
                    job.state = None;
                }
            }
            Event::Finished {
                id,
                outcome,
                state,
                exit_code,
                duration,
                error,
                output_tail,
                ..
            } => {
                if let Some(job) = self.job_mut(id) {
                    job.time += *duration;
                    job.exit_code = Some(*exit_code);
                    job.error = error.clone();
                    if output_tail.is_some() {
                        job.output_tail = output_tail.clone();
                    }
                    if matches!(outcome, AttemptOutcome::Failed | AttemptOutcome::Timeout) {
                        if job.failures.len() == MAX_FAILURES_KEPT {
                            job.failures.remove(0);
                        }
                        job.failures.push(Failure {
                            outcome: *outcome,
                            exit_code: *exit_code,
                            duration: *duration,
                            message: what_failed(*exit_code, error.as_deref()),
                            output: output_tail.clone().unwrap_or_default(),
                        });
                    }
                    if *outcome == AttemptOutcome::Interrupted {
                        job.attempts = job.attempts.saturating_sub(1);
                    }
                    job.state = Some(*state);
                }
                if state.is_finished() {
                    self.settle(id);
                }
            }
            _ => {}
        }
    }

    /// Lists a job that started, or keeps it aside.
    fn start(&mut self, record: JobRecord) {
        let id = record.id.clone();
        if let Some(name) = record.definition.clone() {
            // A definition's latest run replaces its earlier one.
            if let Some(&at) = self.by_definition.get(&name) {
                let replaced = std::mem::replace(&mut self.jobs[at], record);
                self.index.remove(&replaced.id);
                if let Some(state) = replaced.state.filter(|_| !replaced.earlier) {
                    *self.uncounted.entry(state).or_default() += 1;
                }
                self.index.insert(id, at);
                return;
            }
            self.by_definition.insert(name, self.jobs.len());
        } else if self.listed >= MAX_LISTED {
            self.unlisted.insert(id, record);
            return;
        } else {
            self.listed += 1;
        }
        self.index.insert(id, self.jobs.len());
        self.jobs.push(record);
    }

    /// An unlisted job ended: list it if it failed (and there is room),
    /// else only count it.
    fn settle(&mut self, id: &str) {
        let Some(record) = self.unlisted.remove(id) else {
            return;
        };
        let failed = record.state != Some(JobState::Completed) || !record.failures.is_empty();
        if failed && self.listed_failures < MAX_LISTED_FAILURES {
            self.listed_failures += 1;
            self.index.insert(record.id.clone(), self.jobs.len());
            self.jobs.push(record);
        } else if let Some(state) = record.state {
            *self.uncounted.entry(state).or_default() += 1;
        }
    }

    /// Adds what the store says of a declared job's latest run, when this
    /// run did not start it (a dependent cancelled because its dependency
    /// died, or a run from before), so every job of the jobfile is
    /// reported.
    pub fn add_declared(&mut self, declared: Declared) {
        if self.index.contains_key(&declared.id) {
            return;
        }
        let mut record = JobRecord::new(
            &declared.id,
            declared.name.clone(),
            Some(declared.name.clone()),
            &declared.queue,
        );
        record.attempts = declared.attempts;
        record.state = Some(declared.state);
        record.exit_code = declared.exit_code;
        record.error = declared.error;
        record.output_tail = declared.output_tail;
        record.earlier = !declared.touched;
        self.start(record);
    }

    fn job_mut(&mut self, id: &str) -> Option<&mut JobRecord> {
        match self.index.get(id) {
            Some(&i) => self.jobs.get_mut(i),
            None => self.unlisted.get_mut(id),
        }
    }

    /// The job with this id, if the run touched it and still holds it.
    pub fn job(&self, id: &str) -> Option<&JobRecord> {
        match self.index.get(id) {
            Some(&i) => self.jobs.get(i),
            None => self.unlisted.get(id),
        }
    }

    /// Jobs of the run in `state`, listed or not (earlier runs of declared
    /// jobs not included).
    pub fn count(&self, state: JobState) -> usize {
        let listed = self
            .jobs
            .iter()
            .filter(|j| j.state == Some(state) && !j.earlier)
            .count();
        let aside = self
            .unlisted
            .values()
            .filter(|j| j.state == Some(state))
            .count();
        listed + aside + self.uncounted.get(&state).copied().unwrap_or(0)
    }

    /// Jobs that ended without being listed (see [`MAX_LISTED`]).
    pub fn unlisted_count(&self) -> usize {
        self.uncounted.values().sum()
    }
}

/// What an attempt's failure was, in a few words: the first clause of its
/// error, or its exit code.
pub fn what_failed(exit_code: i32, error: Option<&str>) -> String {
    match error {
        Some(error) => truncate(error.split(';').next().unwrap_or(error), 80),
        None => format!("exit code {exit_code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: &str, definition: Option<&str>) -> Event {
        Event::Started {
            slot: 0,
            id: id.into(),
            definition: definition.map(str::to_string),
            command: "x".into(),
            queue: "default".into(),
            attempt: 1,
            max_attempts: 3,
        }
    }

    fn completed(id: &str) -> Event {
        Event::Finished {
            slot: 0,
            id: id.into(),
            definition: None,
            attempt: 1,
            outcome: AttemptOutcome::Completed,
            state: JobState::Completed,
            exit_code: 0,
            duration: Duration::from_millis(1),
            retry_at: None,
            error: None,
            output_tail: None,
        }
    }

    #[test]
    fn the_record_of_a_long_run_stays_small() {
        let mut record = RunRecord::default();
        for i in 0..100_000 {
            let id = format!("job-{i}");
            record.record(&started(&id, None));
            record.record(&completed(&id));
        }
        assert!(
            record.jobs.len() <= 1_000,
            "{} jobs kept",
            record.jobs.len()
        );
        assert_eq!(record.count(JobState::Completed), 100_000);
    }

    #[test]
    fn a_definition_keeps_its_latest_run_only() {
        let mut record = RunRecord::default();
        for i in 0..1_000 {
            let id = format!("tick-{i}");
            record.record(&started(&id, Some("nightly")));
            record.record(&completed(&id));
        }
        assert_eq!(record.jobs.len(), 1);
        assert_eq!(record.jobs[0].id, "tick-999");
        assert_eq!(record.count(JobState::Completed), 1_000);
    }
}
