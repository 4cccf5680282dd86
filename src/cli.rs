//! The command line, as clap sees it: flags, their help text and
//! examples, and where shell completion finds their values. Values are
//! turned into domain types by the commands that use them.
//!
//! [`command`] is the one clap definition every consumer uses (parsing,
//! completion, the man page); [`parse`] turns arguments into a [`Cli`],
//! with queuectl's own errors for `-f` after the command and for global
//! flags given to a command they do nothing for.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter};

use crate::commands::completions as complete;

/// A declarative job runner: shell jobs in a persistent SQLite queue, run by
/// a pool of workers with retries, backoff and a dead letter queue.
#[derive(Debug, Parser)]
#[command(name = "queuectl", version = env!("QUEUECTL_VERSION"), about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes (`-f` only before the command), shown
/// under their own heading in every command's help.
#[derive(Debug, Args)]
#[command(next_help_heading = GLOBAL_OPTIONS)]
pub struct GlobalArgs {
    /// The jobfile (default: the nearest queuectl.toml in this directory or
    /// above); give it before the subcommand: `queuectl -f ci.toml status`
    #[arg(short = 'f', long = "file", env = "QUEUECTL_FILE", value_name = "PATH")]
    pub jobfile: Option<PathBuf>,
    /// The queue: a SQLite file (default: .queuectl/queue.db beside the
    /// jobfile, or here) or a postgres:// URL
    #[arg(
        long,
        global = true,
        env = "QUEUECTL_DB",
        value_name = "PATH|URL",
        hide_env_values = true
    )]
    pub db: Option<PathBuf>,
    /// Machine-readable JSON output
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to use colour, per stream (NO_COLOR, CLICOLOR_FORCE, CLICOLOR
    /// and TERM=dumb are honoured)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter queuectl.toml
    Init(InitArgs),
    /// Check the jobfile; every problem with file:line:col
    Validate,
    /// Show what `apply` would change, change nothing
    Plan(PlanArgs),
    /// Make the queue match the jobfile
    Apply(ApplyArgs),
    /// Print the jobfile's JSON Schema
    Schema,
    /// Read and edit the jobfile's settings, comments kept
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply the jobfile and run the queue with live progress; follows edits
    Run(RunArgs),
    /// Add jobs: a command, a JSON job, or a JSON / JSON Lines file
    Enqueue(EnqueueArgs),
    /// Counts by state and queue, and the live workers
    Status(StatusArgs),
    /// List jobs, newest first
    List(ListArgs),
    /// One job: its settings, provenance and attempts
    Show(IdArg),
    /// The output of a job's attempt
    Logs(LogsArgs),
    /// Wait until jobs end: exit 0 when all completed, 1 when one died or was cancelled
    Wait(WaitArgs),
    /// Cancel a pending job, or stop a running one
    Cancel(CancelArgs),
    /// The dead letter queue
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Delete finished jobs and their logs
    Prune(PruneArgs),
    /// Background workers
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Pause, resume and list queues
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The web dashboard over the same queue, served by queuectl itself
    Ui(UiArgs),
    /// Print the script that hooks queuectl's completions into a shell
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write a page per command into a directory
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run N jobs at once from every queue (default: each queue's declared workers)
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// Only run jobs of this queue (repeatable)
    #[arg(long = "queue", value_name = "Q", add = ArgValueCandidates::new(complete::queues))]
    pub queues: Vec<String>,
    /// Exit once nothing is pending, running or waiting to retry: 0 if every
    /// job completed, 1 if any is dead
    #[arg(long)]
    pub until_idle: bool,
    /// Do not watch files (neither the jobfile nor watch triggers)
    #[arg(long)]
    pub no_watch: bool,
    /// Write a JUnit XML report of the run's jobs to FILE
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run every one-shot job of the jobfile again, whatever changed
    #[arg(long)]
    pub rerun: bool,
    /// With --until-idle: exit 0 when there is nothing to run, not 2
    #[arg(long)]
    pub allow_empty: bool,
    /// What the end of the run lists: the jobs that failed, were flaky or
    /// were cancelled; or every job
    #[arg(long, value_enum, default_value_t = SummaryChoice::Failures)]
    pub summary: SummaryChoice,
    /// Progress bars: on a terminal (auto), always, or never (plain lines)
    #[arg(long, value_enum, default_value_t = ProgressChoice::Auto)]
    pub progress: ProgressChoice,
    /// How long running jobs may take to finish after the first SIGINT/SIGTERM
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub grace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryChoice {
    Failures,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing jobfile
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 0 when there is nothing to change, 1 when there is, 2 on error
    #[arg(long)]
    pub exit_code: bool,
    /// Plan to run every one-shot job again, whatever changed
    #[arg(long)]
    pub rerun: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Run every one-shot job again, whatever changed
    #[arg(long)]
    pub rerun: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a setting's effective value
    Get(ConfigKey),
    /// Set a setting in the jobfile (created if missing)
    Set(ConfigSetArgs),
    /// Every setting, its effective value and where it comes from
    #[command(visible_alias = "show")]
    List,
    /// Remove the settings, default queue and default retry policy from the jobfile
    Reset(ConfigResetArgs),
}

#[derive(Debug, Args)]
pub struct ConfigKey {
    /// `max-retries`, `backoff_base`, `workers`, or a dotted path like `queues.deploy.workers`
    #[arg(add = ArgValueCandidates::new(complete::config_get_keys))]
    pub key: String,
}

#[derive(Debug, Args)]
pub struct ConfigSetArgs {
    /// `max-retries`, `backoff_base`, `workers`, or a dotted path like `queues.deploy.workers`
    #[arg(add = ArgValueCandidates::new(complete::config_set_keys))]
    pub key: String,
    /// A TOML value (`5`, `2.5`, `true`, `[2, 3]`) or a plain string (`10m`)
    #[arg(add = ArgValueCompleter::new(complete::config_values))]
    pub value: String,
}

#[derive(Debug, Args)]
pub struct ConfigResetArgs {
    /// Do not ask first
    #[arg(long, short)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// A shell command (its words are joined), a JSON job object, or a
    /// .json/.jsonl file; flags after it are flags: everything after `--`
    /// is the command as written (`enqueue -- ls -la`)
    #[arg(value_name = "CMD")]
    pub command: Vec<String>,
    /// The command after `--`, taken as it is
    #[arg(last = true, value_name = "CMD", hide = true)]
    pub verbatim: Vec<String>,
    /// Read jobs from a JSON object, array or JSON Lines file (`-` = stdin)
    #[arg(
        long = "file",
        short = 'f',
        value_name = "FILE",
        conflicts_with = "command"
    )]
    pub from_file: Option<PathBuf>,
    /// Enqueue a run of this jobfile definition now
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with_all = ["command", "from_file"],
        add = ArgValueCandidates::new(complete::jobfile_definitions)
    )]
    pub job: Option<String>,
    /// The job's id (default: generated, short and sortable)
    #[arg(long)]
    pub id: Option<String>,
    /// The queue to put it in
    #[arg(long, add = ArgValueCandidates::new(complete::queues))]
    pub queue: Option<String>,
    /// Higher runs first
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// Retries after the first attempt
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_retries: Option<u32>,
    /// Kill the job (and its children) after this long, e.g. 30s or 10m
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Start no sooner than this long from now, e.g. 5m
    #[arg(long, value_name = "DURATION", conflicts_with = "run_at")]
    pub delay: Option<String>,
    /// Start no sooner than this time (RFC 3339, or local `YYYY-MM-DD HH:MM`)
    #[arg(long, value_name = "TIME")]
    pub run_at: Option<String>,
    /// Set an environment variable for the job (repeatable); ${VAR} is read at start
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// Validate and show what would be enqueued, change nothing
    #[arg(long, visible_alias = "validate")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Keep showing it, redrawn in place on a terminal (one JSON object a
    /// line with --json) each time it changes; Ctrl-C ends it
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// With --watch: look at least this often, e.g. `500ms`
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "2s",
        requires = "watch"
    )]
    pub interval: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this state (pending, processing|running, completed, failed, dead, cancelled)
    #[arg(long, add = ArgValueCandidates::new(complete::states))]
    pub state: Option<String>,
    /// Only jobs in this queue
    #[arg(long, add = ArgValueCandidates::new(complete::queues))]
    pub queue: Option<String>,
    /// Only jobs of this jobfile definition
    #[arg(long, value_name = "NAME", add = ArgValueCandidates::new(complete::definitions))]
    pub job: Option<String>,
    /// At most this many jobs
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Every matching job, however many
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// List the jobfile's cron schedules and their next ticks instead
    #[arg(long, conflicts_with_all = ["state", "queue", "job"])]
    pub scheduled: bool,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// A job's id, or a definition's name (its latest run); `id:ID` for an id
    #[arg(value_name = "ID|NAME", add = ArgValueCandidates::new(complete::job_refs))]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// A job's id, or a definition's name (its latest run); `id:ID` for an id
    #[arg(value_name = "ID|NAME", add = ArgValueCandidates::new(complete::cancellable_refs))]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A job's id, or a definition's name (its latest run); `id:ID` for an id
    #[arg(value_name = "ID|NAME", add = ArgValueCandidates::new(complete::job_refs))]
    pub id: String,
    /// Which attempt (default: the latest)
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Keep printing output as the job runs; end when it ends
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Jobs' ids, or definitions' names (their latest runs); `id:ID` for an id
    #[arg(
        required = true,
        value_name = "ID|NAME",
        add = ArgValueCandidates::new(complete::job_refs)
    )]
    pub ids: Vec<String>,
    /// Give up after this long (exit 124), e.g. `10m`
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead jobs
    List(DlqListArgs),
    /// Put dead jobs back in the queue (no id: every dead job)
    Retry(DlqRetryArgs),
    /// Delete dead jobs (no id: every dead job, after asking)
    Remove(DlqRemoveArgs),
    /// Dead jobs by queue and exit code
    Stats,
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// At most this many jobs
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Every dead job, however many
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct DlqRetryArgs {
    /// Dead jobs to retry, by id or definition name (default: all)
    #[arg(value_name = "ID|NAME", add = ArgValueCandidates::new(complete::dead_refs))]
    pub ids: Vec<String>,
    /// Keep the attempt count instead of starting from zero
    #[arg(long)]
    pub keep_attempts: bool,
}

