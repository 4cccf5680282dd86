//! `queuectl run`: apply the jobfile, run its queues with live progress,
//! follow its edits; with `--until-idle`, the CI step that exits 0 when
//! every job completed and 1 when any is dead.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;

use crate::cli::{ProgressChoice, RunArgs};
use crate::clock::now_ms;
use crate::context::Context;
use crate::duration;
use crate::error::{EXIT_JOBS_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, Error, Result};
use crate::jobfile::jobfile_commit;
use crate::lock::RunLock;
use crate::output::{Painter, print_out};
use crate::progress::{self, Style};
use crate::report::RunRecord;
use crate::runtime::{self, Options, Summary};
use crate::store::JobFilter;

use super::validate_queue;

pub fn run(context: &Context, args: &RunArgs) -> Result<u8> {
    for queue in &args.queues {
        validate_queue(queue)?;
    }
    runtime::check_count(args.workers, "--workers")?;
    let grace = duration::parse(&args.grace, "--grace")?;
    let started_at = now_ms();
    let jobfile = context.jobfile()?;
    runtime::check_pools(&runtime::pools(
        args.workers,
        &args.queues,
        jobfile.as_ref(),
    ))?;
    let mut store = context.store()?;
    let lock = RunLock::acquire(&context.db)?;
    let style = style(context, args.progress);
    let talk = matches!(style, Style::Plain { .. } | Style::Bars { .. });
    match (&jobfile, lock.other) {
        (Some(jobfile), None) => {
            let plan = store.apply(jobfile, jobfile_commit(&jobfile.path).as_deref(), now_ms())?;
            if talk && !plan.is_empty() {
                print_out(&plan.render())?;
            }
        }
        (_, Some(pid)) if talk => eprintln!(
            "another `queuectl run` (pid {pid}) owns this queue: this one runs as extra workers"
        ),
        _ => {}
    }
    drop(store);
    let options = Options {
        db: context.db.clone(),
        count: args.workers,
        queues: args.queues.clone(),
        jobfile,
        follow_jobfile: !args.no_watch,
        apply_edits: lock.owns(),
        until_idle: args.until_idle,
        grace,
        ignore_hangup: false,
    };
    let (summary, mut record) = with_reporter(&options, style)?;
    if let Some(jobfile) = &options.jobfile {
        let store = context.store_read()?;
        for name in jobfile.jobs.keys() {
            let filter = JobFilter {
                definition: Some(name.clone()),
                limit: 1,
                ..JobFilter::default()
            };
            // Only jobs this run touched: enqueued by its apply, or
            // cancelled while it ran; earlier runs' history stays out.
            let latest = store.list(&filter)?.into_iter().next();
            if let Some(job) = latest.filter(|j| j.updated_at >= started_at) {
                record.add_unstarted(&job.id, name, &job.queue, job.state, job.reason);
            }
        }
    }
    if let Some(path) = &args.junit {
        let suite = options
            .jobfile
            .as_ref()
            .and_then(|j| j.path.file_name())
            .map_or("queuectl".into(), |n| n.to_string_lossy().into_owned());
        std::fs::write(path, record.junit(&suite)).map_err(|e| Error::io("write", path, e))?;
    }
    github_step_summary(&record);
    if talk {
        print_out(&record.summary_table(Painter {
            enabled: context.color,
        }))?;
    }
    Ok(exit_code(&summary, options.until_idle))
}

/// Runs the supervisor with a reporter thread; returns both their results.
pub fn with_reporter(options: &Options, style: Style) -> Result<(Summary, RunRecord)> {
    let (sender, receiver) = mpsc::channel();
    let reporter = std::thread::spawn(move || progress::report(receiver, style));
    let result = runtime::supervise(options, &sender);
    drop(sender);
    let record = reporter.join().unwrap_or_default();
    Ok((result?, record))
}

/// 130/143 after a signal; with `--until-idle`, 1 when a job of the run is dead.
pub fn exit_code(summary: &Summary, until_idle: bool) -> u8 {
    match summary.signal {
        Some(signal) if signal == signal_hook::consts::SIGINT => EXIT_SIGINT,
        Some(_) => EXIT_SIGTERM,
        None if summary.dead > 0 && until_idle => EXIT_JOBS_FAILED,
        None => EXIT_OK,
    }
}

/// Bars on a terminal, plain lines elsewhere (and under GitHub Actions,
/// with its workflow commands), JSON with `--json`, nothing with `-q`.
fn style(context: &Context, progress: ProgressChoice) -> Style {
    let painter = Painter {
        enabled: context.color,
    };
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    if context.json {
        return Style::Json;
    }
    if context.quiet {
        return Style::Quiet;
    }
    // The bars are drawn by console: give it the colour decision too.
    console::set_colors_enabled_stderr(context.color);
    let terminal =
        std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
    match progress {
        ProgressChoice::Always => Style::Bars {
            painter,
            force: true,
        },
        ProgressChoice::Auto if terminal && !github => Style::Bars {
            painter,
            force: false,
        },
        _ => Style::Plain { painter, github },
    }
}

/// Appends the run's Markdown summary to `$GITHUB_STEP_SUMMARY`, if set.
fn github_step_summary(record: &RunRecord) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return;
    };
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        let _ = file.write_all(record.markdown().as_bytes());
    }
}
