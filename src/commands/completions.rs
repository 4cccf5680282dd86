//! Shell completion: `queuectl completions SHELL`, and the dynamic
//! completer behind it.
//!
//! The scripts are clap_complete's registration of a dynamic completer:
//! on TAB the shell runs `COMPLETE=bash queuectl -- WORDS…` ([`complete_env`]),
//! and clap_complete's engine completes the words from the clap definition
//! ([`crate::cli::command`]), asking the candidate functions here for what
//! only the jobfile and the queue know: job ids, definition names, queues,
//! `config` keys. They find the jobfile and queue the words being
//! completed name (`-f`, `--db`, else the environment and the current
//! directory), open the queue read-only (a missing one reads as empty:
//! completing never creates a database), and print nothing: whatever
//! cannot be read gives no candidates.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use clap::Parser;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use crate::context::Context;
use crate::driver::{JobFilter, Location};
use crate::engine::Engine;
use crate::error::{EXIT_OK, EXIT_USAGE, Error, Result};
use crate::job::{Job, JobState};
use crate::jobfile::edit;
use crate::output::{print_out, truncate};
use crate::sys::files::{MAX_JOBFILE_BYTES, read_regular};

/// The environment variable that turns a run into a completion request.
const VAR: &str = "COMPLETE";

/// At most this many jobs are offered (the newest).
const MAX_JOBS: u32 = 200;

/// How long completing waits for a PostgreSQL server before giving up.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The keys of a job definition, for `config set jobs.NAME.KEY`; a test
/// checks them against the schema.
pub const JOB_KEYS: &[&str] = &[
    "command", "sources", "timeout", "priority", "env", "cwd", "queue", "retry", "after",
    "schedule", "timezone", "overlap", "missed", "watch", "on_busy",
];

/// The words of the command line being completed (the program name first).
static WORDS: OnceLock<Vec<OsString>> = OnceLock::new();

/// `queuectl completions SHELL`: the same script as `COMPLETE=SHELL queuectl`.
pub fn run(shell: clap_complete::Shell) -> Result<u8> {
    print_out(&registration(shell)?)?;
    Ok(EXIT_OK)
}

/// The script that registers the dynamic completer with `shell`: what
/// clap_complete's `CompleteEnv` prints for `COMPLETE=SHELL queuectl`,
/// calling queuectl as it was called here (by name through `PATH`, or by
/// its absolute path).
pub fn registration(shell: clap_complete::Shell) -> Result<String> {
    use clap_complete::Shell;
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Elvish => &Elvish,
        Shell::PowerShell => &Powershell,
        other => {
            return Err(Error::input(format!(
                "no completion for {other} yet; bash, zsh, fish, elvish and powershell have one"
            )));
        }
    };
    let mut cmd = crate::cli::command();
    cmd.build();
    let name = cmd.get_name().to_string();
    let bin = cmd.get_bin_name().unwrap_or(&name).to_string();
    // As CompleteEnv: a relative path with a directory is made absolute.
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "queuectl".into());
    let mut program = std::path::PathBuf::from(argv0);
    if program.components().count() > 1
        && let Ok(cwd) = std::env::current_dir()
    {
        program = cwd.join(program);
    }
    let mut script = Vec::new();
    completer
        .write_registration(VAR, &name, &bin, &program.to_string_lossy(), &mut script)
        .map_err(|e| Error::Internal(format!("cannot render the completion script: {e}")))?;
    String::from_utf8(script)
        .map_err(|e| Error::Internal(format!("the completion script is not UTF-8: {e}")))
}

/// Answers a completion request (`COMPLETE=SHELL queuectl [-- WORDS…]`)
/// with clap_complete's engine; None for an ordinary run.
pub fn complete_env(args: &[OsString]) -> Option<ExitCode> {
    let shell = std::env::var_os(VAR).filter(|v| !v.is_empty() && v != "0")?;
    let words: Vec<OsString> = args
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .cloned()
        .collect();
    let registering = words.is_empty();
    let _ = WORDS.set(words);
    let cwd = std::env::current_dir().ok();
    let outcome = clap_complete::CompleteEnv::with_factory(crate::cli::command)
        .try_complete(args.iter().cloned(), cwd.as_deref());
    match outcome {
        Ok(true) => Some(ExitCode::from(EXIT_OK)),
        Ok(false) => None,
        // `COMPLETE=bash queuectl | head -c0`: not an error.
        Err(e) if is_broken_pipe(&e) => Some(ExitCode::from(EXIT_OK)),
        // `COMPLETE=tcsh queuectl`: the user asked for a script; say why not.
        Err(e) if registering => {
            eprintln!(
                "error: {} (`{VAR}={}`)",
                e.to_string().trim_start_matches("error: ").trim_end(),
                shell.to_string_lossy()
            );
            Some(ExitCode::from(EXIT_USAGE))
        }
        // In the middle of a TAB: nothing on the terminal; the scripts
        // take a failure as "no candidates".
        Err(_) => Some(ExitCode::from(1)),
    }
}

