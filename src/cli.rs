//! The command line, as clap sees it: flags and their help text, nothing more.
//! Values are turned into domain types by the commands that use them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

/// Flags every command takes.
#[derive(Debug, Args)]
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
    Cancel(IdArg),
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
    /// Print shell completions
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run N jobs at once from every queue (default: each queue's declared workers)
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// Only run jobs of this queue (repeatable)
    #[arg(long = "queue", value_name = "Q")]
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
    pub key: String,
}

#[derive(Debug, Args)]
pub struct ConfigSetArgs {
    /// `max-retries`, `backoff_base`, `workers`, or a dotted path like `queues.deploy.workers`
    pub key: String,
    /// A TOML value (`5`, `2.5`, `true`, `[2, 3]`) or a plain string (`10m`)
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
    #[arg(long, value_name = "NAME", conflicts_with_all = ["command", "from_file"])]
    pub job: Option<String>,
    /// The job's id (default: generated, short and sortable)
    #[arg(long)]
    pub id: Option<String>,
    /// The queue to put it in
    #[arg(long)]
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
    #[arg(long)]
    pub state: Option<String>,
    /// Only jobs in this queue
    #[arg(long)]
    pub queue: Option<String>,
    /// Only jobs of this jobfile definition
    #[arg(long)]
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
    pub id: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A job's id, or a definition's name (its latest run); `id:ID` for an id
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
    #[arg(required = true, value_name = "ID|NAME")]
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
    pub ids: Vec<String>,
    /// Keep the attempt count instead of starting from zero
    #[arg(long)]
    pub keep_attempts: bool,
}

#[derive(Debug, Args)]
pub struct DlqRemoveArgs {
    /// Dead jobs to delete, by id or definition name (default: all)
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
    #[arg(long)]
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
    Resume(QueueNames),
    /// Every queue: its limit, running and waiting jobs, and whether it is paused
    List,
}

#[derive(Debug, Args)]
pub struct QueueNames {
    /// Queue names
    #[arg(required = true, value_name = "QUEUE")]
    pub queues: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WorkerStartArgs {
    /// How many jobs to run at once (default: number of CPUs)
    #[arg(long, short = 'c', value_name = "N")]
    pub count: Option<u32>,
    /// Only take jobs from this queue (repeatable; default: every queue)
    #[arg(long = "queue", value_name = "Q")]
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
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
