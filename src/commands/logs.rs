//! `queuectl logs ID`: the output of one attempt (stdout and stderr, merged
//! as they were written); `--follow` streams it while the job runs, across
//! retries, and ends when the job ends.

use std::io::Write;
use std::time::Duration;

use crate::cli::LogsArgs;
use crate::context::Context;
use crate::error::{EXIT_OK, Error, Result};
use crate::job::JobState;
use crate::logs::copy_new;
use crate::output::print_json;

/// How often `--follow` looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub fn run(context: &Context, args: &LogsArgs) -> Result<u8> {
    let mut engine = context.engine_read()?;
    let id = engine.resolve_job(&args.id)?;
    let job = engine.job(&id)?;
    if args.follow {
        return follow(context, args, &id);
    }
    if job.runs == 0 {
        if !context.quiet {
            eprintln!("job `{}` has not run yet", job.id);
        }
        return Ok(EXIT_OK);
    }
    let run = args.attempt.unwrap_or(job.runs);
    if run == 0 || run > job.runs {
        return Err(Error::input_with_hint(
            format!("job `{}` has no attempt {run}", job.id),
            format!(
                "it has run {} time(s): use --attempt 1 to {}",
                job.runs, job.runs
            ),
        ));
    }
    let output = read_output(context, &mut engine, &job.id, run)?;
    if context.json {
        print_json(&serde_json::json!({
            "id": job.id,
            "attempt": run,
            "output": String::from_utf8_lossy(&output),
        }))?;
    } else {
        write_stdout(&output)?;
    }
    Ok(EXIT_OK)
}

/// An attempt's output (see [`crate::logs::read_output`]).
fn read_output(
    context: &Context,
    engine: &mut crate::engine::Engine,
    id: &str,
    run: u32,
) -> Result<Vec<u8>> {
    crate::logs::read_output(&context.logs, engine, id, run)
}

/// Shows what is new of a followed attempt's output, past the `shown`
/// bytes already shown: from this host's log while it has one, else from
/// the database, which keeps the output of an attempt running on another
/// host as it goes. Returns how much is shown now.
fn show_new(
    context: &Context,
    engine: &mut crate::engine::Engine,
    id: &str,
    run: u32,
    shown: u64,
    out: &mut impl Write,
) -> Result<u64> {
    let path = context.logs.checked_path(id, run)?;
    if path.exists() || !engine.keeps_output() {
        return copy_new(&path, shown, out);
    }
    let Some(output) = engine.output(id, run)? else {
        return Ok(shown);
    };
    let (missed, unseen) = output.unseen(shown);
    let note = if missed > 0 {
        crate::logs::dropped_note(missed)
    } else {
        String::new()
    };
    if !unseen.is_empty() || !note.is_empty() {
        out.write_all(note.as_bytes())
            .and_then(|()| out.write_all(unseen))
            .and_then(|()| out.flush())
            .map_err(|e| Error::Internal(format!("cannot write to stdout: {e}")))?;
    }
    Ok(shown.max(output.produced))
}

fn follow(context: &Context, args: &LogsArgs, id: &str) -> Result<u8> {
    if context.json {
        let mut out = JsonLines {
            id: id.to_string(),
            attempt: 0,
            partial: Vec::new(),
        };
        return follow_into(context, args, id, &mut out);
    }
    let mut out = Plain {
        out: std::io::stdout(),
        quiet: context.quiet,
    };
    follow_into(context, args, id, &mut out)
}

/// Where `--follow` writes: the output as it is, or JSON Lines.
trait Sink: Write {
    /// The attempt whose output comes next.
    fn attempt(&mut self, run: u32, first: bool) -> Result<()>;
    /// The job ended.
    fn end(&mut self, job: &crate::job::Job) -> Result<()>;
}

fn follow_into(context: &Context, args: &LogsArgs, id: &str, out: &mut impl Sink) -> Result<u8> {
    let mut engine = context.engine_read()?;
    let mut job = engine.job(id)?;
    let mut run = args.attempt.unwrap_or(job.runs.max(1));
    let mut shown = 0u64;
    out.attempt(run, true)?;
    loop {
        shown = show_new(context, &mut engine, &job.id, run, shown, out)?;
        job = engine.job(id)?;
        if args.attempt.is_none() && job.runs > run {
            show_new(context, &mut engine, &job.id, run, shown, out)?;
            run = job.runs;
            shown = 0;
            out.attempt(run, false)?;
            continue;
        }
        let run_over = job.runs >= run && !(job.state == JobState::Processing && job.runs == run);
        if run_over && (args.attempt.is_some() || job.state.is_finished()) {
            show_new(context, &mut engine, &job.id, run, shown, out)?;
            out.end(&job)?;
            return Ok(EXIT_OK);
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// The output as the job wrote it; a line on stderr between attempts.
struct Plain {
    out: std::io::Stdout,
    quiet: bool,
}

impl Write for Plain {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.out.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Sink for Plain {
    fn attempt(&mut self, run: u32, first: bool) -> Result<()> {
        if !first && !self.quiet {
            eprintln!("--- attempt {run} ---");
        }
        Ok(())
    }

    fn end(&mut self, _job: &crate::job::Job) -> Result<()> {
        Ok(())
    }
}

/// `logs --follow --json`: JSON Lines, one object a line of output
/// (`{"event": "output", "id", "attempt", "timestamp", "line"}`, the line
/// without its newline, invalid UTF-8 replaced) and a last one when the
/// job ends (`{"event": "end", "id", "state", "exit_code", "attempts",
/// "timestamp"}`).
struct JsonLines {
    id: String,
    attempt: u32,
    /// The start of a line whose end has not come yet.
    partial: Vec<u8>,
}

impl JsonLines {
    fn emit(&self, value: serde_json::Value) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{value}").and_then(|()| out.flush())
    }

    fn line(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.emit(serde_json::json!({
            "event": "output",
            "id": self.id,
            "attempt": self.attempt,
            "timestamp": crate::clock::rfc3339(crate::clock::now_ms()),
            "line": String::from_utf8_lossy(bytes),
        }))
    }

    /// Ends the attempt's last line if it had no newline.
    fn close_line(&mut self) -> Result<()> {
        if !self.partial.is_empty() {
            let partial = std::mem::take(&mut self.partial);
            self.line(&partial).map_err(stdout_error)?;
        }
        Ok(())
    }
}

impl Write for JsonLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let rest = self.partial.split_off(end + 1);
            let line = std::mem::replace(&mut self.partial, rest);
            self.line(&line[..end])?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink for JsonLines {
    fn attempt(&mut self, run: u32, _first: bool) -> Result<()> {
        self.close_line()?;
        self.attempt = run;
        Ok(())
    }

    fn end(&mut self, job: &crate::job::Job) -> Result<()> {
        self.close_line()?;
        self.emit(serde_json::json!({
            "event": "end",
            "id": job.id,
            "state": job.state,
            "exit_code": job.exit_code,
            "attempts": job.attempts,
            "timestamp": crate::clock::rfc3339(crate::clock::now_ms()),
        }))
        .map_err(stdout_error)
    }
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::Internal(format!("cannot write to stdout: {e}"))
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Internal(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