#[derive(Debug, Args)]
pub struct DlqRemoveArgs {
    /// Dead jobs to delete, by id or definition name (default: all)
    #[arg(value_name = "ID|NAME", add = ArgValueCandidates::new(complete::dead_refs))]
    pub ids: Vec<String>,
    /// Do not ask before deleting every dead job
    #[arg(long, short)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete finished jobs older than this (default: 7d)
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub older_than: String,
    /// Only this finished state (completed, cancelled, dead)
    #[arg(long, add = ArgValueCandidates::new(complete::finished_states))]
    pub state: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Start a worker process in the background (or in the foreground)
    Start(WorkerStartArgs),
    /// Ask workers to stop: running jobs finish first unless --force
    Stop(WorkerStopArgs),
    /// The registered workers and what they run
    Status,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Stop claiming a queue's jobs (on every worker and host) until it is resumed
    Pause(QueueNames),
    /// Let workers claim a paused queue's jobs again
    Resume(PausedQueueNames),
    /// Every queue: its limit, running and waiting jobs, and whether it is paused
    List,
}

#[derive(Debug, Args)]
pub struct QueueNames {
    /// Queue names
    #[arg(
        required = true,
        value_name = "QUEUE",
        add = ArgValueCandidates::new(complete::queues)
    )]
    pub queues: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PausedQueueNames {
    /// Queue names
    #[arg(
        required = true,
        value_name = "QUEUE",
        add = ArgValueCandidates::new(complete::paused_queues)
    )]
    pub queues: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WorkerStartArgs {
    /// How many jobs to run at once (default: number of CPUs)
    #[arg(long, short = 'c', value_name = "N")]
    pub count: Option<u32>,
    /// Only take jobs from this queue (repeatable; default: every queue)
    #[arg(long = "queue", value_name = "Q", add = ArgValueCandidates::new(complete::queues))]
    pub queues: Vec<String>,
    /// Run in this terminal instead of in the background
    #[arg(long, visible_alias = "no-detach")]
    pub foreground: bool,
    /// Exit once nothing is pending, running or waiting to retry (implies --foreground)
    #[arg(long)]
    pub until_idle: bool,
    /// How long running jobs may take to finish after a stop request
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub grace: String,
    /// Set by `worker start` on the process it starts in the background
    #[arg(long, hide = true)]
    pub detached: bool,
}

