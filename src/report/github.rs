//! GitHub Actions: a failed attempt's output in a collapsed group, fenced
//! so that nothing the job printed is taken for a workflow command, an
//! error annotation on the jobfile's line for each dead job, and the
//! Markdown step summary.
//!
//! The fence is `::stop-commands::TOKEN` … `::TOKEN::` with a fresh random
//! token each time: a job cannot end it early without guessing the token.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};

use super::lines::clean;
use super::record::RunRecord;
use crate::duration::short;
use crate::events::Event;
use crate::job::JobState;

/// GitHub allows this many error annotations per step.
pub const MAX_ERRORS: usize = 10;

/// Where annotations point: the jobfile, as GitHub names it (relative to
/// the workspace), and the line of each job's table in it.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    pub file: Option<String>,
    pub lines: BTreeMap<String, usize>,
}

/// The workflow commands of a run's plain lines.
#[derive(Debug)]
pub struct Github {
    annotations: Annotations,
    errors: usize,
}

impl Github {
    pub fn new(annotations: Annotations) -> Github {
        Github {
            annotations,
            errors: 0,
        }
    }

    /// `line`, the plain line of `event`, with what GitHub adds: for a
    /// failed or dead attempt, its output in a fenced group, and for a dead
    /// job an error annotation (at most [`MAX_ERRORS`]).
    pub fn wrap(&mut self, event: &Event, line: String, record: &RunRecord) -> String {
        let Event::Finished {
            id,
            state,
            output_tail,
            error,
            definition,
            ..
        } = event
        else {
            return line;
        };
        let output = output_tail.as_deref().unwrap_or_default();
        let mut text = if output.is_empty() {
            line
        } else {
            format!("::group::{line}\n{}::endgroup::", fenced(output))
        };
        if *state == JobState::Dead && self.errors < MAX_ERRORS {
            self.errors += 1;
            let name = record.job(id).map_or(id.as_str(), |j| j.name.as_str());
            let mut properties = Vec::new();
            let line_of = definition
                .as_ref()
                .and_then(|d| self.annotations.lines.get(d));
            if let (Some(file), Some(line)) = (&self.annotations.file, line_of) {
                properties.push(format!("file={}", escape_property(file)));
                properties.push(format!("line={line}"));
            }
            properties.push(format!(
                "title={}",
                escape_property(&format!("{name} is dead"))
            ));
            let message = error.as_deref().unwrap_or("dead");
            text.push_str(&format!(
                "\n::error {}::{}",
                properties.join(","),
                escape_data(&format!("{name} ({id}): {message}"))
            ));
        }
        text
    }
}

/// `output` between `::stop-commands::TOKEN` and `::TOKEN::`.
pub fn fenced(output: &str) -> String {
    let token = token();
    let mut text = format!("::stop-commands::{token}\n");
    for line in output.lines() {
        text.push_str(&clean(line));
        text.push('\n');
    }
    text.push_str(&format!("::{token}::\n"));
    text
}

/// 32 random hex digits.
fn token() -> String {
    let state = RandomState::new();
    let (a, b) = (state.hash_one(1u8), state.hash_one(2u8));
    format!("{a:016x}{b:016x}")
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

/// A Markdown summary for `$GITHUB_STEP_SUMMARY`: every job, flaky ones
/// marked, a declared job's earlier run said so.
pub fn markdown(record: &RunRecord) -> String {
    let mut out = String::from(
        "### queuectl run\n\n| job | state | attempts | time |\n| --- | --- | --- | --- |\n",
    );
    for job in &record.jobs {
        let icon = match job.state {
            Some(JobState::Completed) => "✅",
            Some(JobState::Dead) => "❌",
            Some(JobState::Cancelled) => "⏹️",
            _ => "⏳",
        };
        let mut state = job.state.map_or("running".to_string(), |s| s.to_string());
        if job.is_flaky() {
            state.push_str(" (flaky)");
        }
        if job.earlier {
            state.push_str(" (an earlier run)");
        }
        out.push_str(&format!(
            "| `{}` | {icon} {state} | {} | {} |\n",
            job.name.replace('|', "\\|").replace('`', "'"),
            job.attempts,
            short(job.time)
        ));
    }
    out.push_str(&format!(
        "\n{} completed, {} dead in {}\n",
        record.count(JobState::Completed),
        record.count(JobState::Dead),
        short(record.elapsed)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_fenced_with_a_fresh_token() {
        let a = fenced("::endgroup::\n::error::pwned\n");
        let b = fenced("x\n");
        let token = a
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("::stop-commands::"))
            .unwrap_or_default();
        assert_eq!(token.len(), 32);
        assert_eq!(
            a,
            format!("::stop-commands::{token}\n::endgroup::\n::error::pwned\n::{token}::\n")
        );
        assert!(!b.contains(token), "a fresh token each time");
    }

    #[test]
    fn github_annotations_for_dead_jobs() {
        use crate::job::AttemptOutcome;
        use crate::output::Painter;
        use crate::report::lines::{Lines, plain_line};
        let mut record = RunRecord::default();
        record.record(&Event::Started {
            slot: 0,
            id: "j9".into(),
            definition: Some("deploy".into()),
            command: "x".into(),
            queue: "default".into(),
            attempt: 1,
            max_attempts: 3,
        });
        let dead = Event::Finished {
            slot: 0,
            id: "j9".into(),
            definition: Some("deploy".into()),
            attempt: 2,
            outcome: AttemptOutcome::Failed,
            state: JobState::Dead,
            exit_code: 1,
            duration: std::time::Duration::from_millis(10),
            retry_at: None,
            error: Some("exit code 1; 100% broken\nreally".into()),
            output_tail: Some("last words\n".into()),
        };
        record.record(&dead);
        let lines = Lines {
            painter: Painter { enabled: false },
            verbose: false,
        };
        let line = plain_line(&dead, lines).unwrap_or_default();
        assert_eq!(
            line,
            "dead      deploy (j9)  exit code 1 after 2 attempt(s)"
        );
        let mut github = Github::new(Annotations::default());
        let text = github.wrap(&dead, "dead j9".into(), &record);
        let token = text
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("::stop-commands::"))
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            text,
            format!(
                "::group::dead j9\n::stop-commands::{token}\nlast words\n::{token}::\n::endgroup::\n::error title=deploy is dead::deploy (j9): exit code 1; 100%25 broken%0Areally"
            )
        );
        github.errors = MAX_ERRORS;
        assert!(!github.wrap(&dead, "x".into(), &record).contains("::error"));
        // Pointing at the jobfile when it is known.
        let mut github = Github::new(Annotations {
            file: Some("ci/queuectl.toml".into()),
            lines: [("deploy".to_string(), 12)].into(),
        });
        assert!(
            github
                .wrap(&dead, "x".into(), &record)
                .contains("::error file=ci/queuectl.toml,line=12,title=deploy is dead::")
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_data("100% broken\nreally"), "100%25 broken%0Areally");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
