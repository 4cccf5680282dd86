//! Attempt output: one file per attempt (`ID.RUN.log`) in the queue's
//! logs directory, written through [`BoundedLog`] (which keeps the tail)
//! as [`crate::exec`] reads the job's output. This module owns where that
//! directory is ([`Logs::locate`]: beside a
//! database file, else in the state directory), each attempt's path (an
//! id that is not a valid job id names no file), the tail of a failed
//! attempt, following a job's output as it is written ([`follow`], for
//! `logs --follow` and the dashboard's job pages), and removing the logs
//! of deleted jobs.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::driver::Location;
use crate::error::{Error, Result};
use crate::job::{Job, JobState};

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

/// An attempt's log file that keeps only the last `max` bytes. The file is
/// created on the first byte (a quiet job leaves no file) with mode 0600.
/// While the job runs the file may hold up to twice `max`; it is cut back to
/// the tail whenever it passes that, and once more at the end, with a first
/// line saying how much was dropped.
#[derive(Debug)]
pub struct BoundedLog {
    path: PathBuf,
    max: u64,
    file: Option<File>,
    len: u64,
    dropped: u64,
    produced: u64,
    error: Option<String>,
}

impl BoundedLog {
    pub fn new(path: PathBuf, max: u64) -> BoundedLog {
        BoundedLog {
            path,
            max,
            file: None,
            len: 0,
            dropped: 0,
            produced: 0,
            error: None,
        }
    }

    /// Appends output; a failure to write stops the log, not the job.
    pub fn write(&mut self, data: &[u8]) {
        self.produced += data.len() as u64;
        if self.error.is_some() {
            self.dropped += data.len() as u64;
            return;
        }
        if let Err(e) = self.try_write(data) {
            self.error = Some(format!(
                "output not kept: cannot write `{}`: {e}",
                self.path.display()
            ));
            self.dropped += data.len() as u64;
        }
    }

    fn try_write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.max == 0 {
            self.dropped += data.len() as u64;
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(create_log(&self.path)?),
        };
        file.write_all(data)?;
        self.len += data.len() as u64;
        if self.len > self.max.saturating_mul(2) {
            self.keep_tail(None)?;
        }
        Ok(())
    }

    /// Cuts the file to its last `max` bytes, behind `header` if given.
    fn keep_tail(&mut self, header: Option<&str>) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let keep = self.len.min(self.max);
        let mut tail = vec![0u8; keep as usize];
        file.seek(SeekFrom::Start(self.len - keep))?;
        file.read_exact(&mut tail)?;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        if let Some(header) = header {
            file.write_all(header.as_bytes())?;
        }
        file.write_all(&tail)?;
        self.dropped += self.len - keep;
        self.len = keep + header.map_or(0, |h| h.len() as u64);
        Ok(())
    }

    /// Finishes the log; returns why output was lost, if it was.
    pub fn finish(&mut self) -> Option<String> {
        if self.error.is_none() && (self.len > self.max || self.dropped > 0) && self.file.is_some()
        {
            let dropped = self.dropped + self.len.saturating_sub(self.max);
            let header = dropped_note(dropped);
            if let Err(e) = self.keep_tail(Some(&header)) {
                self.error = Some(format!("cannot trim `{}`: {e}", self.path.display()));
            }
        }
        self.file = None;
        self.error.clone()
    }

    /// Every byte the job wrote, kept or not.
    pub fn total(&self) -> u64 {
        self.produced
    }

    /// The bytes the job wrote that the log does not keep: those before
    /// its tail, or every byte since writing it failed.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The line a log starts with when it dropped the first `n` bytes of an
/// attempt's output to keep its tail.
pub fn dropped_note(n: u64) -> String {
    format!("[queuectl: {n} earlier bytes of output were dropped]\n")
}

