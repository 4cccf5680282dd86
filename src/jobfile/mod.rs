//! The jobfile, `queuectl.toml`: its serde model ([`model`]), its loading
//! and validation ([`validate`]), and the domain types the rest of
//! queuectl uses ([`Jobfile`], [`JobDef`]).
//!
//! Every problem in a file is reported at once, each with the file, line
//! and column of the offending key or value, and a hint where the fix is
//! known ("did you mean `deploy`?").

pub mod edit;
pub mod inputs;
pub mod model;
mod schema;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use model::{Missed, OnBusy, Overlap};
pub use schema::{SCHEMA_ID, schema};
pub use validate::{MAX_WORKERS, did_you_mean, parse};

use crate::error::{Error, Result};
use crate::job::{NewJob, Origin, generate_id};
use crate::retry::RetryPolicy;

/// The queue every jobfile has.
pub const DEFAULT_QUEUE: &str = "default";
/// The retry policy a job gets unless it names another.
pub const DEFAULT_POLICY: &str = "default";
/// How long completed and cancelled jobs are kept, unless `keep_finished` says.
pub const DEFAULT_KEEP_FINISHED: Duration = Duration::from_secs(7 * 24 * 3600);
/// How much output an attempt keeps, unless `log_max_bytes` says.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 1024 * 1024;
/// The debounce of a watch, unless it says.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(300);
/// How long a worker may stay silent before it is declared dead, unless
/// `lease` says.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The shortest lease: heartbeats come ten times a lease.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

/// A validated jobfile.
#[derive(Debug, Clone)]
pub struct Jobfile {
    pub path: PathBuf,
    /// The directory relative paths in it are relative to.
    pub dir: PathBuf,
    pub settings: Settings,
    /// Worker counts by queue; always has [`DEFAULT_QUEUE`].
    pub queues: BTreeMap<String, u32>,
    /// Policies by name; always has [`DEFAULT_POLICY`].
    pub retry: BTreeMap<String, RetryPolicy>,
    pub jobs: BTreeMap<String, JobDef>,
}

/// `[settings]`, with defaults filled in.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database, resolved against the jobfile's directory, if set.
    pub db: Option<PathBuf>,
    pub keep_finished: Duration,
    /// The dead letter queue's cap: at most this many jobs…
    pub dlq_max_jobs: u64,
    /// …none older than this.
    pub dlq_max_age: Duration,
    pub log_max_bytes: u64,
    pub lease: Duration,
    /// The timeout of jobs that set none.
    pub timeout: Option<Duration>,
}

/// One job definition, with defaults filled in and paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDef {
    pub name: String,
    pub command: String,
    pub queue: String,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub priority: i64,
    /// As written: `${VAR}` references stay unresolved.
    pub env: Vec<(String, String)>,
    /// As written, relative to the jobfile's directory ("" for the directory itself).
    pub cwd: String,
    pub after: Vec<String>,
    pub trigger: Trigger,
    /// `sources`: globs of the job's inputs.
    pub sources: Vec<String>,
    /// What `sources` match and a digest of each, once read
    /// ([`Jobfile::read_inputs`]): part of the spec.
    pub inputs: Option<Inputs>,
    /// The line of its `[jobs.NAME]` table in the jobfile (1-based).
    pub line: usize,
}

pub use crate::job::Inputs;

/// What makes a definition run.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// `apply` runs it to completion at its current spec.
    Once,
    /// The scheduler in `run` enqueues it at each tick.
    Schedule(Schedule),
    /// `run` enqueues it when a watched path changes.
    Watch(Watch),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub expression: String,
    /// An IANA name; `None` is local time.
    pub timezone: Option<String>,
    pub overlap: Overlap,
    pub missed: Missed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub paths: Vec<String>,
    pub ignore: Vec<String>,
    pub debounce: Duration,
    pub per_file: bool,
    /// Changes of paths the ignore files ignore do not count.
    pub ignore_files: bool,
    pub on_busy: OnBusy,
}

