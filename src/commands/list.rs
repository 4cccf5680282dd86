//! `queuectl list`: jobs, newest first, filtered by state, queue or definition.

use crate::cli::ListArgs;
use crate::clock::{local, now_ms, relative};
use crate::context::Context;
use crate::error::{EXIT_OK, Result};
use crate::job::{Job, JobState};
use crate::output::{Cell, Painter, cell, print_json, print_out, state_style, table, truncate};
use crate::store::JobFilter;

pub fn run(context: &Context, args: &ListArgs) -> Result<u8> {
    if args.scheduled {
        let views = super::status::schedules(context, &context.store_read()?)?;
        if context.json {
            print_json(&views)?;
        } else if views.is_empty() {
            print_out("no schedules\n")?;
        } else {
            print_out(&super::status::render_schedules(&views, now_ms()))?;
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
    let jobs = context.store_read()?.list(&filter)?;
    if context.json {
        print_json(&jobs)?;
    } else if jobs.is_empty() {
        if !context.quiet {
            print_out("no jobs\n")?;
        }
    } else {
        print_out(&jobs_table(context, &jobs))?;
    }
    Ok(EXIT_OK)
}

/// The table `list` and `dlq list` print; with `-v`, where each job came
/// from, when it was made, and its whole command.
pub fn jobs_table(context: &Context, jobs: &[Job]) -> String {
    let now = now_ms();
    let rows: Vec<Vec<Cell>> = jobs
        .iter()
        .map(|job| {
            let when = match job.state {
                JobState::Pending | JobState::Failed if job.run_at > now => {
                    format!("runs {}", relative(job.run_at, now))
                }
                _ => relative(job.updated_at, now),
            };
            let mut row = vec![
                cell(&job.id),
                cell(job.definition.as_deref().unwrap_or("-")),
                (job.state.to_string(), state_style(job.state)),
                cell(&job.queue),
                cell(job.priority.to_string()),
                cell(format!("{}/{}", job.attempts, job.retry.max_attempts())),
                cell(
                    job.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                ),
                cell(when),
            ];
            if context.verbose {
                row.push(cell(job.origin.as_str()));
                row.push(cell(local(job.created_at)));
                row.push(cell(job.command.replace('\n', " ")));
            } else {
                row.push(cell(truncate(&job.command, 50)));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "ID", "NAME", "STATE", "QUEUE", "PRI", "ATTEMPTS", "EXIT", "UPDATED",
    ];
    if context.verbose {
        headers.extend(["ORIGIN", "CREATED"]);
    }
    headers.push("COMMAND");
    table(
        Painter {
            enabled: context.color,
        },
        &headers,
        &rows,
    )
}