/// Whether clap_complete failed to write to a closed pipe (its error keeps
/// only the message of the I/O error).
fn is_broken_pipe(error: &clap::Error) -> bool {
    #[cfg(unix)]
    {
        let epipe = std::io::Error::from_raw_os_error(rustix::io::Errno::PIPE.raw_os_error());
        error.kind() == clap::error::ErrorKind::Io && error.to_string().contains(&epipe.to_string())
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

// The candidates, one function per kind of value, for `ArgValueCandidates`
// and `ArgValueCompleter` in `crate::cli`.

/// Recent jobs and the definitions with a run: `show`, `logs`, `wait`.
pub fn job_refs() -> Vec<CompletionCandidate> {
    Lookup::current().job_refs(Want::Any)
}

/// Jobs that are not finished, and the definitions whose latest run is
/// not: `cancel`.
pub fn cancellable_refs() -> Vec<CompletionCandidate> {
    Lookup::current().job_refs(Want::Unfinished)
}

/// Dead jobs, and the definitions whose latest run is dead: `dlq retry|remove`.
pub fn dead_refs() -> Vec<CompletionCandidate> {
    Lookup::current().job_refs(Want::Dead)
}

/// The jobfile's definitions and those the queue has runs of: `list --job`.
pub fn definitions() -> Vec<CompletionCandidate> {
    Lookup::current().definitions(true)
}

/// The jobfile's definitions: `enqueue --job`.
pub fn jobfile_definitions() -> Vec<CompletionCandidate> {
    Lookup::current().definitions(false)
}

/// Every queue the jobfile declares or the queue knows: `--queue`, `queue pause`.
pub fn queues() -> Vec<CompletionCandidate> {
    Lookup::current().queues(false)
}

/// The paused queues: `queue resume`.
pub fn paused_queues() -> Vec<CompletionCandidate> {
    Lookup::current().queues(true)
}

/// The job states `list --state` takes.
pub fn states() -> Vec<CompletionCandidate> {
    let mut out = Vec::new();
    for state in JobState::ALL {
        out.push(candidate(state.as_str(), state_help(state)));
        if state == JobState::Processing {
            out.push(candidate("running", "the same as processing"));
        }
    }
    out
}

/// The finished states `prune --state` takes.
pub fn finished_states() -> Vec<CompletionCandidate> {
    JobState::FINISHED
        .into_iter()
        .map(|s| candidate(s.as_str(), state_help(s)))
        .collect()
}

/// The keys `config get` reads: the classic names, the settings, queues
/// and retry policies, and the keys the jobfile's jobs set.
pub fn config_get_keys() -> Vec<CompletionCandidate> {
    Lookup::current().config_keys(false)
}

/// The keys `config set` writes: as for get, and every key of each job.
pub fn config_set_keys() -> Vec<CompletionCandidate> {
    Lookup::current().config_keys(true)
}

/// The values of `config set KEY`, for keys with a known set of them: a
/// job's `retry` (the policies), `queue`, the choices and the booleans.
pub fn config_values(current: &OsStr) -> Vec<CompletionCandidate> {
    let words = words();
    let Some(key) = config_set_key(words) else {
        return Vec::new();
    };
    let prefix = current.to_string_lossy();
    Lookup::current()
        .config_values(&key)
        .into_iter()
        .filter(|c| c.get_value().to_string_lossy().starts_with(prefix.as_ref()))
        .collect()
}

fn words() -> &'static [OsString] {
    WORDS.get().map_or(&[], Vec::as_slice)
}

/// The KEY of `config set KEY VALUE` in the words being completed.
fn config_set_key(words: &[OsString]) -> Option<String> {
    let words: Vec<String> = words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let config = crate::cli::command_index(&words)?;
    (words[config] == "config").then_some(())?;
    let mut rest = words[config + 1..].iter().filter(|w| !w.starts_with('-'));
    (rest.next()? == "set").then_some(())?;
    rest.next().cloned()
}

/// The words naming the jobfile and queue in a command line being
/// completed: every flag before the command (they are all queuectl's
/// own), and `--db` after it.
fn global_words(words: &[OsString]) -> Vec<OsString> {
    let text: Vec<String> = words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let Some(command) = crate::cli::command_index(&text) else {
        return Vec::new();
    };
    let mut out: Vec<OsString> = words[1..command].to_vec();
    let mut i = command + 1;
    while let Some(word) = text.get(i) {
        if word == "--" {
            break;
        }
        if word == "--db" {
            out.extend(words[i..].iter().take(2).cloned());
            i += 2;
            continue;
        }
        if word.starts_with("--db=") {
            out.push(words[i].clone());
        }
        i += 1;
    }
    out
}

/// The context the words being completed name; None when it cannot be
/// resolved (a bad flag, an unreadable jobfile).
fn context_of(words: &[OsString]) -> Option<Context> {
    let mut argv: Vec<OsString> = vec!["queuectl".into()];
    argv.extend(global_words(words));
    argv.push("validate".into());
    // A word being typed (`--db` without its value yet) spoils the
    // flags: the environment and the current directory still count.
    let cli = crate::cli::Cli::try_parse_from(&argv)
        .or_else(|_| crate::cli::Cli::try_parse_from(["queuectl", "validate"]))
        .ok()?;
    Context::resolve(
        &cli.global,
        crate::output::Colors {
            stdout: false,
            stderr: false,
        },
    )
    .ok()
}

/// Which jobs a job argument takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Any,
    Unfinished,
    Dead,
}

