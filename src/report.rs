//! What a run did, job by job, gathered from its events: the summary table
//! at the end of `run`, the JUnit report (`--junit`) and the Markdown
//! summary for GitHub Actions (`$GITHUB_STEP_SUMMARY`).

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

/// Every job this run touched, in the order they started.
#[derive(Debug, Default, Clone)]
pub struct RunRecord {
    pub jobs: Vec<JobRecord>,
    pub elapsed: Duration,
    /// Where each id is in `jobs`.
    index: std::collections::HashMap<String, usize>,
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
                if !self.index.contains_key(id) {
                    self.index.insert(id.clone(), self.jobs.len());
                    self.jobs.push(JobRecord {
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
                    });
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
            }
            _ => {}
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
        let i = *self.index.get(id)?;
        self.jobs.get_mut(i)
    }

    /// The job with this id, if the run touched it.
    pub fn job(&self, id: &str) -> Option<&JobRecord> {
        self.index.get(id).and_then(|&i| self.jobs.get(i))
    }

    pub fn count(&self, state: JobState) -> usize {
        self.jobs.iter().filter(|j| j.state == Some(state)).count()
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
}
