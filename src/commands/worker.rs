//! `queuectl worker start|stop|status`: worker processes, registered in the
//! database with pid and heartbeat. `start` runs a pool in the foreground
//! or starts one in the background; `stop` asks every worker to drain (or,
//! with --force, to stop now) and waits for them to exit.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{WorkerCommand, WorkerStartArgs, WorkerStopArgs};
use crate::clock::{now_ms, relative};
use crate::context::Context;
use crate::driver::{StopMode, WorkerInfo};
use crate::duration;
use crate::engine::Engine;
use crate::error::{EXIT_OK, Error, Result};
use crate::exec::KILL_GRACE;
use crate::job::names::validate_queue;
use crate::output::{Painter, cell, print_items, print_json, print_out, table};
use crate::report::Style;
use crate::report::lines::{Lines, SummaryMode, summary as summary_text};
use crate::runtime::{self, Options, Role, pools};
use crate::sys::host;
use crate::view::{job_label, worker_views};

/// How long `worker start` waits for the background worker to register.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(context: &Context, command: WorkerCommand) -> Result<u8> {
    match command {
        WorkerCommand::Start(args) if args.foreground || args.until_idle || args.detached => {
            foreground(context, &args)
        }
        WorkerCommand::Start(args) => background(context, &args),
        WorkerCommand::Stop(args) => stop(context, &args),
        WorkerCommand::Status => status(context),
    }
}

fn options(context: &Context, args: &WorkerStartArgs) -> Result<Options> {
    for queue in &args.queues {
        validate_queue(queue)?;
    }
    runtime::check_count(args.count, "--count")?;
    let jobfile = context.jobfile()?;
    runtime::check_pools(&pools(args.count, &args.queues, jobfile.as_ref()))?;
    Ok(Options {
        location: context.location.clone(),
        logs: context.logs.clone(),
        role: Role::Worker,
        count: args.count,
        queues: args.queues.clone(),
        jobfile,
        follow_jobfile: false,
        until_idle: args.until_idle,
        grace: duration::parse(&args.grace, "--grace")?,
        ignore_hangup: args.detached,
    })
}

/// Runs the pool here, printing its events, until it is stopped.
fn foreground(context: &Context, args: &WorkerStartArgs) -> Result<u8> {
    let options = options(context, args)?;
    let painter = Painter {
        enabled: context.color,
    };
    let style = match (context.json, context.quiet) {
        (true, _) => Style::Json,
        (_, true) => Style::Quiet,
        _ => Style::Plain {
            lines: Lines {
                painter,
                verbose: context.verbose,
            },
            github: None,
        },
    };
    let plain = matches!(style, Style::Plain { .. });
    let (summary, record) = crate::report::supervise(&options, None, style, now_ms())?;
    if options.until_idle && plain {
        print_out(&summary_text(&record, painter, SummaryMode::Failures))?;
    }
    let code = summary.exit_code(options.until_idle);
    if context.json {
        print_out(&format!("{}\n", crate::report::summary_line(&record, code)))?;
    }
    Ok(code)
}