impl Want {
    fn admits(self, state: JobState) -> bool {
        match self {
            Want::Any => true,
            Want::Unfinished => !state.is_finished(),
            Want::Dead => state == JobState::Dead,
        }
    }
}

/// Where candidates come from: the jobfile, read leniently (one that
/// does not validate still names its jobs), and the queue, read-only.
#[derive(Debug)]
pub(crate) struct Lookup {
    context: Option<Context>,
    table: Option<toml::Table>,
}

impl Lookup {
    /// The jobfile and queue of the command line being completed.
    fn current() -> Lookup {
        Lookup::new(context_of(words()))
    }

    pub(crate) fn new(context: Option<Context>) -> Lookup {
        let table = context
            .as_ref()
            .and_then(|c| c.jobfile.as_deref())
            .and_then(read_table);
        Lookup { context, table }
    }

    /// The queue, opened for reading (a server gets a short connect
    /// timeout: a TAB must not hang).
    fn engine(&self) -> Option<Engine> {
        let mut location = self.context.as_ref()?.location.clone();
        if let Location::Postgres(url) = &mut location {
            url.connect_timeout = url.connect_timeout.min(PG_CONNECT_TIMEOUT);
        }
        Engine::open_read(&location).ok()
    }

    /// The jobfile's `[section]` table.
    fn section(&self, name: &str) -> Option<&toml::Table> {
        self.table.as_ref()?.get(name)?.as_table()
    }

    /// The jobfile's job names, each with its command.
    fn jobfile_jobs(&self) -> Vec<(String, String)> {
        self.section("jobs")
            .into_iter()
            .flatten()
            .map(|(name, def)| {
                let command = def
                    .get("command")
                    .and_then(toml::Value::as_str)
                    .unwrap_or_default();
                (name.clone(), command.to_string())
            })
            .collect()
    }

    /// The jobfile's queues: declared, or named by a job.
    fn jobfile_queues(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .section("queues")
            .into_iter()
            .flatten()
            .map(|(n, _)| n.clone())
            .collect();
        for (_, def) in self.section("jobs").into_iter().flatten() {
            if let Some(queue) = def.get("queue").and_then(toml::Value::as_str) {
                names.push(queue.to_string());
            }
        }
        names
    }

