//! `queuectl dlq`: the dead letter queue, where jobs land when their
//! retries are spent: list, retry, remove, stats.

use crate::cli::DlqCommand;
use crate::clock::{local, now_ms};
use crate::context::Context;
use crate::error::{EXIT_OK, Result};
use crate::output::{Painter, cell, confirm, print_items, print_json, print_out, table};
use crate::view::jobs_table;

pub fn run(context: &Context, command: DlqCommand) -> Result<u8> {
    match command {
        DlqCommand::List(args) => {
            let limit = if args.all { u32::MAX } else { args.limit };
            let mut engine = context.engine_read()?;
            let jobs = engine.dead(limit)?;
            if context.json {
                let total = match jobs.len() < limit as usize {
                    true => jobs.len() as u64,
                    false => engine.count(&crate::driver::JobFilter {
                        state: Some(crate::job::JobState::Dead),
                        ..Default::default()
                    })?,
                };
                print_items(&jobs, total)?;
            } else if jobs.is_empty() {
                if !context.quiet {
                    print_out("the dead letter queue is empty\n")?;
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
        }
        DlqCommand::Retry(args) => {
            let ids = context.engine()?.dlq_retry(
                &resolve(context, &args.ids)?,
                args.keep_attempts,
                now_ms(),
            )?;
            report(context, "retried", &ids)?;
        }
        DlqCommand::Remove(args) => {
            if args.ids.is_empty() && !args.yes {
                let count = context.engine_read()?.dead(u32::MAX)?.len();
                if count == 0 {
                    report(context, "removed", &[])?;
                    return Ok(EXIT_OK);
                }
                confirm(
                    &format!("remove all {count} dead job(s) and their logs?"),
                    "refusing to remove every dead job without confirmation",
                    "pass --yes, or name the jobs to remove",
                )?;
            }
            let removed = context
                .engine()?
                .dlq_remove(&resolve(context, &args.ids)?)?;
            context.logs.remove(&removed);
            let ids: Vec<String> = removed.into_iter().map(|(id, _)| id).collect();
            report(context, "removed", &ids)?;
        }
        DlqCommand::Stats => {
            let stats = context.engine_read()?.dlq_stats()?;
            if context.json {
                print_items(&stats, stats.len() as u64)?;
            } else if stats.is_empty() {
                print_out("the dead letter queue is empty\n")?;
            } else {
                let rows: Vec<_> = stats
                    .iter()
                    .map(|s| {
                        vec![
                            cell(&s.queue),
                            cell(s.exit_code.map_or("-".into(), |c| c.to_string())),
                            cell(s.count.to_string()),
                            cell(s.newest_at.map(local).unwrap_or_default()),
                        ]
                    })
                    .collect();
                let total: u64 = stats.iter().map(|s| s.count).sum();
                let mut text = table(
                    Painter {
                        enabled: context.color,
                    },
                    &["QUEUE", "EXIT", "DEAD", "NEWEST"],
                    &rows,
                );
                text.push_str(&format!("{total} dead job(s)\n"));
                print_out(&text)?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// The ids that arguments name (ids, or definitions' names).
fn resolve(context: &Context, args: &[String]) -> Result<Vec<String>> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let mut engine = context.engine_read()?;
    args.iter().map(|arg| engine.resolve_job(arg)).collect()
}

fn report(context: &Context, verb: &str, ids: &[String]) -> Result<()> {
    if context.json {
        return print_json(&serde_json::json!({ verb: ids }));
    }
    if context.quiet {
        return Ok(());
    }
    let text = match ids {
        [] => "no dead jobs\n".to_string(),
        [id] => format!("{verb} {id}\n"),
        many => format!("{verb} {} jobs\n", many.len()),
    };
    print_out(&text)
}