#[derive(Debug, Args)]
pub struct WorkerStopArgs {
    /// How long to wait for running jobs before killing them
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub timeout: String,
    /// Kill running jobs now and return them to the queue
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    /// The address to listen on; any but a loopback one needs --token
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Show everything, change nothing: no action buttons, every POST refused
    #[arg(long)]
    pub read_only: bool,
    /// A secret every request must bring (`?token=` once, or `Authorization: Bearer`)
    #[arg(
        long,
        env = "QUEUECTL_UI_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Open the dashboard in a browser (xdg-open) once it listens
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write queuectl.1 and a page per command (queuectl-run.1,
    /// queuectl-dlq-retry.1, ...) into DIR instead of printing queuectl.1
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
}

/// The heading of the global flags in every command's help and the man page.
pub const GLOBAL_OPTIONS: &str = "Global options";

/// A worked example of a command: what it does, then the command line.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub what: &'static str,
    pub command: &'static str,
}

const fn ex(what: &'static str, command: &'static str) -> Example {
    Example { what, command }
}

/// The examples of each command, by its path (`[]` is queuectl itself):
/// the end of its `--help` and the EXAMPLES of the man page. A test
/// parses every one of them.
pub const EXAMPLES: &[(&[&str], &[Example])] = &[
    (
        &[],
        &[
            ex(
                "Write a starter jobfile, see what it would do, then run it",
                "queuectl init",
            ),
            ex("", "queuectl plan"),
            ex("", "queuectl run"),
            ex(
                "In CI: run every job once; exit 1 if one ends dead",
                "queuectl run --until-idle",
            ),
            ex(
                "Another jobfile: -f goes before the command",
                "queuectl -f ci.toml run --until-idle",
            ),
        ],
    ),
    (
        &["run"],
        &[
            ex(
                "Apply the jobfile and run its jobs, cron ticks and watches until Ctrl-C",
                "queuectl run",
            ),
            ex(
                "In CI: run until nothing is left; exit 0 if every job completed, 1 if one is dead",
                "queuectl run --until-idle --junit report.xml",
            ),
            ex(
                "Only the deploy queue, one job at a time",
                "queuectl run --queue deploy --workers 1",
            ),
            ex(
                "Run every one-shot job again, whatever changed",
                "queuectl run --until-idle --rerun",
            ),
        ],
    ),
    (
        &["enqueue"],
        &[
            ex("A shell command", "queuectl enqueue 'make test'"),
            ex(
                "With an id, more retries and a delay; after `--` the command as written",
                "queuectl enqueue --id report --max-retries 5 --delay 10m -- ./report.sh --full",
            ),
            ex(
                "Many jobs from a JSON Lines file (`-` reads stdin)",
                "queuectl enqueue --file jobs.jsonl",
            ),
            ex(
                "A run of a jobfile definition now, at a higher priority",
                "queuectl enqueue --job build-docs --priority 10",
            ),
        ],
    ),
    (
        &["list"],
        &[
            ex("The dead jobs", "queuectl list --state dead"),
            ex(
                "The last 5 runs of a definition",
                "queuectl list --job deploy --limit 5",
            ),
            ex(
                "A queue's jobs as JSON",
                "queuectl --json list --queue deploy",
            ),
        ],
    ),
    (
        &["logs"],
        &[
            ex(
                "The output of a definition's latest run",
                "queuectl logs build-docs",
            ),
            ex(
                "The first attempt of a job",
                "queuectl logs 1m82d8hhe2r8 --attempt 1",
            ),
            ex(
                "Follow a running job until it ends",
                "queuectl logs --follow deploy",
            ),
        ],
    ),
    (
        &["wait"],
        &[
            ex(
                "Block until both end; exit 0 only if both completed",
                "queuectl wait build test",
            ),
            ex(
                "Give up after 10 minutes (exit 124)",
                "queuectl wait --timeout 10m deploy",
            ),
        ],
    ),
    (
        &["worker", "start"],
        &[
            ex(
                "A pool in the background, one slot per CPU",
                "queuectl worker start",
            ),
            ex(
                "Four slots for the deploy queue only",
                "queuectl worker start --count 4 --queue deploy",
            ),
            ex(
                "In this terminal, until nothing is left to run",
                "queuectl worker start --foreground --until-idle",
            ),
        ],
    ),
    (
        &["queue", "pause"],
        &[
            ex(
                "Hold the deploy queue's jobs (running ones finish)",
                "queuectl queue pause deploy",
            ),
            ex("Let them run again", "queuectl queue resume deploy"),
        ],
    ),
    (
        &["ui"],
        &[
            ex("The dashboard on this machine only", "queuectl ui --open"),
            ex(
                "On the network, behind a token",
                "queuectl ui --listen 0.0.0.0:8080 --token s3cret",
            ),
        ],
    ),
    (
        &["dlq", "retry"],
        &[
            ex("Every dead job back to pending", "queuectl dlq retry"),
            ex(
                "One job, keeping its attempt count",
                "queuectl dlq retry flaky --keep-attempts",
            ),
        ],
    ),
    (
        &["config", "set"],
        &[
            ex(
                "Retries of the default policy",
                "queuectl config set max-retries 5",
            ),
            ex(
                "A queue's limit",
                "queuectl config set queues.deploy.workers 1",
            ),
            ex(
                "A job's timeout",
                "queuectl config set jobs.build.timeout 10m",
            ),
        ],
    ),
    (
        &["status"],
        &[
            ex(
                "Counts by queue and state, and the workers",
                "queuectl status",
            ),
            ex(
                "Keep it on screen, redrawn as it changes",
                "queuectl status --watch",
            ),
            ex(
                "A JSON object a line, at least every 500 ms",
                "queuectl --json status --watch --interval 500ms",
            ),
        ],
    ),
];