    /// The jobfile's retry policies, `default` always.
    fn policies(&self) -> Vec<String> {
        let mut names = vec![crate::jobfile::DEFAULT_POLICY.to_string()];
        names.extend(
            self.section("retry")
                .into_iter()
                .flatten()
                .map(|(n, _)| n.clone()),
        );
        dedup(names)
    }

    fn job_refs(&self, want: Want) -> Vec<CompletionCandidate> {
        let Some(mut engine) = self.engine() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let latest = engine.read(|ops| ops.latest_runs()).unwrap_or_default();
        for (name, run) in &latest {
            if want.admits(run.state) {
                let help = format!(
                    "latest run {}, {}: {}",
                    run.id,
                    run.state,
                    one_line(&run.command)
                );
                out.push(candidate(name, help));
            }
        }
        let states: Vec<Option<JobState>> = match want {
            Want::Any => vec![None],
            Want::Unfinished => JobState::UNFINISHED.into_iter().map(Some).collect(),
            Want::Dead => vec![Some(JobState::Dead)],
        };
        for state in states {
            let filter = JobFilter {
                state,
                limit: MAX_JOBS,
                ..JobFilter::default()
            };
            for job in engine.list(&filter).unwrap_or_default() {
                out.push(job_candidate(&job));
            }
        }
        unique(out)
    }

    fn definitions(&self, with_queue: bool) -> Vec<CompletionCandidate> {
        let mut out: Vec<CompletionCandidate> = self
            .jobfile_jobs()
            .into_iter()
            .map(|(name, command)| candidate(name, one_line(&command)))
            .collect();
        if with_queue && let Some(mut engine) = self.engine() {
            for (name, run) in engine.read(|ops| ops.latest_runs()).unwrap_or_default() {
                let help = if run.removed {
                    format!("removed from the jobfile; latest run {}", run.state)
                } else {
                    format!("latest run {}", run.state)
                };
                out.push(candidate(name, help));
            }
        }
        unique(out)
    }

    fn queues(&self, only_paused: bool) -> Vec<CompletionCandidate> {
        let views = self
            .engine()
            .and_then(|mut engine| crate::view::queue_views(&mut engine).ok())
            .unwrap_or_default();
        let mut out = Vec::new();
        for view in &views {
            if only_paused && !view.paused {
                continue;
            }
            let running = view.count(JobState::Processing);
            let waiting = view.waiting();
            let help = format!(
                "{}{running} running, {waiting} waiting",
                if view.paused { "paused; " } else { "" }
            );
            out.push(candidate(&view.name, help));
        }
        if !only_paused {
            for name in self.jobfile_queues() {
                out.push(candidate(name, "declared in the jobfile"));
            }
            out.push(candidate(
                crate::jobfile::DEFAULT_QUEUE,
                "the default queue",
            ));
        }
        unique(out)
    }

    fn config_keys(&self, for_set: bool) -> Vec<CompletionCandidate> {
        let mut out: Vec<CompletionCandidate> = edit::ALIASES
            .iter()
            .map(|(alias, path)| candidate(*alias, format!("the same as {path}")))
            .collect();
        for key in edit::SETTINGS_KEYS {
            out.push(candidate(format!("settings.{key}"), "a setting"));
        }
        let mut queues = vec![crate::jobfile::DEFAULT_QUEUE.to_string()];
        queues.extend(
            self.section("queues")
                .into_iter()
                .flatten()
                .map(|(n, _)| n.clone()),
        );
        for queue in dedup(queues) {
            out.push(candidate(
                format!("queues.{}.workers", key_segment(&queue)),
                format!("the limit of queue {queue}"),
            ));
        }
        for policy in self.policies() {
            for key in edit::RETRY_KEYS {
                out.push(candidate(
                    format!("retry.{}.{key}", key_segment(&policy)),
                    format!("retry policy {policy}"),
                ));
            }
        }
        for (name, def) in self.section("jobs").into_iter().flatten() {
            let written: Vec<&str> = def
                .as_table()
                .map(|t| t.keys().map(String::as_str).collect())
                .unwrap_or_default();
            for key in JOB_KEYS {
                if for_set || written.contains(key) {
                    out.push(candidate(
                        format!("jobs.{}.{key}", key_segment(name)),
                        format!("job {name}"),
                    ));
                }
            }
        }
        unique(out)
    }

