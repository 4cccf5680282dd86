//! The PostgreSQL driver: the same queue as SQLite's, on a server that
//! workers on many machines share.
//!
//! # Transactions
//!
//! Every write is one transaction that first takes a transaction-level
//! advisory lock of the queue (`pg_advisory_xact_lock`), so writers run
//! one at a time, as SQLite's `BEGIN IMMEDIATE` makes them: the engine's
//! read-decide-write transitions (a claim under a queue limit, an
//! exclusive key, a cron tick, a cascade) see everything committed before
//! them and nothing commits between their read and their write, on any
//! host. The claim itself still takes its row `FOR UPDATE SKIP LOCKED`.
//! A write holds the lock for its few statements, never while a job
//! runs. Reads are one `REPEATABLE READ READ ONLY` snapshot and take no
//! lock. Worker connections commit with `synchronous_commit = off` (a
//! lost transition only makes a job run again, as SQLite's `NORMAL`);
//! enqueues and commands wait for the flush.
//!
//! # Time
//!
//! Every time decision uses the server's clock: opening a queue measures
//! the offset of this host's clock from the server's (halving the round
//! trip, as pg-boss's timekeeper does) and [`crate::clock::now_ms`] adds
//! it, so hosts whose clocks disagree agree on leases, `run_at`, backoff
//! and ticks. It is measured again every [`RESYNC`].
//!
//! # Side channels
//!
//! Each write transaction ends with a `NOTIFY` on the queue's channel
//! (one per schema) that wakes the change feeds of every host ([`feed`]),
//! with a poll every second behind it; the owner is a lease row on the
//! server clock, renewed by a thread of its holder.

mod feed;
mod jobs;
mod migrations;
mod ops;
mod rows;
#[cfg(test)]
pub mod testing;
pub mod url;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use super::{ChangeFeed, Driver, Durability, Location, Ops, OwnerLock};
use crate::error::{Error, NOTHING_CHANGED, Result};
pub use url::PgUrl;

/// How often a connection measures the server clock's offset again.
pub const RESYNC: Duration = Duration::from_secs(60);

/// One connection and its prepared statements.
pub(super) struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("statements", &self.statements.len())
            .finish()
    }
}

impl PgConn {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Every row of `sql`.
    pub(super) fn rows(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        Ok(self.client.query(&statement, args)?)
    }

    /// The first row of `sql`, if any.
    pub(super) fn row(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }

    /// Runs `sql`, keeping the server's error as it is (for its code).
    pub(super) fn try_exec(
        &mut self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<u64, postgres::Error> {
        let statement = match self.statements.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self.client.prepare(sql)?;
                self.statements.insert(sql.to_string(), statement.clone());
                statement
            }
        };
        self.client.execute(&statement, args)
    }

    /// Runs `sql`; the number of rows it changed.
    pub(super) fn exec(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, args)?)
    }
}

/// A connection to a PostgreSQL queue. Handles of one durability share
/// one connection (one transaction at a time, behind a mutex), as
/// SQLite's do: a worker process's slots use one server connection.
#[derive(Debug)]
pub struct PgDriver {
    shared: Arc<Mutex<PgConn>>,
    location: Location,
    url: PgUrl,
    durability: Durability,
    /// A read connection to a database without queuectl's tables: each
    /// read creates them inside its transaction and rolls back, so the
    /// queue reads as empty and nothing is written.
    schema_missing: bool,
    /// `SELECT pg_notify(…); COMMIT`, for this queue's channel.
    commit_notify: String,
    last_sync: Instant,
}

/// The operations, over a connection inside a transaction.
pub(super) struct PgOps<'c> {
    pub(super) conn: &'c mut PgConn,
}

impl PgDriver {
    /// Connects, creating and migrating the schema if needed.
    pub fn open(url: &PgUrl, durability: Durability) -> Result<PgDriver> {
        let mut driver = PgDriver::connect_to(url, durability)?;
        driver.migrate()?;
        Ok(driver)
    }

    /// Connects for a read command: nothing is created or migrated.
    pub fn open_read(url: &PgUrl) -> Result<PgDriver> {
        let mut driver = PgDriver::connect_to(url, Durability::Normal)?;
        let version = driver.schema_version()?;
        match version {
            None => driver.schema_missing = true,
            Some(v) => driver.check_version(v, true)?,
        }
        Ok(driver)
    }

    /// Connects only to measure the server clock's offset.
    pub fn sync_only(url: &PgUrl) -> Result<()> {
        PgDriver::connect_to(url, Durability::Normal).map(drop)
    }