/// The examples of the command at `path`.
pub fn examples(path: &[&str]) -> &'static [Example] {
    EXAMPLES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, examples)| *examples)
}

/// The commands of the top-level help, in groups.
pub const COMMAND_GROUPS: &[(&str, &[&str])] = &[
    (
        "Jobfile",
        &["init", "validate", "plan", "apply", "config", "schema"],
    ),
    ("Running", &["run", "worker"]),
    (
        "Jobs",
        &["enqueue", "list", "show", "logs", "wait", "cancel"],
    ),
    ("The queue", &["status", "queue", "dlq", "prune", "ui"]),
    ("Shell", &["completions", "man", "help"]),
];

/// The global flags that each of these commands would ignore, and so
/// refuses: they read no jobfile and no queue, and print no JSON (`schema`
/// always does, so it takes `--json`). `-f` is given before the command;
/// the others are hidden from these commands' help.
const UNUSED_GLOBALS: &[(&str, &[&str])] = &[
    (
        "completions",
        &["jobfile", "db", "json", "quiet", "verbose"],
    ),
    ("man", &["jobfile", "db", "json", "verbose"]),
    ("schema", &["jobfile", "db", "quiet", "verbose"]),
    ("init", &["db", "json"]),
];

/// queuectl's command line: the derive, with its examples, the grouped
/// top-level help, and the global flags refused where they do nothing.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for (path, examples) in EXAMPLES {
        cmd = with_subcommand(cmd, path, &|c: clap::Command| {
            let help = examples_help(&c, examples);
            c.after_help(help)
        });
    }
    for (name, unused) in UNUSED_GLOBALS {
        let shadows: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| a.is_global_set() && unused.contains(&a.get_id().as_str()))
            .map(|a| a.clone().global(false).hide(true))
            .collect();
        // A hidden arg of the same id keeps clap from giving the command
        // the global one: its help does not list it, completion does not
        // offer it, and [`parse`] refuses it.
        cmd = with_subcommand(cmd, &[name], &|c: clap::Command| c.args(shadows.clone()));
    }
    let template = grouped_help_template(&cmd);
    cmd.help_template(template)
}

