//! Attempt output: one file per attempt (`ID.RUN.log`) in the queue's
//! logs directory, written by [`crate::exec`] with its size bounded. This
//! module owns where that directory is ([`Logs::locate`]: beside a
//! database file, else in the state directory), each attempt's path (an
//! id that is not a valid job id names no file), the tail of a failed
//! attempt, following a log as it grows, and removing the logs of deleted
//! jobs.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::driver::Location;
use crate::error::{Error, Result};

/// …read from at most this many bytes at the end of a log.
const TAIL_BYTES: u64 = 8192;

/// The logs of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    dir: PathBuf,
}

impl Logs {
    /// The logs of the queue at `location`: `queue.logs/` beside a
    /// `queue.db` file, or `logs/` in `state_dir` for a database that is
    /// not a file.
    pub fn locate(location: &Location, state_dir: &Path) -> Logs {
        let dir = match location.file() {
            Some(db) => db.with_extension("logs"),
            None => state_dir.join("logs"),
        };
        Logs { dir }
    }

    /// The logs in `dir`.
    pub fn in_dir(dir: PathBuf) -> Logs {
        Logs { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log of run `run` of job `id`; `None` for an id that is not a
    /// valid job id (a row queuectl did not write), which must never name
    /// a file.
    pub fn path(&self, id: &str, run: u32) -> Option<PathBuf> {
        crate::job::validate_id(id).ok()?;
        Some(self.dir.join(format!("{id}.{run}.log")))
    }

    /// [`Logs::path`], or an error saying why there is none.
    pub fn checked_path(&self, id: &str, run: u32) -> Result<PathBuf> {
        self.path(id, run).ok_or_else(|| {
            Error::input(format!(
                "invalid job id `{id}` in the database: it names no log file"
            ))
        })
    }

    /// An attempt's whole output (empty when it wrote none).
    pub fn read(&self, id: &str, run: u32) -> Result<Vec<u8>> {
        let path = self.checked_path(id, run)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// The last `lines` lines of an attempt's output (lossy UTF-8), from
    /// at most 8 KiB of its end; empty when there is none.
    pub fn tail(&self, id: &str, run: u32, lines: usize) -> String {
        self.path(id, run)
            .map(|path| tail_lines(&path, lines))
            .unwrap_or_default()
    }

    /// Deletes the logs of deleted jobs (id, run count); a log already
    /// gone is fine.
    pub fn remove(&self, jobs: &[(String, u32)]) {
        for (id, runs) in jobs {
            for run in 1..=*runs {
                if let Some(path) = self.path(id, run) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// The last `lines` lines of a file (lossy UTF-8), from at most 8 KiB of
/// its end; empty when there is no file.
pub fn tail_lines(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.take(TAIL_BYTES).read_to_end(&mut buf);
    }
    let text = String::from_utf8_lossy(&buf);
    // A read from the middle starts mid-line: drop that partial line.
    let text = if start > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Writes to `out` what `path` gained past `offset`; returns the new
/// offset. A log cut back to its tail (it passed its size limit) is read
/// again from the start. How `logs --follow` streams a running job.
pub fn copy_new(path: &Path, offset: u64, out: &mut dyn Write) -> Result<u64> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("read", path, e))?
        .len();
    let start = if len < offset { 0 } else { offset };
    if len == start {
        return Ok(start);
    }
    let mut buf = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.take(len - start).read_to_end(&mut buf))
        .map_err(|e| Error::io("read", path, e))?;
    match out.write_all(&buf).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(Error::Internal(format!("cannot write the output: {e}")));
        }
        _ => {}
    }
    Ok(start + buf.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_tails_and_removal() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let location = Location::Sqlite(dir.path().join("queue.db"));
        let logs = Logs::locate(&location, dir.path());
        assert_eq!(logs.dir(), dir.path().join("queue.logs"));
        assert_eq!(logs.path("../x", 1), None, "an invalid id names no file");
        let path = logs.path("job", 2).unwrap_or_default();
        assert_eq!(path, dir.path().join("queue.logs/job.2.log"));
        std::fs::create_dir_all(logs.dir())?;
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text)?;
        assert_eq!(logs.tail("job", 2, 2), "line 29\nline 30\n");
        assert_eq!(logs.tail("job", 1, 2), "", "no log, no tail");
        let mut out = Vec::new();
        let offset = copy_new(&path, 0, &mut out).unwrap_or(0);
        assert_eq!((offset, out.len()), (text.len() as u64, text.len()));
        std::fs::write(&path, "cut\n")?;
        let mut again = Vec::new();
        assert_eq!(copy_new(&path, offset, &mut again).unwrap_or(0), 4);
        assert_eq!(again, b"cut\n", "a log cut back is read from the start");
        logs.remove(&[("job".into(), 2)]);
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    fn a_tail_from_the_middle_drops_the_partial_line() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("big.log");
        let mut text = "x".repeat(10_000);
        text.push_str("\nlast\n");
        std::fs::write(&path, &text)?;
        assert_eq!(tail_lines(&path, 5), "last\n");
        Ok(())
    }
}
