//! `queuectl plan` and `queuectl apply`: what the jobfile means for the
//! queue, shown, or done (see [`crate::engine::reconcile`]).

use crate::cli::{ApplyArgs, PlanArgs};
use crate::clock::now_ms;
use crate::context::Context;
use crate::error::{EXIT_JOBS_FAILED, EXIT_OK, Result};
use crate::jobfile::jobfile_commit;
use crate::output::{print_json, print_out};

/// `plan [--exit-code]`: 0 no changes, 1 changes pending (with
/// `--exit-code`), 2 error.
pub fn plan(context: &Context, args: &PlanArgs) -> Result<u8> {
    let mut jobfile = context.require_jobfile()?;
    jobfile.read_inputs()?;
    let plan = context.engine_read()?.plan(&jobfile, args.rerun)?;
    if context.json {
        print_json(&plan)?;
    } else if !context.quiet {
        print_out(&plan.render())?;
    }
    Ok(if args.exit_code && !plan.is_empty() {
        EXIT_JOBS_FAILED
    } else {
        EXIT_OK
    })
}

/// `apply`: makes the queue match the jobfile, in one transaction.
pub fn apply(context: &Context, args: &ApplyArgs) -> Result<u8> {
    let mut jobfile = context.require_jobfile()?;
    jobfile.read_inputs()?;
    let commit = jobfile_commit(&jobfile.path);
    let plan = context
        .engine()?
        .apply(&jobfile, commit.as_deref(), now_ms(), args.rerun)?;
    if context.json {
        print_json(&plan)?;
    } else if !context.quiet {
        print_out(&plan.render())?;
    }
    Ok(EXIT_OK)
}
