//! The SQLite driver: every SQL statement of queuectl and the only user
//! of rusqlite.
//!
//! # Locking and transactions
//!
//! The database is SQLite in WAL mode, so readers never block the writer.
//! Every write is one `BEGIN IMMEDIATE` transaction ([`Driver::write`]):
//! it takes the write lock up front, so two writers queue on
//! `busy_timeout` instead of failing on a lock upgrade; the engine's
//! transitions (enqueue, claim, finish, rescue, apply, a tick) are each
//! one, so a crash leaves every job in a state it had before or after a
//! transition, never between. Reads are one deferred transaction: one
//! snapshot.
//!
//! Enqueue connections use `synchronous=FULL`: once `enqueue` says a job
//! was added, it survives a power cut. Worker connections use `NORMAL`: a
//! lost transition only makes a job run again, which at-least-once allows.
//!
//! # Leases and crashes
//!
//! A claimed job is `processing` with a `runner` (a row of `workers`) and
//! a `lease_until` that the worker's heartbeat extends. A worker that
//! dies leaves its jobs so until another declares it dead (the engine's
//! rescue); a claim or a finish by a runner whose row is gone writes
//! nothing, so a worker declared dead while it lived cannot overwrite the
//! rescuer's history.
//!
//! # Side channels
//!
//! Commits are seen by other processes through inotify on the database's
//! directory and `PRAGMA data_version` ([`feed`]); the owner lock is an
//! flock on `queue.lock` beside `queue.db`.

mod definitions;
mod feed;
mod jobs;
mod migrations;
mod rows;
mod triggers;
mod workers;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::{ChangeFeed, Driver, Durability, Location, Ops, OwnerLock};
use crate::error::{Error, NOTHING_CHANGED, Result};

/// The directory queuectl keeps its state in, beside the jobfile.
pub const STATE_DIR: &str = ".queuectl";

/// How long a writer waits for the lock before reporting the database locked.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whose database a file is (see [`SqliteDriver::owner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Queuectl,
    /// No tables yet: a new (or empty) file.
    Nobody,
}

/// A connection to a SQLite queue.
///
/// The handles [`Driver::connect`] gives for the same durability share
/// this connection (one transaction at a time, behind a mutex): the slots
/// of a worker process keep one page cache between them, which a commit
/// by one of them no longer empties for the others, and queue on a
/// futex, not on SQLite's sleeping busy handler.
#[derive(Debug)]
pub struct SqliteDriver {
    shared: Arc<Mutex<Connection>>,
    location: Location,
    /// Opened by a read command: `connect` gives read connections too.
    read_only: bool,
    durability: Durability,
}

/// The operations, over a connection inside a transaction.
pub(super) struct SqliteOps<'c> {
    pub(super) conn: &'c Connection,
}

impl SqliteDriver {
    /// Opens (creating if needed) the database at `path`, with its
    /// directory (0700, with a `.gitignore` of `*` when queuectl creates
    /// it) and the file itself 0600.
    ///
    /// A file that holds another program's database is refused before
    /// anything is written to it (see [`SqliteDriver::owner`]).
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteDriver> {
        prepare_location(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sqlite_error(path, e))?;
        let driver = SqliteDriver {
            shared: Arc::new(Mutex::new(conn)),
            location: Location::Sqlite(path.to_path_buf()),
            read_only: false,
            durability,
        };
        driver.owner()?;
        driver.setup(durability)
    }

