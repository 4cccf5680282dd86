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
        && let Some(output) = engine.output(id, run)?
    {
        let mut bytes = match output.dropped() {
            0 => Vec::new(),
            dropped => crate::logs::dropped_note(dropped).into_bytes(),
        };
        bytes.extend_from_slice(&output.bytes);
        return Ok(bytes);
    }
    context.logs.read(id, run)
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
    let mut engine = context.engine_read()?;
    let mut job = engine.job(id)?;
    let mut run = args.attempt.unwrap_or(job.runs.max(1));
    let mut shown = 0u64;
    let mut out = std::io::stdout();
    loop {
        shown = show_new(context, &mut engine, &job.id, run, shown, &mut out)?;
        job = engine.job(id)?;
        if args.attempt.is_none() && job.runs > run {
            show_new(context, &mut engine, &job.id, run, shown, &mut out)?;
            run = job.runs;
            shown = 0;
            if !context.quiet {
                eprintln!("--- attempt {run} ---");
            }
            continue;
        }
        let run_over = job.runs >= run && !(job.state == JobState::Processing && job.runs == run);
        if run_over && (args.attempt.is_some() || job.state.is_finished()) {
            show_new(context, &mut engine, &job.id, run, shown, &mut out)?;
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
