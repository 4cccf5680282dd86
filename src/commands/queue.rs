//! `queuectl queue pause|resume|list`: a paused queue keeps its jobs and
//! claims none of them, on every worker and host, until it is resumed;
//! the pause is in the database, so it survives restarts and applies.

use serde::Serialize;

use crate::cli::QueueCommand;
use crate::clock::{now_ms, relative};
use crate::context::Context;
use crate::error::{EXIT_OK, Result};
use crate::job::JobState;
use crate::job::names::validate_queue;
use crate::output::{Painter, YELLOW, cell, print_items, print_out, table};
use crate::view::queue_views;

pub fn run(context: &Context, command: QueueCommand) -> Result<u8> {
    match command {
        QueueCommand::Pause(args) => set(context, &args.queues, true),
        QueueCommand::Resume(args) => set(context, &args.queues, false),
        QueueCommand::List => list(context),
    }
}

#[derive(Debug, Serialize)]
struct Changed<'a> {
    queue: &'a str,
    paused: bool,
    /// False when it already was.
    changed: bool,
}

/// `queue pause|resume NAME…`: every name is checked before anything
/// changes; pausing a paused queue (or resuming a running one) changes
/// nothing and says so.
fn set(context: &Context, queues: &[String], pause: bool) -> Result<u8> {
    for queue in queues {
        validate_queue(queue)?;
    }
    let mut engine = context.engine()?;
    let known: Vec<String> = queue_views(&mut engine)?
        .into_iter()
        .map(|q| q.name)
        .collect();
    let changed = engine.set_paused(queues, pause, now_ms())?;
    let results: Vec<Changed<'_>> = queues
        .iter()
        .zip(changed)
        .map(|(queue, changed)| Changed {
            queue,
            paused: pause,
            changed,
        })
        .collect();
    if context.json {
        print_items(&results, results.len() as u64)?;
        return Ok(EXIT_OK);
    }
    let mut text = String::new();
    for result in &results {
        let queue = result.queue;
        text.push_str(&match (pause, result.changed) {
            (true, true) => format!(
                "paused {queue}: its waiting jobs stay until `queuectl queue resume {queue}`\n"
            ),
            (true, false) => format!("{queue} was paused already\n"),
            (false, true) => format!("resumed {queue}\n"),
            (false, false) => format!("{queue} was not paused\n"),
        });
    }
    if !context.quiet {
        print_out(&text)?;
    }
    for result in results.iter().filter(|r| r.changed && pause) {
        if !known.iter().any(|k| k == result.queue) {
            eprintln!(
                "note: no job and no jobfile names queue `{}` yet; its jobs will wait when they come",
                result.queue
            );
        }
    }
    Ok(EXIT_OK)
}

/// `queue list`: every queue a job, the jobfile or a pause names.
fn list(context: &Context) -> Result<u8> {
    let mut engine = context.engine_read()?;
    let queues = queue_views(&mut engine)?;
    if context.json {
        print_items(&queues, queues.len() as u64)?;
        return Ok(EXIT_OK);
    }
    if queues.is_empty() {
        print_out("no queues\n")?;
        return Ok(EXIT_OK);
    }
    let painter = Painter {
        enabled: context.color,
    };
    let now = now_ms();
    let rows: Vec<_> = queues
        .iter()
        .map(|q| {
            vec![
                cell(q.name.as_str()),
                cell(q.workers.map_or("-".to_string(), |w| w.to_string())),
                cell(q.count(JobState::Processing).to_string()),
                cell(q.waiting().to_string()),
                match q.paused_since {
                    Some(since) => (format!("paused {}", relative(since, now)), YELLOW),
                    None => cell("running"),
                },
            ]
        })
        .collect();
    print_out(&table(
        painter,
        &["QUEUE", "WORKERS", "RUNNING", "WAITING", "STATE"],
        &rows,
    ))?;
    Ok(EXIT_OK)
}
