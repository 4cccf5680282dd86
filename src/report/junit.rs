//! The JUnit XML report of a run (`run --junit FILE`), valid against the
//! Jenkins xUnit schema (`tests/fixtures/junit-10.xsd`, which a test
//! checks with xmllint): one test case per job; a job that completed after
//! failed attempts is flaky (each failure a `flakyFailure` with its
//! output); a dead job is a failure with its output, its earlier attempts
//! `rerunFailure`s; a cancelled one is skipped with the reason.
//!
//! Written by hand: the schema is strict about which attribute goes where
//! (no `time` on a rerun, no `skipped` on `testsuites`), and the format is
//! small.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::record::{Failure, JobRecord, RunRecord};
use crate::error::{Error, Result};
use crate::job::{AttemptOutcome, JobState};

/// The report's file, opened (so known to be writable) before any job runs.
#[derive(Debug)]
pub struct JunitFile {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl JunitFile {
    /// Creates (truncates) the file now: a path that cannot be written is
    /// an error before anything runs, not after.
    pub fn create(path: &Path) -> Result<JunitFile> {
        let file = std::fs::File::create(path)
            .map_err(|e| Error::io("write the JUnit report", path, e))?;
        Ok(JunitFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes the report of `record`.
    pub fn write(mut self, record: &RunRecord, suite: &str) -> Result<()> {
        use std::io::Write;
        self.file
            .write_all(junit(record, suite).as_bytes())
            .and_then(|()| self.file.sync_all())
            .map_err(|e| Error::io("write the JUnit report", &self.path, e))
    }
}

/// The report as XML.
pub fn junit(record: &RunRecord, suite_name: &str) -> String {
    let count = |f: fn(&JobRecord) -> bool| record.jobs.iter().filter(|j| f(j)).count();
    let tests = record.jobs.len();
    let failures = count(|j| j.state == Some(JobState::Dead));
    let errors = count(|j| !j.state.is_some_and(JobState::is_finished));
    let skipped = count(|j| j.state == Some(JobState::Cancelled));
    let time = seconds(record.elapsed);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"queuectl\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time}\">"
    );
    let timestamp = jiff::Timestamp::from_millisecond(record.started_at)
        .map(|t| format!(" timestamp=\"{t}\""))
        .unwrap_or_default();
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{tests}\" skipped=\"{skipped}\" errors=\"{errors}\" failures=\"{failures}\" time=\"{time}\"{timestamp}>",
        attr(suite_name)
    );
    for job in &record.jobs {
        test_case(&mut xml, job);
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

fn test_case(xml: &mut String, job: &JobRecord) {
    let _ = write!(
        xml,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        attr(&job.name),
        attr(&job.queue),
        seconds(job.time)
    );
    let mut body = String::new();
    match job.state {
        Some(JobState::Completed) => {
            for failure in &job.failures {
                rerun(&mut body, "flakyFailure", failure);
            }
        }
        Some(JobState::Dead) => {
            let mut message = job.error.clone().unwrap_or_else(|| "dead".into());
            if job.earlier {
                message.push_str(" (an earlier run)");
            }
            let _ = writeln!(
                body,
                "      <failure message=\"{}\" type=\"dead\">{}</failure>",
                attr(&message),
                text(job.output_tail.as_deref().unwrap_or_default())
            );
            // The attempts before the last: reruns that failed too.
            let before_last = job.failures.len().saturating_sub(1);
            for failure in &job.failures[..before_last] {
                rerun(&mut body, "rerunFailure", failure);
            }
        }
        Some(JobState::Cancelled) => {
            let reason = job.error.as_deref().unwrap_or("cancelled");
            let _ = writeln!(body, "      <skipped message=\"{}\"/>", attr(reason));
        }
        _ => {
            body.push_str(
                "      <error message=\"did not finish in this run\" type=\"unfinished\"/>\n",
            );
        }
    }
    if body.is_empty() {
        xml.push_str("/>\n");
    } else {
        let _ = write!(xml, ">\n{body}    </testcase>\n");
    }
}

/// A failed attempt as a rerun (`flakyFailure`, `rerunFailure`): its kind,
/// what went wrong, and its output.
fn rerun(xml: &mut String, tag: &str, failure: &Failure) {
    let kind = match failure.outcome {
        AttemptOutcome::Timeout => "timeout",
        _ => "failed",
    };
    let _ = write!(
        xml,
        "      <{tag} message=\"{}\" type=\"{kind}\"",
        attr(&failure.message)
    );
    if failure.output.is_empty() {
        xml.push_str("/>\n");
    } else {
        let _ = writeln!(
            xml,
            ">\n        <system-out>{}</system-out>\n      </{tag}>",
            text(&failure.output)
        );
    }
}

/// Seconds with milliseconds, as the schema's `SUREFIRE_TIME` wants.
fn seconds(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// `text` as XML character data: markup escaped, and the characters XML
/// 1.0 cannot hold at all (most control characters, which job output may
/// have) replaced.
fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push('\u{fffd}');
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` in a double-quoted attribute.
fn attr(value: &str) -> String {
    text(value)
        .replace('"', "&quot;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::events::Event;

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

    /// ok completes, flaky completes on its second attempt, broken dies.
    pub fn sample() -> RunRecord {
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
    fn junit_marks_flaky_and_dead() {
        let xml = junit(&sample(), "ci");
        assert!(
            xml.contains(r#"<testsuite name="ci" tests="3" skipped="0" errors="0" failures="1""#),
            "{xml}"
        );
        // The schema wants a `type` on a rerun and no `time` (issue 11: the
        // report validates against junit-10.xsd).
        assert!(
            xml.contains(r#"<flakyFailure message="exit code 1" type="failed"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="exit code 3" type="dead">boom"#),
            "{xml}"
        );
    }

    #[test]
    fn escaping_leaves_no_markup_and_no_forbidden_character() {
        assert_eq!(text("<script>&\u{1b}[0m"), "&lt;script&gt;&amp;\u{fffd}[0m");
        assert_eq!(attr("say \"hi\"\nnow"), "say &quot;hi&quot;&#10;now");
    }
}
