//! The resolved context of one invocation: which jobfile, which database,
//! how to print. Built once from the global flags, before any command runs.

use std::path::{Path, PathBuf};

use crate::cli::GlobalArgs;
use crate::driver::postgres::{PgUrl, url};
use crate::driver::{Durability, Location};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::jobfile::Jobfile;
use crate::logs::Logs;
use crate::output::Colors;
use crate::sys::files::{MAX_JOBFILE_BYTES, check_file_kind, read_regular};

/// The jobfile's name, looked for in the current directory and its parents.
pub const JOBFILE_NAME: &str = "queuectl.toml";

/// Everything a command needs to know about where and how it runs.
#[derive(Debug, Clone)]
pub struct Context {
    /// The jobfile, if one was named or found (it may not exist yet).
    pub jobfile: Option<PathBuf>,
    /// Where the queue's data lives.
    pub location: Location,
    /// Where its attempts' output lives.
    pub logs: Logs,
    /// queuectl's own files beside the queue (the background worker's log).
    pub state_dir: PathBuf,
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    /// Whether stdout gets ANSI colours.
    pub color: bool,
    /// Whether stderr gets them (errors, the progress bars): decided on
    /// its own, as it may be a terminal when stdout is not, or not when
    /// stdout is.
    pub color_err: bool,
}

impl Context {
    /// Resolves the global flags against the environment and the file
    /// system; `colors` were decided from `--color` at the start.
    pub fn resolve(global: &GlobalArgs, colors: Colors) -> Result<Context> {
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?;
        let jobfile = match &global.jobfile {
            Some(path) => Some(cwd.join(path)),
            None => find_jobfile(&cwd)?,
        };
        if let Some(path) = &jobfile {
            // A FIFO, a device or a link to nowhere is refused here, before
            // anything reads it (a FIFO would block every command).
            check_file_kind(path, "the jobfile")?;
        }
        let named = match (&global.db, jobfile.as_deref()) {
            (Some(db), _) => Some(db.clone()),
            (None, Some(jobfile)) => settings_db(jobfile),
            (None, None) => None,
        };
        let location = match named.as_deref().and_then(Path::to_str) {
            Some(text) if url::is_url(text) => Location::Postgres(PgUrl::parse(text)?),
            Some(text) if text.contains("://") => {
                return Err(Error::input_with_hint(
                    format!(
                        "`{}` is neither a file path nor a postgres:// URL",
                        text.split_once('@').map_or(text, |(_, host)| host)
                    ),
                    "give a SQLite file path, or postgres://USER@HOST/DATABASE",
                ));
            }
            _ => Location::Sqlite(match (&global.db, jobfile.as_deref()) {
                (Some(path), _) => cwd.join(path),
                (None, Some(jobfile)) => {
                    let base = jobfile.parent().unwrap_or(&cwd);
                    base.join(named.unwrap_or_else(|| PathBuf::from(".queuectl/queue.db")))
                }
                // Outside any repository: the user's queue, the same from every
                // directory (as pueue's), in the XDG data directory.
                (None, None) => user_queue().unwrap_or_else(|| cwd.join(".queuectl/queue.db")),
            }),
        };
        // The state directory: `.queuectl` beside the jobfile, or the
        // user's queue directory; a database file keeps its logs beside it.
        let state_dir = location.file().and_then(Path::parent).map_or_else(
            || {
                jobfile
                    .as_deref()
                    .and_then(Path::parent)
                    .unwrap_or(&cwd)
                    .join(".queuectl")
            },
            Path::to_path_buf,
        );
        let logs = Logs::locate(&location, &state_dir);
        Ok(Context {
            jobfile,
            location,
            logs,
            state_dir,
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            color: colors.stdout,
            color_err: colors.stderr,
        })
    }

    /// The queue for a command that writes (enqueue, cancel, …): enqueues
    /// through it are durable.
    pub fn engine(&self) -> Result<Engine> {
        Engine::open(&self.location, Durability::Full)
    }

    /// The queue for a command that only reads; creates nothing.
    pub fn engine_read(&self) -> Result<Engine> {
        Engine::open_read(&self.location)
    }

    /// The jobfile, validated, if there is one. A jobfile that does not
    /// validate is an error: it is the configuration.
    pub fn jobfile(&self) -> Result<Option<Jobfile>> {
        match &self.jobfile {
            Some(path) if path.exists() => Jobfile::load(path).map(Some),
            _ => Ok(None),
        }
    }

    /// The jobfile, which this command cannot do without.
    pub fn require_jobfile(&self) -> Result<Jobfile> {
        match &self.jobfile {
            Some(path) if path.exists() => Jobfile::load(path),
            Some(path) => Err(Error::input_with_hint(
                format!("no jobfile at `{}`", path.display()),
                "create one with `queuectl init`",
            )),
            None => Err(Error::input_with_hint(
                format!(
                    "no {JOBFILE_NAME} in `{}` or its parents",
                    std::env::current_dir().unwrap_or_default().display()
                ),
                "create one with `queuectl init`, or name one with -f",
            )),
        }
    }

    /// Where the jobfile is or would be: the one found or named, else
    /// `queuectl.toml` in the current directory.
    pub fn jobfile_path(&self) -> PathBuf {
        self.jobfile.clone().unwrap_or_else(|| {
            std::env::current_dir()
                .unwrap_or_default()
                .join(JOBFILE_NAME)
        })
    }
}

/// The user's queue: `$XDG_DATA_HOME/queuectl/queue.db`, else
/// `~/.local/share/queuectl/queue.db`.
fn user_queue() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let data = non_empty("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share")))?;
    Some(data.join("queuectl").join("queue.db"))
}

/// `settings.db` of a jobfile, read leniently: a jobfile that does not
/// validate still says where its queue is, so `list` and `status` work
/// while it is being fixed.
fn settings_db(jobfile: &Path) -> Option<PathBuf> {
    let text = read_regular(jobfile, MAX_JOBFILE_BYTES, "the jobfile").ok()?;
    let table: toml::Table = text.parse().ok()?;
    let db = table.get("settings")?.get("db")?.as_str()?;
    Some(PathBuf::from(db))
}

/// The nearest `queuectl.toml` in `dir` or its parents, as cargo finds
/// Cargo.toml. One that is there but cannot be read as a file (a link
/// loop, a directory) is an error, not "no jobfile".
pub fn find_jobfile(dir: &Path) -> Result<Option<PathBuf>> {
    for candidate in dir.ancestors().map(|d| d.join(JOBFILE_NAME)) {
        if check_file_kind(&candidate, "the jobfile")? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}