    fn config_values(&self, key: &str) -> Vec<CompletionCandidate> {
        let Ok(path) = edit::resolve_key(key) else {
            return Vec::new();
        };
        let fixed = |values: &[&str]| values.iter().map(|v| candidate(*v, "")).collect();
        match (
            path.first().map(String::as_str),
            path.last().map(String::as_str),
        ) {
            (Some("jobs"), Some("retry")) => self
                .policies()
                .into_iter()
                .map(|p| candidate(p, "a retry policy"))
                .collect(),
            (Some("jobs"), Some("queue")) => self.queues(false),
            (_, Some("jitter" | "per_file" | "ignore_files")) => fixed(&["true", "false"]),
            (Some("jobs"), Some("overlap")) => fixed(&["skip", "allow", "replace"]),
            (Some("jobs"), Some("missed")) => fixed(&["run-once", "skip"]),
            (Some("jobs"), Some("on_busy")) => fixed(&["queue", "skip", "restart"]),
            _ => Vec::new(),
        }
    }
}

/// The jobfile as a plain TOML table; None if it cannot be read or parsed.
fn read_table(path: &Path) -> Option<toml::Table> {
    read_regular(path, MAX_JOBFILE_BYTES, "the jobfile")
        .ok()?
        .parse()
        .ok()
}

fn candidate(value: impl Into<OsString>, help: impl Into<String>) -> CompletionCandidate {
    let help = help.into();
    let candidate = CompletionCandidate::new(value);
    if help.is_empty() {
        candidate
    } else {
        candidate.help(Some(help.into()))
    }
}

/// A job: its id, with its state and definition (or command) as help.
fn job_candidate(job: &Job) -> CompletionCandidate {
    let what = job
        .definition
        .clone()
        .unwrap_or_else(|| one_line(&job.command));
    candidate(&job.id, format!("{}: {what}", job.state))
}

fn state_help(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "waiting to run",
        JobState::Processing => "running now",
        JobState::Completed => "exited 0",
        JobState::Failed => "failed, waiting for its retry",
        JobState::Dead => "retries spent: the dead letter queue",
        JobState::Cancelled => "cancelled",
    }
}

/// A command on one short line, for help text.
fn one_line(command: &str) -> String {
    truncate(command, 60)
}

/// A dotted-key segment: bare if TOML allows it, quoted otherwise.
fn key_segment(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        format!("{:?}", name)
    }
}