    /// Opens the database for a read command: read-only, so nothing is
    /// created, migrated or switched. A database that does not exist yet,
    /// or is an empty file, reads as an empty queue.
    pub fn open_read(path: &Path) -> Result<SqliteDriver> {
        if path.exists() {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| sqlite_error(path, e))?;
            let driver = SqliteDriver {
                shared: Arc::new(Mutex::new(conn)),
                location: Location::Sqlite(path.to_path_buf()),
                read_only: true,
                durability: Durability::Normal,
            };
            if driver.owner()? == Owner::Queuectl {
                driver
                    .conn()
                    .busy_timeout(BUSY_TIMEOUT)
                    .map_err(|e| sqlite_error(path, e))?;
                driver.check_version(true)?;
                return Ok(driver);
            }
        }
        let conn = Connection::open_in_memory().map_err(|e| sqlite_error(path, e))?;
        SqliteDriver {
            shared: Arc::new(Mutex::new(conn)),
            location: Location::Sqlite(path.to_path_buf()),
            read_only: true,
            durability: Durability::Normal,
        }
        .setup(Durability::Normal)
    }

    /// The connection, for one statement or transaction at a time.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self) -> &Path {
        self.location.file().unwrap_or(Path::new(""))
    }

    /// Whose database this is: queuectl's (its application id, or the
    /// tables of a queuectl made before the id existed), or nobody's yet
    /// (no tables at all). Anything else is another program's, and an
    /// error: queuectl neither writes to it nor switches its journal.
    fn owner(&self) -> Result<Owner> {
        // One read transaction: a snapshot, never half of another
        // process's migration.
        let read = || -> rusqlite::Result<(i32, i64, Vec<String>)> {
            self.conn().execute_batch("BEGIN DEFERRED")?;
            let id = self
                .conn()
                .query_row("PRAGMA application_id", [], |row| row.get(0))?;
            let version = self
                .conn()
                .query_row("PRAGMA user_version", [], |row| row.get(0))?;
            let tables = self
                .conn()
                .prepare(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok((id, version, tables))
        };
        let result = read();
        if !self.conn().is_autocommit() {
            let _ = self.conn().execute_batch("COMMIT");
        }
        let (id, version, tables) = result.map_err(|e| sqlite_error(self.path(), e))?;
        let legacy = id == 0
            && (1..=4).contains(&version)
            && migrations::LEGACY_TABLES
                .iter()
                .all(|t| tables.iter().any(|have| have == t));
        if id == migrations::APPLICATION_ID || legacy {
            return Ok(Owner::Queuectl);
        }
        if id == 0 && tables.is_empty() {
            return Ok(Owner::Nobody);
        }
        let whose = if tables.is_empty() {
            format!("its application id is {id:#x}")
        } else {
            let names: Vec<String> = tables.iter().take(5).map(|t| format!("`{t}`")).collect();
            let more = if tables.len() > 5 { ", …" } else { "" };
            format!(
                "it holds tables of another program ({}{more})",
                names.join(", ")
            )
        };
        Err(Error::Database {
            location: self.location.describe(),
            message: format!("not a queuectl database: {whose}"),
            hint: Some(
                "point --db (or settings.db) at a new file or at a queuectl database; this one was left as it was"
                    .into(),
            ),
        })
    }

    /// Refuses a schema newer than this queuectl; with `read_only`, also
    /// one older (a read command does not migrate).
    fn check_version(&self, read_only: bool) -> Result<usize> {
        let version: usize = self
            .conn()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| sqlite_error(self.path(), e))?;
        self.location
            .check_schema(version, migrations::MIGRATIONS.len(), read_only)?;
        Ok(version)
    }

    fn setup(mut self, durability: Durability) -> Result<SqliteDriver> {
        // Switching a new database to WAL while another process creates it
        // can fail with SQLITE_BUSY at once, without the busy handler
        // (SQLite's deadlock avoidance on a lock upgrade): try again, for
        // as long as the busy timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match self.configure(durability) {
                Err(Failure::Sql(e)) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(Failure::Sql(e)) => return Err(sqlite_error(self.path(), e)),
                Err(Failure::Queuectl(e)) => return Err(self.locate(e)),
                Ok(()) => return Ok(self),
            }
        }
    }

    fn configure(&mut self, durability: Durability) -> std::result::Result<(), Failure> {
        self.conn().busy_timeout(BUSY_TIMEOUT)?;
        // Every statement queuectl runs on a connection stays prepared.
        self.conn().set_prepared_statement_cache_capacity(64);
        // The last connection to close would checkpoint the WAL and delete
        // it (two more fsyncs, and a new WAL on the next open) in every
        // short `queuectl enqueue`; the automatic checkpoint of commits
        // keeps the WAL bounded instead.
        self.conn().set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        // journal_mode answers with a row; it is the first statement that
        // reads the file, so a file that is not SQLite fails here.
        let mode: String = self
            .conn()
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if mode != "wal" && mode != "memory" {
            return Err(Failure::Queuectl(Error::Internal(format!(
                "could not switch the database to WAL mode (got `{mode}`)"
            ))));
        }
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        self.conn().execute_batch(&format!(
            "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
        ))?;
        if durability == Durability::Normal {
            // Worker connections (one per slot) touch a few pages per
            // transaction; SQLite's default 2 MiB cache each is memory an
            // idle pool of 8 does not need.
            self.conn().execute_batch("PRAGMA cache_size = -256;")?;
        }
        self.migrate()
    }

    fn migrate(&mut self) -> std::result::Result<(), Failure> {
        if self.check_version(false).map_err(Failure::Queuectl)? == migrations::MIGRATIONS.len() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let version: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        for (index, sql) in migrations::MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index + 1)?;
        }
        tx.pragma_update(None, "application_id", migrations::APPLICATION_ID)?;
        tx.commit()?;
        Ok(())
    }

    /// Runs `f` between `begin` and COMMIT, or ROLLBACK when it fails.
    /// The three statements are prepared once per connection: a
    /// transaction costs no parsing.
    fn transaction(
        &mut self,
        begin: &str,
        f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>,
    ) -> Result<()> {
        let conn = self.conn();
        conn.prepare_cached(begin)?.execute([])?;
        let done = f(&mut SqliteOps { conn: &conn }).and_then(|()| {
            conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(())
        });
        if done.is_err() && !conn.is_autocommit() {
            let _ = conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut rollback| rollback.execute([]));
        }
        done
    }

    /// A counter that changes whenever another connection commits.
    fn data_version(&self) -> Result<i64> {
        self.conn()
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
            .map_err(|e| sqlite_error(self.path(), e))
    }

    /// Names this database in an error raised without it.
    fn locate(&self, error: Error) -> Error {
        self.location.locate(error)
    }
}

