//! `queuectl run`: apply the jobfile, run its queues with live progress,
//! follow its edits; with `--until-idle`, the CI step. Its exit code comes
//! from the declared state: 1 when a one-shot job of the jobfile has a
//! latest run that is dead (or was cancelled because a dependency died),
//! even when this run started nothing, or still waits in a paused queue;
//! 2 when there is nothing to run.

use std::io::{IsTerminal, Write};

use crate::cli::{ProgressChoice, RunArgs, SummaryChoice};
use crate::clock::now_ms;
use crate::context::Context;
use crate::duration;
use crate::error::{EXIT_JOBS_FAILED, EXIT_OK, Error, Result};
use crate::job::JobState;
use crate::job::names::validate_queue;
use crate::jobfile::{Jobfile, jobfile_commit};
use crate::output::{Painter, print_out};
use crate::report::github::{self, Annotations};
use crate::report::junit::JunitFile;
use crate::report::lines::{self, Lines, SummaryMode};
use crate::report::{self, Declared, RunRecord, Style};
use crate::runtime::{self, Options, Role};

pub fn run(context: &Context, args: &RunArgs) -> Result<u8> {
    for queue in &args.queues {
        validate_queue(queue)?;
    }
    runtime::check_count(args.workers, "--workers")?;
    let grace = duration::parse(&args.grace, "--grace")?;
    crate::driver::sync_clock(&context.location)?;
    let started_at = now_ms();
    let mut jobfile = context.jobfile()?;
    if let Some(jobfile) = jobfile.as_mut() {
        jobfile.read_inputs()?;
    }
    let pools = runtime::pools(args.workers, &args.queues, jobfile.as_ref());
    runtime::check_pools(&pools)?;
    if args.until_idle && !args.allow_empty {
        nothing_to_run(context, jobfile.as_ref(), &pools)?;
    }
    // Known to be writable before anything runs.
    let junit = args.junit.as_deref().map(JunitFile::create).transpose()?;
    let mut engine = context.engine()?;
    let lock = engine.owner_lock(runtime::owner_ttl(jobfile.as_ref()))?;
    let style = style(context, args.progress, jobfile.as_ref());
    let talk = matches!(style, Style::Plain { .. } | Style::Bars { .. });
    match (&jobfile, lock.holder()) {
        (Some(jobfile), None) => {
            let commit = jobfile_commit(&jobfile.path);
            let plan = engine.apply(jobfile, commit.as_deref(), now_ms(), args.rerun)?;
            if talk && !plan.is_empty() {
                let rendered: Vec<String> = plan.render().lines().map(str::to_string).collect();
                let mut text = lines::plan_lines(&rendered, context.verbose).join("\n");
                text.push('\n');
                print_out(&text)?;
            }
        }
        (jobfile, Some(holder)) if talk => {
            eprintln!(
                "another `queuectl run` ({holder}) owns this queue: this one runs as extra workers"
            );
            // Only the owner applies: a jobfile here that says otherwise
            // is not what the queue runs.
            if let Some(jobfile) = jobfile
                && !engine.plan(jobfile, false)?.is_empty()
            {
                eprintln!(
                    "warning: `{}` differs from the jobfile the owner applied, and only the owner applies; `queuectl plan` shows the difference",
                    jobfile.path.display()
                );
            }
        }
        _ => {}
    }
    drop(engine);
    let options = Options {
        location: context.location.clone(),
        logs: context.logs.clone(),
        role: if lock.holder().is_none() {
            Role::Owner
        } else {
            Role::Extra
        },
        count: args.workers,
        queues: args.queues.clone(),
        jobfile,
        follow_jobfile: !args.no_watch,
        until_idle: args.until_idle,
        grace,
        ignore_hangup: false,
    };
    let (summary, mut record) = report::supervise(&options, Some(lock), style.clone(), started_at)?;
    let declared = declared(context, options.jobfile.as_ref(), started_at)?;
    // A declared job left waiting in a paused queue did not run: not a
    // green CI step.
    let paused = match options.until_idle {
        true => context.engine_read()?.paused_queues()?,
        false => Default::default(),
    };
    let held = |job: &Declared| job.state.is_waiting() && paused.contains_key(&job.queue);
    let failed_before = declared.iter().any(|job| blocks_ci(job) || held(job));
    for job in declared {
        record.add_declared(job);
    }
    if let Some(junit) = junit {
        let suite = options
            .jobfile
            .as_ref()
            .and_then(|j| j.path.file_name())
            .map_or("queuectl".into(), |n| n.to_string_lossy().into_owned());
        junit.write(&record, &suite)?;
    }
    github_step_summary(&record);
    if talk {
        let painter = Painter {
            enabled: context.color,
        };
        let mode = match args.summary {
            SummaryChoice::Failures => SummaryMode::Failures,
            SummaryChoice::All => SummaryMode::All,
        };
        print_out(&lines::summary(&record, painter, mode))?;
    }
    let code = match summary.exit_code(options.until_idle) {
        EXIT_OK if options.until_idle && failed_before => EXIT_JOBS_FAILED,
        code => code,
    };
    if context.json {
        print_out(&format!("{}\n", report::summary_line(&record, code)))?;
    }
    Ok(code)
}