impl JobDef {
    /// The hash of what the job does: command, environment (as written, so
    /// secrets behind `${VAR}` never enter it), working directory, and the
    /// content of its inputs (`sources`). A change of it makes `apply` run
    /// the job again.
    pub fn spec_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.command.as_bytes());
        hasher.update([0]);
        for (key, value) in &self.env {
            hasher.update(key.as_bytes());
            hasher.update([b'=']);
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
        hasher.update([0]);
        hasher.update(self.cwd.as_bytes());
        // Inputs only where there are sources: the hash of a job without
        // them is what it always was.
        for (path, digest) in self.inputs.iter().flatten() {
            hasher.update([1]);
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update(digest.as_bytes());
        }
        let digest = hasher.finalize();
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// The working directory to run in.
    pub fn resolved_cwd(&self, jobfile_dir: &Path) -> PathBuf {
        jobfile_dir.join(&self.cwd)
    }

    pub fn is_one_shot(&self) -> bool {
        self.trigger == Trigger::Once
    }

    /// A job of this definition, ready to insert.
    pub fn new_job(
        &self,
        jobfile_dir: &Path,
        origin: Origin,
        commit: Option<&str>,
        now: i64,
    ) -> NewJob {
        NewJob {
            id: generate_id(now),
            command: self.command.clone(),
            definition: Some(self.name.clone()),
            origin,
            queue: self.queue.clone(),
            priority: self.priority,
            retry: self.retry.clone(),
            timeout_ms: self.timeout.map(crate::duration::as_millis_i64),
            env: self.env.clone(),
            cwd: Some(self.resolved_cwd(jobfile_dir).display().to_string()),
            run_at: now,
            created_at: now,
            spec_hash: Some(self.spec_hash()),
            source_commit: commit.map(str::to_string),
            after: self.after.clone(),
            tick_at: None,
            inputs: self.inputs.clone(),
            payload: None,
            exclusive: None,
        }
    }
}

/// The git commit of the jobfile, if it is in a git repository: `HEAD`,
/// with `-dirty` when the jobfile has uncommitted changes.
pub fn jobfile_commit(path: &Path) -> Option<String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let git = |args: &[&str]| {
        // A worker's reaper must not take git for an orphan of a job.
        let _own = crate::sys::contain::own_child();
        std::process::Command::new("git")
            .current_dir(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"]).filter(|h| !h.is_empty())?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    let dirty = git(&["status", "--porcelain", "--", &name]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

impl Jobfile {
    /// Reads and validates the jobfile at `path`.
    pub fn load(path: &Path) -> Result<Jobfile> {
        let text = crate::sys::files::read_regular(
            path,
            crate::sys::files::MAX_JOBFILE_BYTES,
            "the jobfile",
        )?;
        parse(&text, path).map_err(Error::Jobfile)
    }

    /// Reads the inputs of every job with `sources` (their digests become
    /// part of its spec). A file that cannot be read is an error naming it.
    pub fn read_inputs(&mut self) -> Result<()> {
        let wanted: Vec<Vec<String>> = self
            .jobs
            .values()
            .filter(|d| !d.sources.is_empty())
            .map(|d| d.sources.clone())
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let found = inputs::read(&self.dir, &wanted)?;
        for (def, inputs) in self
            .jobs
            .values_mut()
            .filter(|d| !d.sources.is_empty())
            .zip(found)
        {
            def.inputs = Some(inputs);
        }
        Ok(())
    }

    /// The policy named `name`, if any.
    pub fn policy(&self, name: &str) -> Option<&RetryPolicy> {
        self.retry.get(name)
    }

    /// The default policy.
    pub fn default_policy(&self) -> RetryPolicy {
        self.retry.get(DEFAULT_POLICY).cloned().unwrap_or_default()
    }
}

/// Everything wrong with a jobfile.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file: PathBuf,
    pub items: Vec<Diagnostic>,
}

/// One problem, at a line and column (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.items.len() > 1 {
            writeln!(f, "{} problems in `{file}`:", self.items.len())?;
        }
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{file}:{}:{}: {}", d.line, d.column, d.message)?;
            if let Some(hint) = &d.hint {
                write!(f, "\n  hint: {hint}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