    fn connect_to(url: &PgUrl, durability: Durability) -> Result<PgDriver> {
        let location = Location::Postgres(url.clone());
        let mut client = connect_client(url)?;
        let setup = match durability {
            Durability::Full => "SET synchronous_commit = on",
            Durability::Normal => "SET synchronous_commit = off",
        };
        client
            .batch_execute(setup)
            .map_err(|e| pg_error(&location, e))?;
        let schema: String = client
            .query_one("SELECT current_schema()::text", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| pg_error(&location, e))?;
        let commit_notify = format!(
            "SELECT pg_notify({}, ''); COMMIT",
            quote_literal(&channel(&schema))
        );
        let mut driver = PgDriver {
            shared: Arc::new(Mutex::new(PgConn {
                client,
                statements: HashMap::new(),
            })),
            location,
            url: url.clone(),
            durability,
            schema_missing: false,
            commit_notify,
            last_sync: Instant::now(),
        };
        driver.sync_clock()?;
        Ok(driver)
    }

    fn conn(&self) -> MutexGuard<'_, PgConn> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Measures the server clock's offset from this host's and makes
    /// [`crate::clock::now_ms`] follow the server.
    fn sync_clock(&mut self) -> Result<()> {
        let before = crate::clock::local_ms();
        let server: i64 = self
            .conn()
            .client
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(|e| pg_error(&self.location, e))?;
        let after = crate::clock::local_ms();
        let local = before + (after - before) / 2;
        crate::clock::set_offset(server.saturating_sub(local));
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The schema version recorded, or None when queuectl's tables are not there.
    fn schema_version(&mut self) -> Result<Option<usize>> {
        let mut conn = self.conn();
        let exists: bool = conn
            .client
            .query_one("SELECT to_regclass('queuectl_meta') IS NOT NULL", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| pg_error(&self.location, e))?;
        if !exists {
            return Ok(None);
        }
        let row = conn
            .client
            .query_opt(
                "SELECT value FROM queuectl_meta WHERE key = 'schema_version'",
                &[],
            )
            .map_err(|e| pg_error(&self.location, e))?;
        let text: Option<String> = match row {
            Some(row) => row.try_get(0).map_err(|e| pg_error(&self.location, e))?,
            None => None,
        };
        Ok(Some(text.and_then(|t| t.parse().ok()).unwrap_or_default()))
    }

    fn check_version(&self, version: usize, read_only: bool) -> Result<()> {
        self.location
            .check_schema(version, migrations::MIGRATIONS.len(), read_only)
    }

    /// Brings the schema to this queuectl's version: one transaction
    /// under an advisory lock, so hosts starting at once migrate once.
    fn migrate(&mut self) -> Result<()> {
        if let Some(version) = self.schema_version()? {
            self.check_version(version, false)?;
            if version == migrations::MIGRATIONS.len() {
                return Ok(());
            }
        }
        let location = self.location.clone();
        let mut conn = self.conn();
        let run = |client: &mut Client| -> std::result::Result<(), postgres::Error> {
            let mut tx = client.transaction()?;
            tx.batch_execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('queuectl:migrate:' || current_schema(), 0)); \
                 CREATE TABLE IF NOT EXISTS queuectl_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            )?;
            let version: usize = tx
                .query_opt(
                    "SELECT value FROM queuectl_meta WHERE key = 'schema_version'",
                    &[],
                )?
                .and_then(|row| row.get::<_, Option<String>>(0))
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            for sql in migrations::MIGRATIONS.iter().skip(version) {
                tx.batch_execute(sql)?;
            }
            let now = migrations::MIGRATIONS.len().max(version).to_string();
            tx.execute(
                "INSERT INTO queuectl_meta (key, value) VALUES ('schema_version', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&now],
            )?;
            tx.commit()
        };
        run(&mut conn.client).map_err(|e| pg_error(&location, e))?;
        drop(conn);
        if let Some(version) = self.schema_version()? {
            self.check_version(version, false)?;
        }
        Ok(())
    }

    fn transaction(
        &mut self,
        write: bool,
        f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>,
    ) -> Result<()> {
        if self.last_sync.elapsed() >= RESYNC {
            self.sync_clock()?;
        }
        let begin = if write {
            "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('queuectl:write:' || current_schema(), 0))"
        } else if self.schema_missing {
            // Read committed: each statement sees what was committed
            // before it began, so the check for the schema after the
            // migration lock sees a migration that held the lock; one
            // snapshot for the whole transaction would be taken before
            // that wait and miss it (and then create its tables again).
            "BEGIN ISOLATION LEVEL READ COMMITTED"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        };
        let end = if write {
            self.commit_notify.clone()
        } else if self.schema_missing {
            "ROLLBACK".to_string()
        } else {
            "COMMIT".to_string()
        };
        let schema_missing = self.schema_missing;
        // The guard is held from BEGIN to COMMIT: the handles of a
        // process share this session, one transaction at a time.
        let mut conn = self.conn();
        if let Err(e) = conn.client.batch_execute(begin) {
            // A session the server ended (a restart, a proxy, an admin)
            // or a dropped network: nothing of this transaction ran, so
            // begin it again on a new session, once.
            if !(e.is_closed() || e.code() == Some(&SqlState::ADMIN_SHUTDOWN)) {
                return Err(e.into());
            }
            *conn = fresh_session(&self.url, self.durability)?;
            conn.client.batch_execute(begin)?;
        }
        let mut body = || -> Result<()> {
            if schema_missing && !write {
                // The tables, made inside this transaction and rolled
                // back with it: an empty queue to read, nothing written.
                conn.client.batch_execute(
                    "SET LOCAL client_min_messages = warning; \
                     SELECT pg_advisory_xact_lock(hashtextextended('queuectl:migrate:' || current_schema(), 0)); \
                     CREATE TABLE IF NOT EXISTS queuectl_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                )?;
                let present = conn
                    .client
                    .query_opt(
                        "SELECT 1 FROM queuectl_meta WHERE key = 'schema_version'",
                        &[],
                    )?
                    .is_some();
                if !present {
                    for sql in migrations::MIGRATIONS {
                        conn.client.batch_execute(sql)?;
                    }
                }
                // Statements prepared against tables of this transaction
                // must not outlive it.
                conn.statements.clear();
            }
            f(&mut PgOps { conn: &mut conn })?;
            conn.client.batch_execute(&end)?;
            Ok(())
        };
        let done = body();
        if done.is_err() && !conn.client.is_closed() {
            let _ = conn.client.batch_execute("ROLLBACK");
        }
        if schema_missing {
            conn.statements.clear();
        }
        done
    }

    /// Names this queue in an error raised without it.
    fn locate(&self, error: Error) -> Error {
        self.location.locate(error)
    }
}