/// The first candidate of each value, in order.
fn unique(candidates: Vec<CompletionCandidate>) -> Vec<CompletionCandidate> {
    let mut seen = HashSet::new();
    candidates
        .into_iter()
        .filter(|c| seen.insert(c.get_value().to_os_string()))
        .collect()
}

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now_ms;
    use crate::driver::Durability;
    use crate::jobfile::Jobfile;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn values(candidates: &[CompletionCandidate]) -> Vec<String> {
        candidates
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect()
    }

    fn help_of(candidates: &[CompletionCandidate], value: &str) -> String {
        candidates
            .iter()
            .find(|c| c.get_value() == value)
            .and_then(|c| c.get_help())
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// The lookup of `-f DIR/queuectl.toml --db DIR/queue.db`.
    fn lookup(dir: &Path) -> Lookup {
        let jobfile = dir.join("queuectl.toml");
        let db = dir.join("queue.db");
        let argv = [
            OsString::from("queuectl"),
            "-f".into(),
            jobfile.into(),
            "--db".into(),
            db.into(),
            "validate".into(),
        ];
        let cli = crate::cli::Cli::try_parse_from(argv).expect("the flags parse");
        Lookup::new(Some(
            Context::resolve(
                &cli.global,
                crate::output::Colors {
                    stdout: false,
                    stderr: false,
                },
            )
            .expect("a context"),
        ))
    }

    const JOBFILE: &str = "[queues.deploy]\nworkers = 1\n[retry.patient]\nmax_retries = 9\n\
        [jobs.build]\ncommand = \"make\"\ntimeout = \"10m\"\n\
        [jobs.deploy]\ncommand = \"./deploy.sh\"\nqueue = \"deploy\"\nretry = \"patient\"\n";

    #[test]
    fn candidates_come_from_the_jobfile_and_the_queue() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("create", "a temp dir", e))?;
        std::fs::write(dir.path().join("queuectl.toml"), JOBFILE)
            .map_err(|e| Error::io("write", "queuectl.toml", e))?;
        let lookup = lookup(dir.path());
        // Nothing in the queue yet (and no database: it is not made).
        assert_eq!(values(&lookup.job_refs(Want::Any)), Vec::<String>::new());
        assert!(!dir.path().join("queue.db").exists());
        assert_eq!(values(&lookup.definitions(false)), ["build", "deploy"]);

        let mut engine = Engine::open(
            &lookup.context.as_ref().expect("ctx").location,
            Durability::Full,
        )?;
        engine.apply(
            &Jobfile::load(&dir.path().join("queuectl.toml"))?,
            None,
            now_ms(),
            false,
        )?;
        engine.enqueue(&crate::job::input::parse_jobs(
            r#"{"id": "adhoc", "command": "echo hi", "queue": "q2"}
               {"id": "gone", "command": "echo bye"}"#,
        )?)?;
        engine.cancel("gone", now_ms())?;
        engine.set_paused(&["q2".to_string()], true, now_ms())?;

        let any = lookup.job_refs(Want::Any);
        let names = values(&any);
        for expected in ["build", "deploy", "adhoc", "gone"] {
            assert!(
                names.contains(&expected.to_string()),
                "{expected} in {names:?}"
            );
        }
        // Names first, then ids, newest first; three jobs of the jobfile
        // and two of the command line.
        assert_eq!(names[..2], ["build", "deploy"]);
        assert_eq!(names.len(), 2 + 4, "{names:?}");
        assert_eq!(help_of(&any, "adhoc"), "pending: echo hi");
        assert!(
            help_of(&any, "build").contains("pending: make"),
            "{}",
            help_of(&any, "build")
        );
        let unfinished = values(&lookup.job_refs(Want::Unfinished));
        assert!(unfinished.contains(&"adhoc".to_string()), "{unfinished:?}");
        assert!(!unfinished.contains(&"gone".to_string()), "{unfinished:?}");
        assert!(unfinished.contains(&"deploy".to_string()), "{unfinished:?}");
        assert_eq!(values(&lookup.job_refs(Want::Dead)), Vec::<String>::new());

        let queues = lookup.queues(false);
        assert_eq!(values(&queues), ["default", "deploy", "q2"]);
        assert_eq!(help_of(&queues, "q2"), "paused; 0 running, 1 waiting");
        assert_eq!(values(&lookup.queues(true)), ["q2"]);
        assert_eq!(values(&lookup.definitions(true)), ["build", "deploy"]);

        let set = values(&lookup.config_keys(true));
        let get = values(&lookup.config_keys(false));
        for key in [
            "max-retries",
            "settings.lease",
            "queues.default.workers",
            "queues.deploy.workers",
            "retry.patient.backoff_base",
            "jobs.build.command",
            "jobs.build.timeout",
            "jobs.deploy.retry",
        ] {
            assert!(set.contains(&key.to_string()), "{key} in {set:?}");
            assert!(get.contains(&key.to_string()), "{key} in {get:?}");
        }
        // `get` offers what a job sets; `set` every key of a job.
        assert!(set.contains(&"jobs.build.priority".to_string()));
        assert!(!get.contains(&"jobs.build.priority".to_string()));

        assert_eq!(
            values(&lookup.config_values("jobs.deploy.retry")),
            ["default", "patient"]
        );
        assert!(values(&lookup.config_values("jobs.build.queue")).contains(&"deploy".to_string()));
        assert_eq!(values(&lookup.config_values("jitter")), ["true", "false"]);
        assert_eq!(
            values(&lookup.config_values("jobs.build.on_busy")),
            ["queue", "skip", "restart"]
        );
        assert_eq!(
            values(&lookup.config_values("max-retries")),
            Vec::<String>::new()
        );
        assert_eq!(
            values(&lookup.config_values("not a key")),
            Vec::<String>::new()
        );
        Ok(())
    }

    #[test]
    fn a_broken_jobfile_or_queue_gives_fewer_candidates() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("create", "a temp dir", e))?;
        // Invalid as a jobfile (unknown key), readable as TOML: its jobs still count.
        std::fs::write(
            dir.path().join("queuectl.toml"),
            "[jobs.a]\ncomand = \"x\"\n",
        )
        .map_err(|e| Error::io("write", "queuectl.toml", e))?;
        std::fs::write(dir.path().join("queue.db"), "not a database")
            .map_err(|e| Error::io("write", "queue.db", e))?;
        let lookup = lookup(dir.path());
        assert_eq!(values(&lookup.definitions(true)), ["a"]);
        assert_eq!(values(&lookup.job_refs(Want::Any)), Vec::<String>::new());
        assert_eq!(values(&lookup.queues(false)), ["default"]);
        // Not TOML at all: nothing from it.
        std::fs::write(dir.path().join("queuectl.toml"), "[jobs.a\n")
            .map_err(|e| Error::io("write", "queuectl.toml", e))?;
        assert_eq!(
            values(&super::Lookup::new(None).definitions(true)),
            Vec::<String>::new()
        );
        assert_eq!(
            values(&self::lookup(dir.path()).definitions(true)),
            Vec::<String>::new()
        );
        Ok(())
    }

    #[test]
    fn the_keys_are_the_schemas() {
        let schema: serde_json::Value =
            serde_json::from_str(&crate::jobfile::schema()).expect("the schema is JSON");
        let keys = |def: &str| -> Vec<String> {
            let mut keys: Vec<String> = schema["definitions"][def]["properties"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            keys
        };
        let sorted = |keys: &[&str]| -> Vec<String> {
            let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            keys.sort();
            keys
        };
        assert_eq!(keys("JobSpec"), sorted(JOB_KEYS));
        assert_eq!(keys("SettingsSpec"), sorted(edit::SETTINGS_KEYS));
        assert_eq!(keys("RetrySpec"), sorted(edit::RETRY_KEYS));
    }

    #[test]
    fn states_and_finished_states() {
        assert_eq!(
            values(&states()),
            [
                "pending",
                "processing",
                "running",
                "completed",
                "failed",
                "dead",
                "cancelled"
            ]
        );
        assert_eq!(
            values(&finished_states()),
            ["completed", "dead", "cancelled"]
        );
        for state in values(&states()) {
            assert!(state.parse::<JobState>().is_ok(), "{state}");
        }
    }

    #[test]
    fn the_jobfile_and_queue_flags_are_read_from_the_words() {
        let words = os(&[
            "queuectl",
            "-f",
            "x.toml",
            "--json",
            "enqueue",
            "-f",
            "jobs.json",
            "--db",
            "y.db",
            "--queue",
            "",
        ]);
        assert_eq!(
            global_words(&words),
            os(&["-f", "x.toml", "--json", "--db", "y.db"])
        );
        let words = os(&[
            "queuectl",
            "--db=a.db",
            "list",
            "--db=b.db",
            "--",
            "--db",
            "c",
        ]);
        assert_eq!(global_words(&words), os(&["--db=a.db", "--db=b.db"]));
        assert_eq!(
            global_words(&os(&["queuectl", "--js"])),
            Vec::<OsString>::new()
        );
    }

    #[test]
    fn the_key_of_config_set_is_found() {
        let key = |words: &[&str]| config_set_key(&os(words));
        assert_eq!(
            key(&["queuectl", "config", "set", "jobs.a.retry", ""]),
            Some("jobs.a.retry".into())
        );
        assert_eq!(
            key(&["queuectl", "-f", "x", "config", "set", "jitter", "t"]),
            Some("jitter".into())
        );
        assert_eq!(key(&["queuectl", "config", "get", "jitter"]), None);
        assert_eq!(key(&["queuectl", "list", "set", "x"]), None);
    }

    #[test]
    fn the_scripts_register_the_dynamic_completer() -> Result<()> {
        use clap_complete::Shell;
        let bash = registration(Shell::Bash)?;
        assert!(bash.contains("COMPLETE=\"bash\""), "{bash}");
        assert!(
            bash.contains(
                "complete -o nospace -o bashdefault -o nosort -F _clap_complete_queuectl queuectl"
            ),
            "{bash}"
        );
        assert!(registration(Shell::Zsh)?.contains("#compdef queuectl"));
        assert!(
            registration(Shell::Fish)?
                .contains("complete --keep-order --exclusive --command queuectl")
        );
        registration(Shell::Elvish)?;
        registration(Shell::PowerShell)?;
        Ok(())
    }
}