/// `cmd` with `f` applied to the subcommand at `path` (to `cmd` itself
/// for an empty path).
fn with_subcommand(
    cmd: clap::Command,
    path: &[&str],
    f: &dyn Fn(clap::Command) -> clap::Command,
) -> clap::Command {
    match path.split_first() {
        None => f(cmd),
        // Not `mut_subcommand`: it moves the command to the end of the list.
        Some((first, rest)) => cmd.mut_subcommands(|c| {
            if c.get_name() == *first {
                with_subcommand(c, rest, f)
            } else {
                c
            }
        }),
    }
}

/// The "Examples:" block at the end of a command's help.
fn examples_help(cmd: &clap::Command, examples: &[Example]) -> StyledStr {
    let header = cmd.get_styles().get_header();
    let literal = cmd.get_styles().get_literal();
    let mut text = format!("{header}Examples:{header:#}\n");
    for (i, example) in examples.iter().enumerate() {
        if !example.what.is_empty() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(&format!("  # {}\n", example.what));
        }
        text.push_str(&format!("  {literal}{}{literal:#}\n", example.command));
    }
    StyledStr::from(text.trim_end().to_string())
}

/// The top-level help, its commands in [`COMMAND_GROUPS`] (clap lists
/// them in one block).
fn grouped_help_template(cmd: &clap::Command) -> StyledStr {
    let header = cmd.get_styles().get_header();
    let literal = cmd.get_styles().get_literal();
    let mut commands: Vec<(String, String)> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| {
            let about = c.get_about().map(ToString::to_string).unwrap_or_default();
            (c.get_name().to_string(), about)
        })
        .collect();
    // clap adds `help` when it builds the command.
    commands.push((
        "help".into(),
        "Print this message or the help of the given subcommand(s)".into(),
    ));
    let width = commands
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let line = |(name, about): &(String, String)| {
        format!(
            "  {literal}{name}{literal:#}{}  {about}\n",
            " ".repeat(width - name.len())
        )
    };
    let mut text = String::from("{before-help}{about-with-newline}\n{usage-heading} {usage}\n\n");
    for (group, names) in COMMAND_GROUPS {
        text.push_str(&format!("{header}{group}:{header:#}\n"));
        for name in *names {
            if let Some(entry) = commands.iter().find(|(n, _)| n == name) {
                text.push_str(&line(entry));
            }
        }
        text.push('\n');
    }
    let others: Vec<_> = commands
        .iter()
        .filter(|(name, _)| {
            !COMMAND_GROUPS
                .iter()
                .any(|(_, names)| names.contains(&name.as_str()))
        })
        .collect();
    if !others.is_empty() {
        text.push_str(&format!("{header}Other:{header:#}\n"));
        for entry in others {
            text.push_str(&line(entry));
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "{header}Options:{header:#}\n{{options}}{{after-help}}"
    ));
    StyledStr::from(text)
}

