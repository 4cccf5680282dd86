//! `queuectl logs ID`: the output of one attempt (stdout and stderr, merged
//! as they were written); `--follow` streams it while the job runs, across
//! retries, and ends when the job ends.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::LogsArgs;
use crate::context::Context;
use crate::error::{EXIT_OK, Error, Result};
use crate::job::JobState;
use crate::output::print_json;
use crate::store::logs_dir;
use crate::worker::log_path;

/// How often `--follow` looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub fn run(context: &Context, args: &LogsArgs) -> Result<u8> {
    let store = context.store_read()?;
    let id = store.resolve_job(&args.id)?;
    let job = store.job(&id)?;
    let dir = logs_dir(&context.db);
    if args.follow {
        return follow(context, args, &id, &dir);
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
    let path = checked_log_path(&dir, &job.id, run)?;
    let output = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("read", path, e)),
    };
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

fn follow(context: &Context, args: &LogsArgs, id: &str, dir: &Path) -> Result<u8> {
    let store = context.store_read()?;
    let mut job = store.job(id)?;
    let mut run = args.attempt.unwrap_or(job.runs.max(1));
    let mut offset = 0u64;
    loop {
        offset = copy_new(&checked_log_path(dir, &job.id, run)?, offset)?;
        job = store.job(id)?;
        if args.attempt.is_none() && job.runs > run {
            copy_new(&checked_log_path(dir, &job.id, run)?, offset)?;
            run = job.runs;
            offset = 0;
            if !context.quiet {
                eprintln!("--- attempt {run} ---");
            }
            continue;
        }
        let run_over = job.runs >= run && !(job.state == JobState::Processing && job.runs == run);
        if run_over && (args.attempt.is_some() || job.state.is_finished()) {
            copy_new(&checked_log_path(dir, &job.id, run)?, offset)?;
            return Ok(EXIT_OK);
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// The log file of an attempt; an id read from the database that is not a
/// valid job id names no file.
fn checked_log_path(dir: &Path, id: &str, run: u32) -> Result<std::path::PathBuf> {
    log_path(dir, id, run).ok_or_else(|| {
        Error::input(format!(
            "invalid job id `{id}` in the database: it names no log file"
        ))
    })
}

/// Prints what `path` gained past `offset`; returns the new offset. A log
/// cut back to its tail (it passed its size limit) is read again from the
/// start.
fn copy_new(path: &Path, offset: u64) -> Result<u64> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("read", path, e))?
        .len();
    let start = if len < offset { 0 } else { offset };
    if len == start {
        return Ok(start);
    }
    let mut buf = Vec::with_capacity((len - start) as usize);
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.take(len - start).read_to_end(&mut buf))
        .map_err(|e| Error::io("read", path, e))?;
    write_stdout(&buf)?;
    Ok(start + buf.len() as u64)
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
