//! What a run did, job by job, gathered from its events: the summary table
//! at the end of `run`, the JUnit report (`--junit`) and the Markdown
//! summary for GitHub Actions (`$GITHUB_STEP_SUMMARY`).

use std::collections::HashMap;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use crate::duration::short;
use crate::events::Event;
use crate::job::{AttemptOutcome, JobState};
use crate::output::{Painter, cell, state_style, table, truncate};

/// One job as this run saw it.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: String,
    /// The definition's name, else the command, shortened.
    pub name: String,
    pub queue: String,
    /// Attempts this run made, and how each failed one ended.
    pub attempts: u32,
    pub failures: Vec<(Option<i32>, Duration)>,
    /// The state the job was left in; `None` while it runs.
    pub state: Option<JobState>,
    pub time: Duration,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub output_tail: Option<String>,
}

/// How many jobs of no definition a run lists, besides those that failed:
/// past that, jobs that simply completed are counted, not listed, so a
/// long-lived `run` holds no memory per job it ran.
pub const MAX_LISTED: usize = 500;
/// How many failed jobs of no definition a run lists.
pub const MAX_LISTED_FAILURES: usize = 500;

/// The jobs a run touched, in the order they started: every definition's
/// latest run, and jobs of no definition up to [`MAX_LISTED`] (and failed
/// ones up to [`MAX_LISTED_FAILURES`]); the others are counted.
#[derive(Debug, Default, Clone)]
pub struct RunRecord {
    pub jobs: Vec<JobRecord>,
    pub elapsed: Duration,
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
                if !self.index.contains_key(id) && !self.unlisted.contains_key(id) {
                    let record = JobRecord {
                        id: id.clone(),
                        name: definition.clone().unwrap_or_else(|| truncate(command, 40)),
                        queue: queue.clone(),
                        attempts: 0,
                        failures: Vec::new(),
                        state: None,
                        time: Duration::ZERO,
                        exit_code: None,
                        error: None,
                        output_tail: None,
                    };
                    self.start(record, definition.as_deref());
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
                        job.failures.push((Some(*exit_code), *duration));
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
    fn start(&mut self, record: JobRecord, definition: Option<&str>) {
        let id = record.id.clone();
        if let Some(name) = definition {
            // A definition's latest run replaces its earlier one.
            if let Some(&at) = self.by_definition.get(name) {
                self.index.remove(&self.jobs[at].id);
                self.jobs[at] = record;
                self.index.insert(id, at);
                return;
            }
            self.by_definition.insert(name.to_string(), self.jobs.len());
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

    /// Adds a job this run did not start (a dependent cancelled because its
    /// dependency died, or one still waiting), so the summary and the
    /// reports list every job of the jobfile.
    pub fn add_unstarted(
        &mut self,
        id: &str,
        name: &str,
        queue: &str,
        state: JobState,
        reason: Option<String>,
    ) {
        if self.jobs.iter().any(|j| j.id == id) {
            return;
        }
        self.jobs.push(JobRecord {
            id: id.to_string(),
            name: name.to_string(),
            queue: queue.to_string(),
            attempts: 0,
            failures: Vec::new(),
            state: Some(state),
            time: Duration::ZERO,
            exit_code: None,
            error: reason,
            output_tail: None,
        });
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

    /// Jobs of the run in `state`, listed or not.
    pub fn count(&self, state: JobState) -> usize {
        let listed = self.jobs.iter().filter(|j| j.state == Some(state)).count();
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

    /// The table printed when a run ends.
    pub fn summary_table(&self, painter: Painter) -> String {
        if self.jobs.is_empty() {
            return format!("no jobs ran ({})\n", short(self.elapsed));
        }
        let rows: Vec<_> = self
            .jobs
            .iter()
            .map(|j| {
                let state = j.state.map_or("running".to_string(), |s| s.to_string());
                let style = j.state.map_or(anstyle::Style::new(), state_style);
                let flaky = if j.state == Some(JobState::Completed) && !j.failures.is_empty() {
                    " (flaky)"
                } else {
                    ""
                };
                vec![
                    cell(&j.name),
                    (format!("{state}{flaky}"), style),
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
        let unlisted = self.unlisted_count();
        if unlisted > 0 {
            text.push_str(&format!("… and {unlisted} more, not listed\n"));
        }
        text.push_str(&format!(
            "{} completed, {} dead, {} retrying, {} cancelled in {}\n",
            self.count(JobState::Completed),
            self.count(JobState::Dead),
            self.count(JobState::Failed),
            self.count(JobState::Cancelled),
            short(self.elapsed)
        ));
        text
    }

    /// A JUnit XML report: one test case per job; a job that completed after
    /// failures is flaky (its failed attempts are flaky runs); a dead job is
    /// a failure with its output's tail; a cancelled one is skipped.
    pub fn junit(&self, suite_name: &str) -> String {
        let mut suite = TestSuite::new(suite_name);
        for job in &self.jobs {
            let mut status = match job.state {
                Some(JobState::Completed) => TestCaseStatus::success(),
                Some(JobState::Dead) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(job.error.clone().unwrap_or_else(|| "dead".into()));
                    status.set_type("dead");
                    if let Some(tail) = &job.output_tail {
                        status.set_description(tail.clone());
                    }
                    status
                }
                Some(JobState::Cancelled) => TestCaseStatus::skipped(),
                _ => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                    status.set_message("did not finish in this run");
                    status
                }
            };
            if job.state == Some(JobState::Completed) {
                for (code, time) in &job.failures {
                    let mut rerun = TestRerun::new(NonSuccessKind::Failure);
                    rerun.set_time(*time);
                    rerun.set_message(code.map_or("failed".into(), |c| format!("exit code {c}")));
                    status.add_rerun(rerun);
                }
            }
            let mut case = TestCase::new(job.name.clone(), status);
            case.set_classname(job.queue.clone());
            case.set_time(job.time);
            suite.add_test_case(case);
        }
        suite.set_time(self.elapsed);
        let mut report = Report::new("queuectl");
        report.set_time(self.elapsed);
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
    }

    /// A Markdown summary for `$GITHUB_STEP_SUMMARY`.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "### queuectl run\n\n| job | state | attempts | time |\n| --- | --- | --- | --- |\n",
        );
        for job in &self.jobs {
            let icon = match job.state {
                Some(JobState::Completed) => "✅",
                Some(JobState::Dead) => "❌",
                Some(JobState::Cancelled) => "⏹️",
                _ => "⏳",
            };
            let state = job.state.map_or("running".to_string(), |s| s.to_string());
            out.push_str(&format!(
                "| `{}` | {icon} {state} | {} | {} |\n",
                job.name.replace('|', "\\|"),
                job.attempts,
                short(job.time)
            ));
        }
        out.push_str(&format!(
            "\n{} completed, {} dead in {}\n",
            self.count(JobState::Completed),
            self.count(JobState::Dead),
            short(self.elapsed)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: &str, name: &str) -> Event {
        Event::Started {
            slot: 0,
            id: id.into(),
            definition: Some(name.into()),
            command: "x".into(),
            queue: "default".into(),
            attempt: 1,
            max_attempts: 3,
        }
    }

    fn finished(id: &str, outcome: AttemptOutcome, state: JobState, code: i32) -> Event {
        Event::Finished {
            slot: 0,
            id: id.into(),
            definition: Some("x".into()),
            attempt: 1,
            outcome,
            state,
            exit_code: code,
            duration: Duration::from_millis(100),
            retry_at: None,
            error: (code != 0).then(|| format!("exit code {code}")),
            output_tail: (state == JobState::Dead).then(|| "boom\n".to_string()),
        }
    }

    fn sample() -> RunRecord {
        let mut record = RunRecord::default();
        for event in [
            started("1", "ok"),
            finished("1", AttemptOutcome::Completed, JobState::Completed, 0),
            started("2", "flaky"),
            finished("2", AttemptOutcome::Failed, JobState::Failed, 1),
            started("2", "flaky"),
            finished("2", AttemptOutcome::Completed, JobState::Completed, 0),
            started("3", "broken"),
            finished("3", AttemptOutcome::Failed, JobState::Dead, 3),
        ] {
            record.record(&event);
        }
        record
    }

    #[test]
    fn the_summary_table() {
        let text = sample().summary_table(Painter { enabled: false });
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
    fn junit_marks_flaky_and_dead() {
        let xml = sample().junit("ci");
        assert!(
            xml.contains(r#"<testsuite name="ci" tests="3" skipped="0" errors="0" failures="1""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<flakyFailure time="0.100" message="exit code 1">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="exit code 3" type="dead">boom"#),
            "{xml}"
        );
    }

    #[test]
    fn the_record_of_a_long_run_stays_small() {
        let mut record = RunRecord::default();
        for i in 0..100_000 {
            let id = format!("job-{i}");
            let mut start = started(&id, "x");
            if let Event::Started { definition, .. } = &mut start {
                *definition = None;
            }
            record.record(&start);
            let mut end = finished(&id, AttemptOutcome::Completed, JobState::Completed, 0);
            if let Event::Finished { definition, .. } = &mut end {
                *definition = None;
            }
            record.record(&end);
        }
        assert!(
            record.jobs.len() <= 1_000,
            "{} jobs kept",
            record.jobs.len()
        );
        assert_eq!(record.count(JobState::Completed), 100_000);
    }
}