fn create_log(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.is_dir()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
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

/// An attempt's output: from the database where it keeps output (any
/// host's attempts), else, or while it runs here, from the logs directory.
pub fn read_output(
    logs: &Logs,
    engine: &mut crate::engine::Engine,
    id: &str,
    run: u32,
) -> Result<Vec<u8>> {
    if engine.keeps_output()
        && let Some(output) = engine.output(id, run)?
    {
        let mut bytes = match output.dropped() {
            0 => Vec::new(),
            dropped => dropped_note(dropped).into_bytes(),
        };
        bytes.extend_from_slice(&output.bytes);
        return Ok(bytes);
    }
    logs.read(id, run)
}

/// How often [`follow`] looks for new output.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Where [`follow`] sends what it finds: the output as it is written
/// (through `Write`), where each attempt's output begins, and the end.
pub trait Follower: Write {
    /// The output of attempt `run` comes next, from its start; `first`
    /// for the first attempt followed.
    fn attempt(&mut self, run: u32, first: bool) -> Result<()>;

    /// The job as it was just read, at each look for new output: false
    /// stops following (nobody reads any more).
    fn looked(&mut self, _job: &Job) -> bool {
        true
    }

    /// The job ended (with an attempt given: that attempt did).
    fn end(&mut self, job: &Job) -> Result<()>;
}

/// Follows job `id`'s output as it is written, every [`FOLLOW_POLL`]:
/// attempt `attempt`'s, or the latest attempt's and then each retry's,
/// until the job (or that attempt) ends or `out` stops it. Each look takes
/// what is new from this host's log while it has one, else from the
/// database, which keeps the output of an attempt running on another host
/// as it goes (see [`crate::exec::LIVE_EVERY`]).
pub fn follow(
    logs: &Logs,
    engine: &mut crate::engine::Engine,
    id: &str,
    attempt: Option<u32>,
    out: &mut impl Follower,
) -> Result<()> {
    let mut job = engine.job(id)?;
    let mut run = attempt.unwrap_or(job.runs.max(1));
    let mut shown = 0u64;
    out.attempt(run, true)?;
    loop {
        shown = show_new(logs, engine, &job.id, run, shown, out)?;
        job = engine.job(id)?;
        if !out.looked(&job) {
            return Ok(());
        }
        if attempt.is_none() && job.runs > run {
            show_new(logs, engine, &job.id, run, shown, out)?;
            run = job.runs;
            shown = 0;
            out.attempt(run, false)?;
            continue;
        }
        // A finished job has no more output: also one that ended before
        // it reached the attempt followed (cancelled while it waited).
        let run_over = job.runs >= run && !(job.state == JobState::Processing && job.runs == run);
        if job.state.is_finished() || (attempt.is_some() && run_over) {
            show_new(logs, engine, &job.id, run, shown, out)?;
            return out.end(&job);
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Writes what is new of an attempt's output past the `shown` bytes
/// already written (see [`follow`]); returns how much is written now.
fn show_new(
    logs: &Logs,
    engine: &mut crate::engine::Engine,
    id: &str,
    run: u32,
    shown: u64,
    out: &mut dyn Write,
) -> Result<u64> {
    let path = logs.checked_path(id, run)?;
    if path.exists() || !engine.keeps_output() {
        return copy_new(&path, shown, out);
    }
    let Some(output) = engine.output(id, run)? else {
        return Ok(shown);
    };
    let (missed, unseen) = output.unseen(shown);
    let note = if missed > 0 {
        dropped_note(missed)
    } else {
        String::new()
    };
    if !unseen.is_empty() || !note.is_empty() {
        out.write_all(note.as_bytes())
            .and_then(|()| out.write_all(unseen))
            .and_then(|()| out.flush())
            .map_err(|e| Error::Internal(format!("cannot write the output: {e}")))?;
    }
    Ok(shown.max(output.produced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_log_keeps_the_tail() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("logs/x.1.log");
        let mut log = BoundedLog::new(path.clone(), 10);
        for chunk in [
            b"0123456789".as_slice(),
            b"abcdefghij",
            b"KLMNOPQRST",
            b"uvw",
        ] {
            log.write(chunk);
        }
        assert_eq!(log.finish(), None);
        assert_eq!(log.total(), 33);
        let text = fs::read_to_string(&path)?;
        assert_eq!(
            text,
            "[queuectl: 23 earlier bytes of output were dropped]\nNOPQRSTuvw"
        );
        Ok(())
    }

    #[test]
    fn a_quiet_job_leaves_no_log() {
        let dir = tempfile::tempdir().ok();
        let path = dir
            .as_ref()
            .map(|d| d.path().join("x.1.log"))
            .unwrap_or_default();
        let mut log = BoundedLog::new(path.clone(), 10);
        assert_eq!(log.finish(), None);
        assert!(!path.exists());
    }

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
