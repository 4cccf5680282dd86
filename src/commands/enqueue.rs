//! `queuectl enqueue`: a shell command, a JSON job, or a file of them (a
//! JSON object, an array, or JSON Lines; `-` is stdin), inserted in one
//! durable transaction: all of them or none.

use std::path::Path;

use serde_json::Value;

use crate::cli::EnqueueArgs;
use crate::clock::{self, now_ms};
use crate::context::Context;
use crate::duration::{self, as_millis_i64};
use crate::error::{EXIT_OK, Error, Result};
use crate::job::input::{
    Defaults, command_job, json_message, looks_like_json, parse_env_pair, parse_source,
    positive_timeout, within_reach,
};
use crate::job::names::validate_queue;
use crate::job::{NewJob, Origin, validate_id};
use crate::jobfile::{Jobfile, did_you_mean, jobfile_commit};
use crate::output::{Painter, cell, print_items, print_out, table, truncate};
use crate::retry::RetryPolicy;
use crate::sys::files::{MAX_JOBS_BYTES, read_regular, read_stdin};

pub fn run(context: &Context, args: EnqueueArgs) -> Result<u8> {
    // `run_at` and `--delay` on the queue's clock (a server's).
    crate::driver::sync_clock(&context.location)?;
    let now = now_ms();
    let mut jobfile = context.jobfile()?;
    let mut defaults = defaults(&args, now)?;
    if let Some(jobfile) = jobfile.as_mut() {
        defaults.retry = jobfile.default_policy();
        if let Some(n) = args.max_retries {
            defaults.retry.max_retries = n;
        }
        if defaults.timeout_ms.is_none() {
            defaults.timeout_ms = jobfile.settings.timeout.map(as_millis_i64);
        }
        if args.job.is_some() {
            // A run of a definition has its spec, inputs included.
            jobfile.read_inputs()?;
        }
    }
    let mut jobs = match (&args.from_file, args.command.as_slice()) {
        _ if args.job.is_some() => vec![definition_job(&args, jobfile.as_ref(), &defaults)?],
        (Some(path), _) => read_source(path, &defaults)?,
        // After `--`: a shell command, whatever it looks like.
        (None, words) if !args.verbatim.is_empty() => {
            let words: Vec<&str> = words
                .iter()
                .chain(&args.verbatim)
                .map(String::as_str)
                .collect();
            vec![command_job(&words.join(" "), &defaults)?]
        }
        (None, []) => {
            return Err(Error::input_with_hint(
                "nothing to enqueue",
                "give a command (`queuectl enqueue 'make test'`), a JSON job, or --file FILE",
            ));
        }
        (None, [first, ..]) if looks_like_json(first) => json_argument(&args.command, &defaults)?,
        (None, [single]) if is_job_file(single) => read_source(Path::new(single), &defaults)?,
        (None, words) => vec![command_job(&words.join(" "), &defaults)?],
    };
    if let Some(id) = &args.id {
        match jobs.as_mut_slice() {
            [job] => {
                validate_id(id)?;
                job.id = id.clone();
            }
            many => {
                return Err(Error::input(format!(
                    "--id names one job, but {} were given",
                    many.len()
                )));
            }
        }
    }
    if args.dry_run {
        return show_dry_run(context, &jobs);
    }
    context.engine()?.enqueue(&jobs)?;
    if context.json {
        let ids: Vec<_> = jobs
            .iter()
            .map(|j| {
                serde_json::json!({
                    "id": j.id,
                    "queue": j.queue,
                    "run_at": crate::clock::rfc3339(j.run_at),
                })
            })
            .collect();
        print_items(&ids, ids.len() as u64)?;
    } else if !context.quiet {
        match jobs.as_slice() {
            [job] => print_out(&format!("enqueued {}\n", job.id))?,
            jobs => print_out(&format!("enqueued {} jobs\n", jobs.len()))?,
        }
    }
    Ok(EXIT_OK)
}

