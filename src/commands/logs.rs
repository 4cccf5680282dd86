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

/// An attempt's output: from the database where it keeps output (any
/// host's attempts), else, or while it runs here, from the logs directory.
fn read_output(
    context: &Context,
    engine: &mut crate::engine::Engine,
    id: &str,
    run: u32,
) -> Result<Vec<u8>> {
    if engine.keeps_output()
        && let Some(bytes) = engine.output(id, run)?
    {
        return Ok(bytes);
    }
    context.logs.read(id, run)
}

/// The end of a followed attempt that ran on another host: its output as
/// the database kept it, past what was already printed.
fn finish_from_database(
    context: &Context,
    engine: &mut crate::engine::Engine,
    id: &str,
    run: u32,
    offset: u64,
    out: &mut impl Write,
) -> Result<()> {
    if offset > 0 || context.logs.checked_path(id, run)?.exists() || !engine.keeps_output() {
        return Ok(());
    }
    if let Some(bytes) = engine.output(id, run)? {
        out.write_all(&bytes)
            .and_then(|()| out.flush())
            .map_err(|e| Error::Internal(format!("cannot write to stdout: {e}")))?;
    }
    Ok(())
}

fn follow(context: &Context, args: &LogsArgs, id: &str) -> Result<u8> {
    let mut engine = context.engine_read()?;
    let mut job = engine.job(id)?;
    let mut run = args.attempt.unwrap_or(job.runs.max(1));
    let mut offset = 0u64;
    let mut out = std::io::stdout();
    loop {
        offset = copy_new(&context.logs.checked_path(&job.id, run)?, offset, &mut out)?;
        job = engine.job(id)?;
        if args.attempt.is_none() && job.runs > run {
            copy_new(&context.logs.checked_path(&job.id, run)?, offset, &mut out)?;
            finish_from_database(context, &mut engine, &job.id, run, offset, &mut out)?;
            run = job.runs;
            offset = 0;
            if !context.quiet {
                eprintln!("--- attempt {run} ---");
            }
            continue;
        }
        let run_over = job.runs >= run && !(job.state == JobState::Processing && job.runs == run);
        if run_over && (args.attempt.is_some() || job.state.is_finished()) {
            let offset = copy_new(&context.logs.checked_path(&job.id, run)?, offset, &mut out)?;
            finish_from_database(context, &mut engine, &job.id, run, offset, &mut out)?;
            return Ok(EXIT_OK);
        }
        std::thread::sleep(FOLLOW_POLL);
    }
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
