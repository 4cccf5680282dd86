//! `queuectl logs ID`: the output of one attempt (stdout and stderr, merged
//! as they were written); `--follow` streams it while the job runs, across
//! retries, and ends when the job ends.

use std::io::Write;

use crate::cli::LogsArgs;
use crate::context::Context;
use crate::error::{EXIT_OK, Error, Result};
use crate::logs::Follower;
use crate::output::print_json;

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

/// `--follow`: [`crate::logs::follow`] into `out`.
fn follow_into(
    context: &Context,
    args: &LogsArgs,
    id: &str,
    out: &mut impl Follower,
) -> Result<u8> {
    let mut engine = context.engine_read()?;
    crate::logs::follow(&context.logs, &mut engine, id, args.attempt, out)?;
    Ok(EXIT_OK)
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

impl Follower for Plain {
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

impl Follower for JsonLines {
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