impl Driver for PgDriver {
    fn location(&self) -> &Location {
        &self.location
    }

    fn write(&mut self, f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>) -> Result<()> {
        if self.schema_missing {
            return Err(Error::Internal(
                "a write through a read-only connection".into(),
            ));
        }
        self.transaction(true, f).map_err(|e| self.locate(e))
    }

    fn read(&mut self, f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>) -> Result<()> {
        self.transaction(false, f).map_err(|e| self.locate(e))
    }

    fn connect(&self, durability: Durability) -> Result<Box<dyn Driver>> {
        if durability == self.durability && !self.schema_missing {
            return Ok(Box::new(PgDriver {
                shared: Arc::clone(&self.shared),
                location: self.location.clone(),
                url: self.url.clone(),
                durability,
                schema_missing: false,
                commit_notify: self.commit_notify.clone(),
                last_sync: self.last_sync,
            }));
        }
        Ok(Box::new(if self.schema_missing {
            PgDriver::open_read(&self.url)?
        } else {
            PgDriver::connect_to(&self.url, durability)?
        }))
    }

    fn change_feed(&self) -> Result<Box<dyn ChangeFeed>> {
        Ok(Box::new(feed::PgFeed::new(&self.url)?))
    }

    fn owner_lock(&self, ttl: Duration) -> Result<Box<dyn OwnerLock>> {
        Ok(Box::new(feed::OwnerLease::acquire(&self.url, ttl)?))
    }

    fn keeps_output(&self) -> bool {
        true
    }
}

