//! Reading files a user names: only regular files (a FIFO would block
//! forever, `/dev/zero` would never end), and at most a size limit, read
//! without ever holding more than that limit in memory.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest jobfile queuectl reads.
pub const MAX_JOBFILE_BYTES: u64 = 16 * 1024 * 1024;
/// The largest file (or stdin) of jobs `enqueue --file` reads.
pub const MAX_JOBS_BYTES: u64 = 64 * 1024 * 1024;

/// A size in words: `16 MiB`.
fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

/// Reads the regular file at `path` as UTF-8, refusing anything else and
/// anything larger than `max` bytes. `what` names the file in errors
/// ("the jobfile").
pub fn read_regular(path: &Path, max: u64, what: &str) -> Result<String> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
    // just below. Regular files ignore the flag.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| Error::io("read", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("read", path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, what));
    }
    if meta.len() > max {
        return Err(too_large(&path.display().to_string(), max));
    }
    read_capped(file, max, &path.display().to_string())
}

/// Reads stdin, at most `max` bytes.
pub fn read_stdin(max: u64) -> Result<String> {
    read_capped(std::io::stdin().lock(), max, "stdin")
}

fn read_capped(reader: impl Read, max: u64, name: &str) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", name, e))?;
    if bytes.len() as u64 > max {
        return Err(too_large(name, max));
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::input(format!(
            "{name}: stream did not contain valid UTF-8 (queuectl reads UTF-8 text)"
        ))
    })
}

fn not_regular(path: &Path, what: &str) -> Error {
    Error::input_with_hint(
        format!("`{}` is not a regular file", path.display()),
        format!(
            "{what} must be a file; to read from a pipe, use `-` for stdin where a command takes it"
        ),
    )
}

fn too_large(name: &str, max: u64) -> Error {
    Error::input_with_hint(
        format!("`{name}` is larger than {}", mib(max)),
        format!("queuectl reads at most {} of it; split it", mib(max)),
    )
}

/// Whether `path` is a regular file (following links) that someone may
/// execute.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What is at `path`, for a file queuectl is told to read: fine when it is
/// a regular file (following links) or absent; an error when it is
/// something else, or a link that leads nowhere (a loop, a dangling link).
pub fn check_file_kind(path: &Path, what: &str) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(true),
        Ok(_) => Err(not_regular(path, what)),
        Err(e) => match std::fs::symlink_metadata(path) {
            Ok(link) if link.file_type().is_symlink() => Err(Error::input_with_hint(
                format!(
                    "`{}` is a symbolic link that cannot be followed ({e})",
                    path.display()
                ),
                "point it at the jobfile, or remove it",
            )),
            _ if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            _ => Err(Error::io("read", path, e)),
        },
    }
}

/// An exclusive lock on the directory of `file`, held until dropped: what
/// serializes read-modify-write edits of a file that is replaced by rename
/// (a lock on the file itself would lock the old inode). Waits for it.
#[derive(Debug)]
pub struct DirLock {
    _dir: std::fs::File,
}

impl DirLock {
    pub fn acquire(file: &Path) -> Result<DirLock> {
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let handle = std::fs::File::open(dir).map_err(|e| Error::io("open", dir, e))?;
        handle.lock().map_err(|e| Error::io("lock", dir, e))?;
        Ok(DirLock { _dir: handle })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let err = |r: Result<String>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            err(read_regular(Path::new("/dev/zero"), 10, "the jobfile")),
            "`/dev/zero` is not a regular file"
        );
        assert_eq!(
            err(read_regular(dir.path(), 10, "the jobfile")),
            format!("`{}` is not a regular file", dir.path().display())
        );
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 3 * 1024 * 1024])?;
        assert_eq!(
            err(read_regular(&big, 2 * 1024 * 1024, "the jobfile")),
            format!("`{}` is larger than 2 MiB", big.display())
        );
        let small = dir.path().join("small");
        std::fs::write(&small, "hello")?;
        assert_eq!(read_regular(&small, 10, "x").ok().as_deref(), Some("hello"));
        Ok(())
    }

    #[test]
    fn kinds_of_paths() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let loop_link = dir.path().join("loop");
        std::os::unix::fs::symlink(&loop_link, &loop_link)?;
        let message = check_file_kind(&loop_link, "x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("is a symbolic link that cannot be followed"),
            "{message}"
        );
        assert!(!check_file_kind(&dir.path().join("absent"), "x").unwrap_or(true));
        assert!(check_file_kind(Path::new("/dev/null"), "x").is_err());
        Ok(())
    }
}