/// Why a command line was not accepted.
#[derive(Debug)]
pub enum Refusal {
    /// clap's own error, or the help or version it prints (exit 0).
    Clap(clap::Error),
    /// queuectl's: a flag where it means nothing, with a hint.
    Usage(crate::error::Error),
}

/// Parses a command line (the program name first).
pub fn parse(args: &[OsString]) -> Result<Cli, Refusal> {
    let matches = match command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(e) => {
            return Err(misplaced_file_flag(&e, args).map_or(Refusal::Clap(e), Refusal::Usage));
        }
    };
    refuse_unused_globals(&matches).map_err(Refusal::Usage)?;
    Cli::from_arg_matches(&matches).map_err(Refusal::Clap)
}

/// How a global flag is written, for messages.
fn flag_name(id: &str) -> &'static str {
    match id {
        "jobfile" => "-f/--file",
        "db" => "--db",
        "json" => "--json",
        "quiet" => "-q/--quiet",
        "verbose" => "-v/--verbose",
        _ => "this flag",
    }
}

/// An error for a global flag given to a command that would ignore it.
fn unused_global(command: &str, id: &str) -> crate::error::Error {
    let hint = match command {
        "completions" => {
            "the script is the same for every jobfile and queue: `queuectl completions SHELL`"
        }
        "man" => "the page is the same for every jobfile and queue: `queuectl man`",
        "schema" => {
            "the schema is the same for every jobfile and queue, and always JSON: `queuectl schema`"
        }
        _ => {
            "init writes a jobfile (name it with -f before the command) and prints no JSON; the queue is made when it is first used"
        }
    };
    crate::error::Error::input_with_hint(
        format!("`{}` does nothing for `queuectl {command}`", flag_name(id)),
        hint,
    )
}

/// Refuses a global flag given on the command line (not by an environment
/// variable) to a command in [`UNUSED_GLOBALS`].
fn refuse_unused_globals(matches: &ArgMatches) -> Result<(), crate::error::Error> {
    let Some((name, _)) = matches.subcommand() else {
        return Ok(());
    };
    let Some((_, unused)) = UNUSED_GLOBALS.iter().find(|(command, _)| *command == name) else {
        return Ok(());
    };
    for id in *unused {
        if matches.value_source(id) == Some(ValueSource::CommandLine) {
            return Err(unused_global(name, id));
        }
    }
    Ok(())
}

/// The flags of queuectl itself that take a value (in a separate word
/// unless written `--db=URL` or `-fPATH`).
const TAKES_VALUE: &[&str] = &["-f", "--file", "--db", "--color"];

/// Where the command is in `words` (the program name first): the first
/// word that is neither a flag of queuectl itself nor the value of one.
pub fn command_index<S: AsRef<str>>(words: &[S]) -> Option<usize> {
    let mut i = 1;
    while let Some(word) = words.get(i) {
        let word = word.as_ref();
        if word == "--" {
            return None;
        }
        if !word.starts_with('-') || word == "-" {
            return Some(i);
        }
        // `-qf PATH`: a cluster that ends with `-f` takes the next word.
        let short_value_next =
            !word.starts_with("--") && word[1..].find('f') == Some(word.len() - 2);
        i += if TAKES_VALUE.contains(&word) || short_value_next {
            2
        } else {
            1
        };
    }
    None
}

