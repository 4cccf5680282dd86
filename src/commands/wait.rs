//! `queuectl wait ID|NAME`: blocks until the job ends (through its
//! retries) and exits with its outcome, as `pueue wait` and `kubectl wait`
//! do: 0 completed, 1 dead or cancelled, 124 when `--timeout` passed.

use std::time::{Duration, Instant};

use crate::cli::WaitArgs;
use crate::context::Context;
use crate::duration;
use crate::error::{EXIT_JOBS_FAILED, EXIT_OK, EXIT_TIMED_OUT, Error, Result};
use crate::job::JobState;
use crate::output::{print_json, print_out};

/// The longest it goes without looking at the job, whatever the feed says.
const RECHECK: Duration = Duration::from_millis(250);

pub fn run(context: &Context, args: &WaitArgs) -> Result<u8> {
    let timeout = args
        .timeout
        .as_deref()
        .map(|t| duration::parse(t, "--timeout"))
        .transpose()?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut engine = context.engine_read()?;
    let id = engine.resolve_job(&args.id)?;
    // Watch before looking, so an end between the two is not missed.
    let mut feed = engine.change_feed()?;
    loop {
        let job = engine.job(&id).map_err(|_| {
            Error::input(format!(
                "job `{id}` is gone: it was deleted (pruned, or removed from the dead letter queue) while waiting"
            ))
        })?;
        if job.state.is_finished() {
            let code = if job.state == JobState::Completed {
                EXIT_OK
            } else {
                EXIT_JOBS_FAILED
            };
            if context.json {
                print_json(&serde_json::json!({
                    "id": job.id,
                    "state": job.state,
                    "exit_code": job.exit_code,
                    "attempts": job.attempts,
                }))?;
            } else if !context.quiet {
                let exit = job
                    .exit_code
                    .map(|c| format!(" (exit {c})"))
                    .unwrap_or_default();
                print_out(&format!("{} {}{exit}\n", job.id, job.state))?;
            }
            return Ok(code);
        }
        let left = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    if !context.quiet {
                        eprintln!(
                            "job `{}` is still {} after {}",
                            job.id,
                            job.state,
                            args.timeout.as_deref().unwrap_or_default()
                        );
                    }
                    return Ok(EXIT_TIMED_OUT);
                }
                left
            }
            None => RECHECK,
        };
        feed.wait(left.min(RECHECK))?;
    }
}