/// A new session to `url`, set up as [`PgDriver`]'s are.
fn fresh_session(url: &PgUrl, durability: Durability) -> Result<PgConn> {
    let fresh = PgDriver::connect_to(url, durability)?;
    Arc::try_unwrap(fresh.shared)
        .map_err(|_| Error::Internal("a fresh connection is shared".into()))
        .map(|shared| shared.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// The NOTIFY channel of the queue in `schema`.
fn channel(schema: &str) -> String {
    format!("queuectl:{schema}")
}

/// `text` as an SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `text` as an SQL identifier.
pub(super) fn quote_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A client connected to `url`, with TLS as its `sslmode` says; a
/// failure is one clear error naming the server (never the password).
pub(super) fn connect_client(url: &PgUrl) -> Result<Client> {
    let location = Location::Postgres(url.clone());
    let config = url.config();
    let result = match url.ssl {
        url::SslMode::Disable => config.connect(postgres::NoTls),
        _ => config.connect(tls_connector(url)?),
    };
    result.map_err(|e| connect_error(&location, url, e))
}

fn tls_connector(url: &PgUrl) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &url.root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::input_with_hint(
                        format!("cannot read sslrootcert `{}`: {e}", path.display()),
                        "point sslrootcert at a PEM file of the server's CA certificates",
                    )
                })?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    Error::input(format!(
                        "sslrootcert `{}` holds a certificate rustls refuses: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if url.ssl == url::SslMode::Prefer && url.root_cert.is_none() {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(EncryptOnly(algorithms)));
    }
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `sslmode=prefer` (the default) without `sslrootcert`: encrypt when the
/// server offers TLS, whoever signed its certificate, as libpq does. A
/// server with a self-signed certificate (Debian's default) then works
/// with a plain URL; `prefer` cannot stop an attacker anyway (one who can
/// answer for the server can decline TLS), `require` and `verify-*` verify.
/// The handshake's signatures are still checked.
#[derive(Debug)]
struct EncryptOnly(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A connection that failed: refused, unknown host, wrong password,
/// missing database, TLS.
fn connect_error(location: &Location, url: &PgUrl, error: postgres::Error) -> Error {
    let database = |message: String, hint: &str| Error::Database {
        location: location.describe(),
        message,
        hint: Some(hint.to_string()),
    };
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return database(
                format!("the server refused user `{}`: {}", url.user, db.message()),
                "check the user and the password (in the URL, PGPASSWORD or ~/.pgpass)",
            );
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return database(
                format!("database `{}` does not exist", url.dbname),
                &format!(
                    "create it (`createdb {}`), or name another in the URL",
                    url.dbname
                ),
            );
        }
        return database(db.message().to_string(), "check the URL and the server");
    }
    let text = error.to_string();
    let chain = source_chain(&error);
    if chain.contains("password missing") {
        return database(
            format!(
                "the server wants a password for user `{}` and none was given",
                url.user
            ),
            "put it in the URL, in PGPASSWORD, or in ~/.pgpass",
        );
    }
    if chain.contains("certificate") || chain.contains("tls") || chain.contains("TLS") {
        return database(
            format!("TLS with the server failed: {chain}"),
            "give the server's CA with sslrootcert=PATH, or sslmode=disable on a trusted network",
        );
    }
    if chain.contains("Connection refused") {
        return database(
            format!("no server accepts connections at {}:{}", url.host, url.port),
            "is PostgreSQL running there? check the host and port in the URL",
        );
    }
    if chain.contains("failed to lookup address") || chain.contains("Name or service not known") {
        return database(
            format!("unknown host `{}`", url.host),
            "check the host in the URL",
        );
    }
    if chain.contains("timed out") || chain.contains("timeout") {
        return database(
            format!(
                "no answer from {}:{} within {}s",
                url.host,
                url.port,
                url.connect_timeout.as_secs()
            ),
            "check the host, the port and the firewall; connect_timeout=N waits longer",
        );
    }
    database(
        format!(
            "cannot connect: {text}{}",
            if chain == text {
                String::new()
            } else {
                format!(" ({chain})")
            }
        ),
        "check the URL and the server",
    )
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A server failure inside a transaction: what happened and, where the
/// cause is known, the fix; [`PgDriver::locate`] names the queue.
impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        server_error(String::new(), e)
    }
}

fn pg_error(location: &Location, error: postgres::Error) -> Error {
    server_error(location.describe(), error)
}

fn server_error(location: String, error: postgres::Error) -> Error {
    let (message, hint) = match error.as_db_error() {
        Some(db) => match *db.code() {
            SqlState::DISK_FULL => (
                "the server's disk is full".to_string(),
                Some(format!("free some space on the server; {NOTHING_CHANGED}")),
            ),
            SqlState::INSUFFICIENT_PRIVILEGE => (
                db.message().to_string(),
                Some("grant the user CREATE on the schema, or use a user that owns it".into()),
            ),
            SqlState::ADMIN_SHUTDOWN | SqlState::CRASH_SHUTDOWN => (
                format!("the server is shutting down: {}", db.message()),
                Some(format!("retry when it is back; {NOTHING_CHANGED}")),
            ),
            _ => (format!("{} ({})", db.message(), db.code().code()), None),
        },
        None if error.is_closed() => (
            "the connection to the server was lost".to_string(),
            Some(format!(
                "retry when the server is reachable; {NOTHING_CHANGED}"
            )),
        ),
        None => (source_chain(&error), None),
    };
    Error::Database {
        location,
        message,
        hint,
    }
}
