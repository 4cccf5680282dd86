//! The resolved context of one invocation: which jobfile, which database,
//! how to print. Built once from the global flags, before any command runs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::cli::{ColorChoice, GlobalArgs};
use crate::error::{Error, Result};
use crate::store::{Durability, Store};

/// The jobfile's name, looked for in the current directory and its parents.
pub const JOBFILE_NAME: &str = "queuectl.toml";

/// Everything a command needs to know about where and how it runs.
#[derive(Debug, Clone)]
pub struct Context {
    /// The jobfile, if one was named or found (it may not exist yet).
    pub jobfile: Option<PathBuf>,
    /// The queue database.
    pub db: PathBuf,
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    /// Whether stdout gets ANSI colours.
    pub color: bool,
}

impl Context {
    /// Resolves the global flags against the environment and the file system.
    pub fn resolve(global: &GlobalArgs) -> Result<Context> {
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?;
        let jobfile = match &global.jobfile {
            Some(path) => Some(cwd.join(path)),
            None => find_jobfile(&cwd),
        };
        let db = match &global.db {
            Some(path) => cwd.join(path),
            None => {
                let base = jobfile.as_deref().and_then(Path::parent).unwrap_or(&cwd);
                base.join(".queuectl").join("queue.db")
            }
        };
        Ok(Context {
            jobfile,
            db,
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            color: use_color(global.color),
        })
    }

    /// The database for a command that writes (enqueue, cancel, …): enqueues
    /// through it are durable.
    pub fn store(&self) -> Result<Store> {
        Store::open(&self.db, Durability::Full)
    }

    /// The database for a command that only reads; creates nothing.
    pub fn store_read(&self) -> Result<Store> {
        Store::open_read(&self.db)
    }
}

/// The nearest `queuectl.toml` in `dir` or its parents, as cargo finds
/// Cargo.toml.
pub fn find_jobfile(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join(JOBFILE_NAME))
        .find(|candidate| candidate.is_file())
}

fn use_color(choice: ColorChoice) -> bool {
    let env = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if env("NO_COLOR") {
                false
            } else if env("CLICOLOR_FORCE") {
                true
            } else {
                std::io::stdout().is_terminal()
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        }
    }
}