impl Driver for SqliteDriver {
    fn location(&self) -> &Location {
        &self.location
    }

    /// One `BEGIN IMMEDIATE` transaction, committed if `f` returns Ok.
    ///
    /// Writers of this process queue on a mutex first: SQLite's busy
    /// handler makes a writer that finds the lock taken sleep (1 ms, 2 ms,
    /// 5 ms…) instead of waking it when the lock is free, which cost more
    /// than the jobs themselves when worker slots finish and claim jobs at
    /// thousands per second. Other processes still meet the busy handler.
    fn write(&mut self, f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>) -> Result<()> {
        static WRITERS: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = WRITERS.lock().unwrap_or_else(|p| p.into_inner());
        self.transaction("BEGIN IMMEDIATE", f)
            .map_err(|e| self.locate(e))
    }

    fn read(&mut self, f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>) -> Result<()> {
        self.transaction("BEGIN DEFERRED", f)
            .map_err(|e| self.locate(e))
    }

    fn connect(&self, durability: Durability) -> Result<Box<dyn Driver>> {
        if !self.read_only && durability == self.durability {
            return Ok(Box::new(SqliteDriver {
                shared: Arc::clone(&self.shared),
                location: self.location.clone(),
                read_only: false,
                durability,
            }));
        }
        let path = self.path();
        Ok(Box::new(if self.read_only {
            SqliteDriver::open_read(path)?
        } else {
            SqliteDriver::open(path, durability)?
        }))
    }

    fn change_feed(&self) -> Result<Box<dyn ChangeFeed>> {
        let connection = SqliteDriver::open_read(self.path())?;
        Ok(Box::new(feed::SqliteFeed::new(connection)?))
    }

    fn owner_lock(&self, _ttl: Duration) -> Result<Box<dyn OwnerLock>> {
        Ok(Box::new(feed::LockFile::acquire(self.path())?))
    }
}

/// A failure inside the driver: SQLite's, or queuectl's own.
#[derive(Debug)]
enum Failure {
    Sql(rusqlite::Error),
    Queuectl(Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Sql(e)
    }
}

/// Raw SQLite failures become database errors that say what happened and,
/// where the cause is known, the fix; [`SqliteDriver::locate`] names the
/// file at the boundary.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        sqlite_error(Path::new(""), e)
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Turns a SQLite failure into an error that names the file (when known)
/// and, where the cause is known, the fix.
fn sqlite_error(path: &Path, error: rusqlite::Error) -> Error {
    let code = error.sqlite_error_code();
    let (message, hint) = match code {
        Some(ErrorCode::NotADatabase) => (
            "the file is not a SQLite database".to_string(),
            Some(
                "point --db (or QUEUECTL_DB) at a queuectl database, or move the file away".into(),
            ),
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => (
            "the database is locked by another process".to_string(),
            Some(format!(
                "no write lock within {}s: other processes kept it busy (a long transaction, or many writers at once); retry when they are done",
                BUSY_TIMEOUT.as_secs()
            )),
        ),
        Some(ErrorCode::DatabaseCorrupt) => (
            "the database file is corrupt".to_string(),
            Some("restore it from a backup, or move it away to start an empty queue".into()),
        ),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => (
            error.to_string(),
            Some("check that the file and its directory exist and are writable".into()),
        ),
        Some(ErrorCode::DiskFull) => (
            "the disk is full".to_string(),
            Some(format!("free some space; {NOTHING_CHANGED}")),
        ),
        Some(ErrorCode::SystemIoFailure) => (
            format!("a write failed ({error})"),
            Some(format!(
                "the disk may be full or the file too large for its limit; {NOTHING_CHANGED}"
            )),
        ),
        _ => (error.to_string(), None),
    };
    Error::Database {
        location: path.display().to_string(),
        message,
        hint,
    }
}

/// Creates the database's directory (0700, with a `.gitignore` of `*`) and
/// the file (0600) before SQLite opens it, so neither is ever readable by
/// others; SQLite gives its -wal and -shm files the database's mode. A
/// `.queuectl` directory that exists already is queuectl's: one that
/// others may read or write is brought back to 0700.
fn prepare_location(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if dir.file_name() == Some(std::ffi::OsStr::new(STATE_DIR))
        && let Ok(meta) = fs::metadata(dir)
        && meta.is_dir()
        && meta.permissions().mode() & 0o077 != 0
    {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("make private (0700)", dir, e))?;
    }
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("create the database directory", dir, e))?;
    }
    let ignore = dir.join(".gitignore");
    if dir.file_name() == Some(std::ffi::OsStr::new(STATE_DIR)) && !ignore.exists() {
        let mut file = fs::File::create(&ignore).map_err(|e| Error::io("create", &ignore, e))?;
        file.write_all(b"*\n")
            .map_err(|e| Error::io("write", &ignore, e))?;
    }
    if !path.exists() {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("create the database", path, e))?;
    }
    Ok(())
}
