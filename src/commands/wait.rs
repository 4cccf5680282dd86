//! `queuectl wait ID|NAME…`: blocks until the jobs end (through their
//! retries) and exits with their outcome, as `pueue wait` and `kubectl
//! wait` do: 0 when all completed, 1 when one ended dead or cancelled, 124
//! when `--timeout` passed first.

use std::time::{Duration, Instant};

use crate::cli::WaitArgs;
use crate::context::Context;
use crate::duration;
use crate::error::{EXIT_JOBS_FAILED, EXIT_OK, EXIT_TIMED_OUT, Error, Result};
use crate::job::{Job, JobState};
use crate::output::{print_items, print_out};

/// The longest it goes without looking at the jobs, whatever the feed says.
const RECHECK: Duration = Duration::from_millis(250);

pub fn run(context: &Context, args: &WaitArgs) -> Result<u8> {
    let timeout = args
        .timeout
        .as_deref()
        .map(|t| duration::parse(t, "--timeout"))
        .transpose()?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut engine = context.engine_read()?;
    let ids = args
        .ids
        .iter()
        .map(|arg| engine.resolve_job(arg))
        .collect::<Result<Vec<_>>>()?;
    // Watch before looking, so an end between the two is not missed.
    let mut feed = engine.change_feed()?;
    loop {
        let jobs = ids
            .iter()
            .map(|id| {
                engine.job(id).map_err(|_| {
                    Error::input(format!(
                        "job `{id}` is gone: it was deleted (pruned, or removed from the dead letter queue) while waiting"
                    ))
                })
            })
            .collect::<Result<Vec<Job>>>()?;
        if let Some(open) = jobs.iter().find(|j| !j.state.is_finished()) {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                if !context.quiet {
                    eprintln!(
                        "job `{}` is still {} after {}",
                        open.id,
                        open.state,
                        args.timeout.as_deref().unwrap_or_default()
                    );
                }
                return Ok(EXIT_TIMED_OUT);
            }
            feed.wait(left.unwrap_or(RECHECK).min(RECHECK))?;
            continue;
        }
        if context.json {
            let shown: Vec<_> = jobs
                .iter()
                .map(|job| {
                    serde_json::json!({
                        "id": job.id,
                        "state": job.state,
                        "exit_code": job.exit_code,
                        "attempts": job.attempts,
                    })
                })
                .collect();
            print_items(&shown, shown.len() as u64)?;
        } else if !context.quiet {
            let lines: String = jobs
                .iter()
                .map(|job| {
                    let exit = job
                        .exit_code
                        .map(|c| format!(" (exit {c})"))
                        .unwrap_or_default();
                    format!("{} {}{exit}\n", job.id, job.state)
                })
                .collect();
            print_out(&lines)?;
        }
        return Ok(if jobs.iter().all(|j| j.state == JobState::Completed) {
            EXIT_OK
        } else {
            EXIT_JOBS_FAILED
        });
    }
}