/// `-f`/`--file` after the command (where only `enqueue` has a `-f` of
/// its own): the jobfile flag in the wrong place, refused with the
/// command line that means it.
fn misplaced_file_flag(error: &clap::Error, args: &[OsString]) -> Option<crate::error::Error> {
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(invalid)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    if !(invalid == "-f" || invalid == "--file" || invalid.starts_with("--file=")) {
        return None;
    }
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let start = command_index(&words)?;
    let at = (start + 1..words.len()).find(|&i| {
        let word = &words[i];
        word == "-f"
            || word == "--file"
            || word.starts_with("--file=")
            || (word.starts_with("-f") && !word.starts_with("--"))
    })?;
    // `completions bash -f x`: no place would make it mean something.
    let ignores_it = UNUSED_GLOBALS
        .iter()
        .any(|(command, unused)| *command == words[start] && unused.contains(&"jobfile"));
    if ignores_it {
        return Some(unused_global(&words[start], "jobfile"));
    }
    let word = &words[at];
    let (value, taken) = if let Some(value) = word.strip_prefix("--file=") {
        (value.to_string(), 1)
    } else if word == "-f" || word == "--file" {
        match words.get(at + 1) {
            Some(value) => (value.clone(), 2),
            None => ("PATH".to_string(), 1),
        }
    } else {
        (word["-f".len()..].to_string(), 1)
    };
    let mut fixed = vec!["queuectl".to_string(), "-f".to_string(), value];
    fixed.extend(words[1..at].iter().cloned());
    fixed.extend(words[at + taken..].iter().cloned());
    let fixed: Vec<String> = fixed.iter().map(|w| shell_quote(w)).collect();
    Some(crate::error::Error::input_with_hint(
        format!(
            "`{invalid}` names the jobfile and goes before the command (only `enqueue -f` reads a file of jobs)"
        ),
        format!("`{}`", fixed.join(" ")),
    ))
}