/// Starts `queuectl worker start --detached` in the background, its output
/// appended to `worker.log` beside the database, and waits until it has
/// registered.
fn background(context: &Context, args: &WorkerStartArgs) -> Result<u8> {
    let options = options(context, args)?;
    let slots: u32 = pools(options.count, &options.queues, options.jobfile.as_ref())
        .iter()
        .map(|p| p.slots)
        .sum();
    // Opening the store first creates the directory (0700) and migrates.
    let mut store = context.engine()?;
    let log = context.state_dir.join("worker.log");
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log)
        .map_err(|e| Error::io("open", &log, e))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| Error::io("open", &log, e))?;
    let exe = std::env::current_exe().map_err(|e| Error::io("find", "the queuectl binary", e))?;
    let mut command = Command::new(exe);
    command
        .args(["worker", "start", "--detached", "--color", "never"])
        .arg("--grace")
        .arg(&args.grace)
        // The queue by the environment, not argv: a URL's password must
        // not show in `ps`.
        .env("QUEUECTL_DB", options.location.as_arg())
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .process_group(0);
    if let Some(count) = args.count {
        command.arg("--count").arg(count.to_string());
    }
    for queue in &args.queues {
        command.arg("--queue").arg(queue);
    }
    if let Some(jobfile) = &context.jobfile {
        command.env("QUEUECTL_FILE", jobfile);
    }
    let mut child = command
        .spawn()
        .map_err(|e| Error::Internal(format!("cannot start a background worker: {e}")))?;
    let pid = child.id();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if store.workers()?.iter().any(|w| w.pid == pid) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Internal(format!(
                "the background worker exited at once ({status}); see `{}`",
                log.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(Error::Internal(format!(
                "the background worker (pid {pid}) did not register within {}s; see `{}`",
                START_TIMEOUT.as_secs(),
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if context.json {
        print_json(&serde_json::json!({"pid": pid, "slots": slots, "log": log}))?;
    } else if !context.quiet {
        print_out(&format!(
            "started worker pid {pid} with {slots} slot(s); its log: {}\n",
            log.display()
        ))?;
    }
    Ok(EXIT_OK)
}

/// Asks every worker to stop and waits until they have.
fn stop(context: &Context, args: &WorkerStopArgs) -> Result<u8> {
    let timeout = duration::parse(&args.timeout, "--timeout")?;
    let mut store = context.engine()?;
    let mode = if args.force {
        StopMode::Force
    } else {
        StopMode::Drain
    };
    let asked = store.request_stop(mode)?;
    let (workers, running) = (asked.workers, asked.running);
    if workers.is_empty() {
        if !context.quiet {
            eprintln!("no workers are running");
        }
        return Ok(EXIT_OK);
    }
    let view = host::process_view();
    let mut left = wait_for_exit(
        &mut store,
        &workers,
        view.as_deref(),
        Instant::now() + timeout,
    )?;
    if !left.is_empty() && !args.force {
        // The grace is over: stop the running jobs and return them.
        store.request_stop(StopMode::Force)?;
        left = wait_for_exit(
            &mut store,
            &left,
            view.as_deref(),
            Instant::now() + KILL_GRACE * 3,
        )?;
    }
    for worker in left.iter().filter(|w| sees(view.as_deref(), w)) {
        if let Some(pid) = i32::try_from(worker.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    // Jobs of workers that were killed, or had died before, go back now.
    runtime::rescue_gone_workers(&mut store)?;
    // The jobs that were running and did not finish: stopped, and back in
    // the queue.
    let mut interrupted = Vec::new();
    for (id, definition) in running {
        if store.job(&id).is_ok_and(|j| j.state.is_waiting()) {
            interrupted.push((id, definition));
        }
    }
    if context.json {
        let pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
        print_json(&serde_json::json!({
            "stopped": pids,
            "killed": left.iter().map(|w| w.pid).collect::<Vec<_>>(),
            "interrupted": interrupted.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        }))?;
    } else if !context.quiet {
        let mut text = format!("stopped {} worker(s)\n", workers.len());
        if !left.is_empty() {
            text.push_str(&format!(
                "killed {} that did not stop in time\n",
                left.len()
            ));
        }
        for (id, definition) in &interrupted {
            let job = match definition {
                Some(name) => format!("{name} ({id})"),
                None => id.clone(),
            };
            text.push_str(&format!("interrupted and returned to the queue: {job}\n"));
        }
        print_out(&text)?;
    }
    Ok(EXIT_OK)
}

/// Waits until each of `workers` has deregistered or its process is gone;
/// returns those still there at `deadline`.
fn wait_for_exit(
    store: &mut Engine,
    workers: &[WorkerInfo],
    view: Option<&str>,
    deadline: Instant,
) -> Result<Vec<WorkerInfo>> {
    loop {
        let registered = store.workers()?;
        let left: Vec<WorkerInfo> = workers
            .iter()
            .filter(|w| registered.iter().any(|r| r.id == w.id))
            .filter(|w| !sees(view, w) || host::pid_alive(w.pid))
            .cloned()
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether this process sees the processes of `worker` (its pid means
/// something here).
fn sees(view: Option<&str>, worker: &WorkerInfo) -> bool {
    view.is_some() && worker.process_view.as_deref() == view
}

fn status(context: &Context) -> Result<u8> {
    let now = now_ms();
    let workers = worker_views(&mut context.engine_read()?, now)?;
    if context.json {
        return print_items(&workers, workers.len() as u64).map(|()| EXIT_OK);
    }
    if workers.is_empty() {
        print_out("no workers are running\n")?;
        return Ok(EXIT_OK);
    }
    let rows: Vec<_> = workers
        .iter()
        .map(|w| {
            let jobs: Vec<String> = w.jobs.iter().map(job_label).collect();
            vec![
                cell(w.pid.to_string()),
                cell(&w.host),
                cell(format!("{}/{}", w.busy, w.slots)),
                cell(w.pools_text()),
                cell(w.state),
                cell(relative(w.started_at, now)),
                cell(relative(w.heartbeat_at, now)),
                cell(if jobs.is_empty() {
                    "-".to_string()
                } else {
                    jobs.join(", ")
                }),
            ]
        })
        .collect();
    print_out(&table(
        Painter {
            enabled: context.color,
        },
        &[
            "PID",
            "HOST",
            "BUSY",
            "QUEUES",
            "STATE",
            "STARTED",
            "HEARTBEAT",
            "RUNNING",
        ],
        &rows,
    ))?;
    Ok(EXIT_OK)
}
