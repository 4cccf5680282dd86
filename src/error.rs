//! Errors and the exit codes they map to.
//!
//! Every failure a user can cause (bad input, a bad jobfile, an unknown id, a
//! database that is locked or not a database) is [`Error`] with exit code
//! [`EXIT_USAGE`]. Failed *jobs* are not errors: `run --until-idle` and
//! `worker start --until-idle` report them with [`EXIT_JOBS_FAILED`].

use std::path::PathBuf;

/// Everything went as asked.
pub const EXIT_OK: u8 = 0;
/// The command worked, but some jobs it ran ended dead.
pub const EXIT_JOBS_FAILED: u8 = 1;
/// Usage, configuration or input error; nothing was changed.
pub const EXIT_USAGE: u8 = 2;
/// queuectl itself failed (a bug, or the machine refused something).
pub const EXIT_INTERNAL: u8 = 3;
/// `wait --timeout`: the job had not ended in time (as timeout(1) says).
pub const EXIT_TIMED_OUT: u8 = 124;
/// Stopped by SIGINT (128 + 2), as shells report it.
pub const EXIT_SIGINT: u8 = 130;
/// Stopped by SIGTERM (128 + 15).
pub const EXIT_SIGTERM: u8 = 143;

/// How the hints of a failed single write end: true of a command, which
/// writes once; a worker says otherwise ([`Error::after_work`]).
pub const NOTHING_CHANGED: &str = "nothing was changed";

/// A failure of a queuectl command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input (an argument, a JSON job, a flag value) is not acceptable.
    #[error("{message}")]
    Input {
        message: String,
        hint: Option<String>,
    },
    /// The jobfile does not parse or validate; every problem, with positions.
    #[error("{0}")]
    Jobfile(crate::jobfile::Diagnostics),
    /// No job has this id.
    #[error("unknown job `{0}`")]
    UnknownJob(String),
    /// The database cannot be opened or used. `location` names it (a
    /// path, or a URL without its password); a driver fills it in.
    #[error("cannot use database `{location}`: {message}")]
    Database {
        location: String,
        message: String,
        hint: Option<String>,
    },
    /// A file or directory queuectl needs cannot be read or written.
    #[error("cannot {action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something that should not happen: a bug or an unexpected system failure.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// An input error without a hint.
    pub fn input(message: impl Into<String>) -> Self {
        Error::Input {
            message: message.into(),
            hint: None,
        }
    }

    /// An input error with a `hint:` telling the user how to fix it.
    pub fn input_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Input {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// An I/O failure on `path` while doing `action` ("create", "read", …).
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The same error, met by a process that had already done work (a
    /// worker): a hint that nothing was changed would be false; the write
    /// that failed was rolled back, and what was recorded before it stands.
    pub fn after_work(self) -> Self {
        match self {
            Error::Database {
                location,
                message,
                hint: Some(hint),
            } => Error::Database {
                location,
                message,
                hint: Some(hint.replace(
                    NOTHING_CHANGED,
                    "the write that failed was rolled back; what was recorded before it stands",
                )),
            },
            other => other,
        }
    }

    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input { .. }
            | Error::Jobfile(_)
            | Error::UnknownJob(_)
            | Error::Database { .. }
            | Error::Io { .. } => EXIT_USAGE,
            Error::Internal(_) => EXIT_INTERNAL,
        }
    }

    /// The fix, if one is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Input { hint, .. } | Error::Database { hint, .. } => hint.clone(),
            Error::UnknownJob(_) => Some(
                "`queuectl list` shows the jobs, with their ids and names; a name means its latest run"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The result of a queuectl operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
