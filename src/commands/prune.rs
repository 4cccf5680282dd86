//! `queuectl prune`: deletes finished jobs (and their logs) older than a
//! duration: by default completed and cancelled ones older than 7 days.

use crate::cli::PruneArgs;
use crate::clock::now_ms;
use crate::context::Context;
use crate::duration::{self, as_millis_i64};
use crate::error::{EXIT_OK, Error, Result};
use crate::job::JobState;
use crate::output::{print_json, print_out};

pub fn run(context: &Context, args: &PruneArgs) -> Result<u8> {
    let age = duration::parse(&args.older_than, "--older-than")?;
    let states = match args
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()?
    {
        Some(state) if state.is_finished() => vec![state],
        Some(state) => {
            return Err(Error::input_with_hint(
                format!("cannot prune {state} jobs: they have not finished"),
                "prune takes completed, cancelled or dead; `queuectl cancel` stops a job",
            ));
        }
        None => vec![JobState::Completed, JobState::Cancelled],
    };
    let before = now_ms() - as_millis_i64(age);
    let removed = context.engine()?.prune(&states, before)?;
    context.logs.remove(&removed);
    if context.json {
        let ids: Vec<_> = removed.iter().map(|(id, _)| id).collect();
        print_json(&serde_json::json!({ "pruned": ids }))?;
    } else if !context.quiet {
        print_out(&format!("pruned {} job(s)\n", removed.len()))?;
    }
    Ok(EXIT_OK)
}
