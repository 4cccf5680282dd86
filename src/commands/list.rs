//! `queuectl list`: jobs, newest first, filtered by state, queue or definition.

use crate::cli::ListArgs;
use crate::clock::now_ms;
use crate::context::Context;
use crate::driver::JobFilter;
use crate::error::{EXIT_OK, Result};
use crate::job::JobState;
use crate::output::{Painter, print_json, print_out};
use crate::view::{jobs_table, render_schedules, schedules};

pub fn run(context: &Context, args: &ListArgs) -> Result<u8> {
    if args.scheduled {
        let jobfile = context.jobfile().ok().flatten();
        let views = schedules(jobfile.as_ref(), &mut context.engine_read()?)?;
        if context.json {
            print_json(&views)?;
        } else if views.is_empty() {
            print_out("no schedules\n")?;
        } else {
            print_out(&render_schedules(&views, now_ms()))?;
        }
        return Ok(EXIT_OK);
    }
    let filter = JobFilter {
        state: args
            .state
            .as_deref()
            .map(str::parse::<JobState>)
            .transpose()?,
        queue: args.queue.clone(),
        definition: args.job.clone(),
        limit: args.limit,
    };
    let jobs = context.engine_read()?.list(&filter)?;
    if context.json {
        print_json(&jobs)?;
    } else if jobs.is_empty() {
        if !context.quiet {
            print_out("no jobs\n")?;
        }
    } else {
        print_out(&jobs_table(
            &jobs,
            Painter {
                enabled: context.color,
            },
            context.verbose,
        ))?;
    }
    Ok(EXIT_OK)
}