/// `--until-idle` with nothing to run (no job declared, none waiting in
/// the queues this run serves) is a mistake more often than not: a wrong
/// directory, a jobfile not found. Refuses it, changing nothing.
fn nothing_to_run(
    context: &Context,
    jobfile: Option<&Jobfile>,
    pools: &[runtime::Pool],
) -> Result<()> {
    if jobfile.is_some_and(|j| !j.jobs.is_empty()) {
        return Ok(());
    }
    if context
        .engine_read()?
        .has_unfinished(&runtime::served(pools))?
    {
        return Ok(());
    }
    let what = match jobfile {
        Some(jobfile) => format!("`{}` declares no job", jobfile.path.display()),
        None => "no jobfile was found".to_string(),
    };
    Err(Error::input_with_hint(
        format!("nothing to run: {what}, and the queue has no job waiting"),
        "run it where queuectl.toml is (or name one with -f); pass --allow-empty to accept an empty run",
    ))
}

/// The latest run of every one-shot job of the jobfile, as the store has
/// it now.
fn declared(
    context: &Context,
    jobfile: Option<&Jobfile>,
    started_at: i64,
) -> Result<Vec<Declared>> {
    let Some(jobfile) = jobfile else {
        return Ok(Vec::new());
    };
    let mut engine = context.engine_read()?;
    let stored = engine.stored()?;
    let mut declared = Vec::new();
    for def in jobfile.jobs.values().filter(|d| d.is_one_shot()) {
        let Some(latest) = stored.latest.get(&def.name) else {
            continue;
        };
        let row = engine.job(&latest.id).ok();
        let output_tail = row
            .as_ref()
            .filter(|j| j.state == JobState::Dead)
            .map(|j| context.logs.tail(&j.id, j.runs, 20))
            .filter(|tail| !tail.is_empty());
        declared.push(Declared {
            name: def.name.clone(),
            id: latest.id.clone(),
            queue: row.as_ref().map_or(def.queue.clone(), |j| j.queue.clone()),
            state: latest.state,
            attempts: row.as_ref().map_or(0, |j| j.attempts),
            exit_code: row.as_ref().and_then(|j| j.exit_code),
            error: match latest.state {
                JobState::Cancelled => latest.reason.clone(),
                _ => row.as_ref().and_then(|j| j.last_error.clone()),
            },
            output_tail,
            touched: row.as_ref().is_some_and(|j| j.updated_at >= started_at),
        });
    }
    Ok(declared)
}

/// A declared job whose latest run fails a CI step: dead, or cancelled
/// because a dependency died.
fn blocks_ci(job: &Declared) -> bool {
    match job.state {
        JobState::Dead => true,
        JobState::Cancelled => job
            .error
            .as_deref()
            .is_some_and(|r| r.starts_with("dependency ")),
        _ => false,
    }
}

/// Bars on a terminal, plain lines elsewhere (and under GitHub Actions,
/// with its workflow commands), JSON with `--json`, nothing with `-q`.
fn style(context: &Context, progress: ProgressChoice, jobfile: Option<&Jobfile>) -> Style {
    // Lines on stdout, or on stderr above the bars: each stream's colour.
    let lines = |color| Lines {
        painter: Painter { enabled: color },
        verbose: context.verbose,
    };
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    if context.json {
        return Style::Json;
    }
    if context.quiet {
        return Style::Quiet;
    }
    // (console, which draws the bars, was given stderr's colour at start.)
    let terminal =
        std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
    match progress {
        ProgressChoice::Always => Style::Bars {
            lines: lines(context.color_err),
            force: true,
        },
        ProgressChoice::Auto if terminal && !github => Style::Bars {
            lines: lines(context.color_err),
            force: false,
        },
        _ => Style::Plain {
            lines: lines(context.color),
            github: github.then(|| annotations(jobfile)),
        },
    }
}

/// Where GitHub annotations point: the jobfile relative to the workspace
/// (else to the current directory), and each job's line in it.
fn annotations(jobfile: Option<&Jobfile>) -> Annotations {
    let Some(jobfile) = jobfile else {
        return Annotations::default();
    };
    let base = std::env::var_os("GITHUB_WORKSPACE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok());
    let file = base
        .and_then(|base| {
            let base = base.canonicalize().unwrap_or(base);
            let path = jobfile.path.canonicalize().ok()?;
            path.strip_prefix(&base)
                .ok()
                .map(|p| p.display().to_string())
        })
        .unwrap_or_else(|| jobfile.path.display().to_string());
    Annotations {
        file: Some(file),
        lines: jobfile
            .jobs
            .values()
            .map(|d| (d.name.clone(), d.line))
            .collect(),
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
        let _ = file.write_all(github::markdown(record).as_bytes());
    }
}