/// `--job NAME`: a run of a jobfile definition, with the flags given
/// overriding it.
fn definition_job(
    args: &EnqueueArgs,
    jobfile: Option<&Jobfile>,
    defaults: &Defaults,
) -> Result<NewJob> {
    let name = args.job.as_deref().unwrap_or_default();
    let jobfile = jobfile.ok_or_else(|| {
        Error::input_with_hint(
            format!("--job `{name}` needs a jobfile, and none was found"),
            "run it where queuectl.toml is, or name one with -f",
        )
    })?;
    let def = jobfile.jobs.get(name).ok_or_else(|| {
        let hint =
            did_you_mean(name, jobfile.jobs.keys().map(String::as_str)).unwrap_or_else(|| {
                format!(
                    "the jobs of {} are listed by `queuectl plan`",
                    jobfile.path.display()
                )
            });
        Error::input_with_hint(
            format!("unknown job `{name}` in {}", jobfile.path.display()),
            hint,
        )
    })?;
    let commit = jobfile_commit(&jobfile.path);
    let mut job = def.new_job(&jobfile.dir, Origin::Cli, commit.as_deref(), defaults.now);
    // A watched or scheduled definition never runs two at once, by hand
    // or not.
    job.exclusive = crate::trigger::exclusive_key(def, None);
    if args.queue.is_some() {
        job.queue = defaults.queue.clone();
    }
    if let Some(priority) = args.priority {
        job.priority = priority;
    }
    if let Some(n) = args.max_retries {
        job.retry.max_retries = n;
    }
    if args.timeout.is_some() {
        job.timeout_ms = defaults.timeout_ms;
    }
    if args.delay.is_some() || args.run_at.is_some() {
        job.run_at = defaults.run_at;
    }
    for (key, value) in &defaults.env {
        job.env.retain(|(k, _)| k != key);
        job.env.push((key.clone(), value.clone()));
    }
    Ok(job)
}

fn defaults(args: &EnqueueArgs, now: i64) -> Result<Defaults> {
    let queue = args.queue.clone().unwrap_or_else(|| "default".into());
    validate_queue(&queue)?;
    let mut retry = RetryPolicy::default();
    if let Some(n) = args.max_retries {
        retry.max_retries = n;
    }
    let timeout_ms = args
        .timeout
        .as_deref()
        .map(|t| duration::parse(t, "--timeout").and_then(positive_timeout))
        .transpose()?;
    let run_at = match (&args.delay, &args.run_at) {
        (Some(delay), _) => now + as_millis_i64(duration::parse(delay, "--delay")?),
        (None, Some(at)) => within_reach(
            clock::parse_time(at).map_err(|e| {
                Error::input_with_hint(
                    e,
                    "write --run-at as `2026-11-22T18:00:00Z` or `2026-11-22 18:00`",
                )
            })?,
            now,
            "--run-at",
        )?,
        (None, None) => now,
    };
    let env = args
        .env
        .iter()
        .map(|pair| parse_env_pair(pair))
        .collect::<Result<_>>()?;
    let cwd =
        std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?;
    Ok(Defaults {
        queue,
        priority: args.priority.unwrap_or(0),
        retry,
        timeout_ms,
        run_at,
        env,
        cwd,
        now,
    })
}

/// The jobs of a JSON argument; one that does not parse is an error that
/// says how to give a shell command instead, not a command that fails
/// later with 127.
fn json_argument(words: &[String], defaults: &Defaults) -> Result<Vec<NewJob>> {
    let text = words.join(" ");
    if let Err(e) = serde_json::from_str::<Value>(&text) {
        return Err(Error::input_with_hint(
            json_message(&e, "the argument"),
            format!(
                "a job is a JSON object like {{\"command\": \"make test\"}}; put `--` before a shell command that starts with `{{` or `[`: queuectl enqueue -- '{text}'"
            ),
        ));
    }
    parse_source(&text, "the argument", defaults)
}

/// A lone argument naming an existing `.json` or `.jsonl` file.
fn is_job_file(arg: &str) -> bool {
    let path = Path::new(arg);
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("json" | "jsonl")
    ) && path.is_file()
}

/// Reads jobs from a file or stdin (`-`): a JSON object, an array of them,
/// or JSON Lines.
fn read_source(path: &Path, defaults: &Defaults) -> Result<Vec<NewJob>> {
    let (name, text) = if path == Path::new("-") {
        ("stdin".to_string(), read_stdin(MAX_JOBS_BYTES)?)
    } else {
        let text = read_regular(path, MAX_JOBS_BYTES, "a file of jobs")?;
        (path.display().to_string(), text)
    };
    parse_source(&text, &name, defaults)
}

fn show_dry_run(context: &Context, jobs: &[NewJob]) -> Result<u8> {
    if context.json {
        print_items(jobs, jobs.len() as u64)?;
        return Ok(EXIT_OK);
    }
    let now = now_ms();
    let rows: Vec<_> = jobs
        .iter()
        .map(|j| {
            vec![
                cell(&j.id),
                cell(&j.queue),
                cell(j.priority.to_string()),
                cell(if j.run_at <= now {
                    "now".to_string()
                } else {
                    clock::local(j.run_at)
                }),
                cell(truncate(&j.command, 60)),
            ]
        })
        .collect();
    let painter = Painter {
        enabled: context.color,
    };
    let mut text = table(painter, &["ID", "QUEUE", "PRI", "RUN AT", "COMMAND"], &rows);
    text.push_str(&format!(
        "dry run: {} job(s) would be enqueued\n",
        jobs.len()
    ));
    print_out(&text)?;
    Ok(EXIT_OK)
}