/// A word as a shell would need it written.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Vec<OsString> {
        std::iter::once("queuectl")
            .chain(line.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// The message and hint of a refusal of ours; panics on anything else.
    fn refusal(line: &[&str]) -> (String, String) {
        match parse(&args(line)) {
            Err(Refusal::Usage(e)) => (e.to_string(), e.hint().unwrap_or_default().to_string()),
            Err(Refusal::Clap(e)) => panic!("{line:?}: clap refused it: {e}"),
            Ok(_) => panic!("{line:?} was accepted"),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    /// Words as a shell splits them (single quotes only: the examples
    /// need no more).
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let (mut quoted, mut started) = (false, false);
        for c in line.chars() {
            match c {
                '\'' => (quoted, started) = (!quoted, true),
                ' ' if !quoted => {
                    if started {
                        words.push(std::mem::take(&mut word));
                    }
                    started = false;
                }
                c => {
                    word.push(c);
                    started = true;
                }
            }
        }
        if started {
            words.push(word);
        }
        words
    }

    #[test]
    fn every_example_parses_and_names_its_command() {
        for (path, examples) in EXAMPLES {
            assert!(!examples.is_empty(), "{path:?}");
            for example in *examples {
                let words = shell_words(example.command);
                assert_eq!(words[0], "queuectl", "{}", example.command);
                let words: Vec<OsString> = words.iter().map(OsString::from).collect();
                let cli = parse(&words);
                assert!(cli.is_ok(), "{}: {cli:?}", example.command);
                // Under the command it documents (`queue pause` shows
                // `queue resume` too).
                let text: Vec<String> = words
                    .iter()
                    .map(|w| w.to_string_lossy().into_owned())
                    .collect();
                if let (Some(at), Some(first)) = (command_index(&text), path.first()) {
                    assert_eq!(text[at], *first, "{}", example.command);
                }
            }
        }
    }

    #[test]
    fn examples_are_at_the_end_of_the_help() {
        let mut cmd = command();
        let help = cmd.render_help().to_string();
        assert!(
            help.contains("Examples:\n  # Write a starter jobfile"),
            "{help}"
        );
        let run = cmd.find_subcommand_mut("run").expect("run");
        let help = run.render_help().to_string();
        assert!(
            help.trim_end()
                .ends_with("queuectl run --until-idle --rerun"),
            "{help}"
        );
        let mut worker = command();
        let start = worker
            .find_subcommand_mut("worker")
            .and_then(|w| w.find_subcommand_mut("start"))
            .expect("worker start");
        let help = start.render_help().to_string();
        assert!(
            help.contains("queuectl worker start --count 4 --queue deploy"),
            "{help}"
        );
    }

    #[test]
    fn global_options_have_their_own_heading() {
        let mut cmd = command();
        cmd.build();
        let list = cmd.find_subcommand_mut("list").expect("list");
        let help = list.render_help().to_string();
        let (own, global) = help
            .split_once("Global options:")
            .expect("a Global options heading");
        assert!(own.contains("--state"), "{help}");
        assert!(!own.contains("--json"), "{help}");
        for flag in ["--db", "--json", "--quiet", "--verbose", "--color"] {
            assert!(global.contains(flag), "{flag}: {help}");
        }
    }

    #[test]
    fn the_top_level_help_lists_every_command_once_in_a_group() {
        let mut cmd = command();
        let help = cmd.render_help().to_string();
        let mut built = command();
        built.build();
        for sub in built.get_subcommands() {
            let name = sub.get_name();
            let lines = help
                .lines()
                .filter(|l| l.split_whitespace().next() == Some(name) && l.starts_with("  "))
                .count();
            assert_eq!(lines, 1, "{name} in\n{help}");
            assert!(
                COMMAND_GROUPS
                    .iter()
                    .any(|(_, names)| names.contains(&name)),
                "{name} has a group"
            );
        }
        for (group, _) in COMMAND_GROUPS {
            assert!(help.contains(&format!("\n{group}:\n")), "{group}");
        }
        assert!(!help.contains("Commands:"), "{help}");
        assert!(!help.contains("Other:"), "{help}");
    }

    #[test]
    fn file_after_the_command_is_refused_with_the_line_that_means_it() {
        for (line, fixed) in [
            (&["apply", "-f", "x.toml"][..], "`queuectl -f x.toml apply`"),
            (
                &["apply", "--file", "x.toml", "--rerun"][..],
                "`queuectl -f x.toml apply --rerun`",
            ),
            (
                &["--json", "list", "--file=my jobs.toml"][..],
                "`queuectl -f 'my jobs.toml' --json list`",
            ),
            (
                &["dlq", "retry", "-fx.toml", "a"][..],
                "`queuectl -f x.toml dlq retry a`",
            ),
            (&["status", "-f"][..], "`queuectl -f PATH status`"),
        ] {
            let (message, hint) = refusal(line);
            assert!(
                message.contains("names the jobfile and goes before the command"),
                "{message}"
            );
            assert_eq!(hint, fixed, "{line:?}");
        }
        // `enqueue -f` is its own: a file of jobs.
        assert!(parse(&args(&["enqueue", "-f", "jobs.json"])).is_ok());
        assert!(parse(&args(&["-f", "x.toml", "apply"])).is_ok());
        // Other unknown flags stay clap's.
        assert!(matches!(
            parse(&args(&["apply", "--nope"])),
            Err(Refusal::Clap(_))
        ));
    }

    #[test]
    fn globals_a_command_would_ignore_are_refused() {
        for (line, flag, command) in [
            (
                &["completions", "bash", "--json"][..],
                "--json",
                "completions",
            ),
            (
                &["--json", "completions", "bash"][..],
                "--json",
                "completions",
            ),
            (
                &["completions", "--db", "x.db", "zsh"][..],
                "--db",
                "completions",
            ),
            (
                &["-f", "x.toml", "completions", "fish"][..],
                "-f/--file",
                "completions",
            ),
            (
                &["completions", "bash", "-f", "x.toml"][..],
                "-f/--file",
                "completions",
            ),
            (
                &["-q", "completions", "bash"][..],
                "-q/--quiet",
                "completions",
            ),
            (&["schema", "--db", "x.db"][..], "--db", "schema"),
            (&["-v", "schema"][..], "-v/--verbose", "schema"),
            (&["man", "--json"][..], "--json", "man"),
            (&["init", "--json"][..], "--json", "init"),
            (&["--db", "x.db", "init"][..], "--db", "init"),
        ] {
            let (message, hint) = refusal(line);
            assert_eq!(
                message,
                format!("`{flag}` does nothing for `queuectl {command}`"),
                "{line:?}"
            );
            assert!(!hint.is_empty(), "{line:?}");
        }
        // Where they mean something they are taken.
        for line in [
            &["--json", "schema"][..],
            &["-f", "x.toml", "init"],
            &["-q", "init", "--force"],
            &["-q", "man", "--dir", "d"],
            &["--color", "never", "completions", "bash"],
            &["--json", "list"],
            &["list", "--db", "x.db"],
        ] {
            assert!(parse(&args(line)).is_ok(), "{line:?}");
        }
        // Not offered there either.
        let mut cmd = command();
        let completions = cmd.find_subcommand_mut("completions").expect("completions");
        let help = completions.render_help().to_string();
        assert!(!help.contains("--json") && !help.contains("--db"), "{help}");
    }

    #[test]
    fn the_command_is_found_past_queuectls_own_flags() {
        let find = |line: &[&str]| {
            let words: Vec<String> = args(line)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            command_index(&words)
        };
        assert_eq!(find(&["list"]), Some(1));
        assert_eq!(find(&["-f", "x", "--db", "y", "--json", "list"]), Some(6));
        assert_eq!(find(&["-fx", "--db=y", "-qf", "z", "list"]), Some(5));
        assert_eq!(find(&["--color", "never", "-v", "show", "a"]), Some(4));
        assert_eq!(find(&["--json"]), None);
        assert_eq!(find(&["--", "list"]), None);
    }

    #[test]
    fn words_are_quoted_as_a_shell_needs() {
        assert_eq!(shell_quote("ci.toml"), "ci.toml");
        assert_eq!(shell_quote("my jobs.toml"), "'my jobs.toml'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
