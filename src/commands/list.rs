//! `queuectl list`: jobs, newest first, filtered by state, queue or definition.

use crate::cli::ListArgs;
use crate::clock::now_ms;
use crate::context::Context;
use crate::driver::JobFilter;
use crate::error::{EXIT_OK, Result};
use crate::job::JobState;
use crate::output::{Painter, print_items, print_out};
use crate::view::{jobs_table, render_schedules, schedules};

pub fn run(context: &Context, args: &ListArgs) -> Result<u8> {
    if args.scheduled {
        let jobfile = context.jobfile().ok().flatten();
        let views = schedules(jobfile.as_ref(), &mut context.engine_read()?)?;
        if context.json {
            print_items(&views, views.len() as u64)?;
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
        limit: if args.all { u32::MAX } else { args.limit },
        ..JobFilter::default()
    };
    let mut engine = context.engine_read()?;
    let jobs = engine.list(&filter)?;
    if context.json {
        let total = match jobs.len() < filter.limit as usize {
            true => jobs.len() as u64,
            false => engine.count(&filter)?,
        };
        print_items(&jobs, total)?;
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
