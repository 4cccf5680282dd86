//! The schema, as an append-only list of migrations tracked by
//! `PRAGMA user_version`. Never edit or reorder a shipped migration: add one.

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: jobs, their attempts, and the worker processes.
    r#"
    CREATE TABLE jobs (
        id               TEXT PRIMARY KEY NOT NULL,
        command          TEXT NOT NULL,
        definition       TEXT,
        origin           TEXT NOT NULL,
        queue            TEXT NOT NULL,
        priority         INTEGER NOT NULL DEFAULT 0,
        state            TEXT NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        runs             INTEGER NOT NULL DEFAULT 0,
        max_retries      INTEGER NOT NULL,
        backoff_base     REAL NOT NULL,
        max_delay_ms     INTEGER,
        jitter           INTEGER NOT NULL DEFAULT 0,
        no_retry_codes   TEXT NOT NULL DEFAULT '[]',
        timeout_ms       INTEGER,
        env              TEXT NOT NULL DEFAULT '[]',
        cwd              TEXT,
        run_at           INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        started_at       INTEGER,
        finished_at      INTEGER,
        exit_code        INTEGER,
        last_error       TEXT,
        runner           INTEGER,
        lease_until      INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        spec_hash        TEXT,
        source_commit    TEXT,
        reason           TEXT
    ) STRICT;
    -- The claim: best ready job, by priority, then run_at, then id.
    CREATE INDEX jobs_ready_by_queue ON jobs (queue, priority DESC, run_at, id)
        WHERE state IN ('pending', 'failed');
    CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, id)
        WHERE state IN ('pending', 'failed');
    CREATE INDEX jobs_by_runner ON jobs (runner) WHERE state = 'processing';
    CREATE INDEX jobs_by_state ON jobs (state, queue);
    CREATE INDEX jobs_finished ON jobs (state, finished_at)
        WHERE state IN ('completed', 'dead', 'cancelled');
    CREATE INDEX jobs_by_definition ON jobs (definition, created_at)
        WHERE definition IS NOT NULL;

    CREATE TABLE attempts (
        job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        run          INTEGER NOT NULL,
        runner       INTEGER,
        started_at   INTEGER NOT NULL,
        finished_at  INTEGER,
        exit_code    INTEGER,
        outcome      TEXT,
        error        TEXT,
        output_bytes INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, run)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE workers (
        id           INTEGER PRIMARY KEY,
        pid          INTEGER NOT NULL,
        host         TEXT NOT NULL,
        queues       TEXT NOT NULL,
        slots        INTEGER NOT NULL,
        started_at   INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        stop         TEXT
    ) STRICT;
    "#,
    // 2: job dependencies (`after`) and the queues the last apply declared.
    r#"
    ALTER TABLE jobs ADD COLUMN after_deps TEXT;
    CREATE INDEX jobs_with_deps ON jobs (state) WHERE after_deps IS NOT NULL;
    CREATE TABLE queues (
        name    TEXT PRIMARY KEY NOT NULL,
        workers INTEGER NOT NULL
    ) STRICT;
    "#,
    // 3: cron schedules: one job per tick (the tick is a unique key), and
    // each schedule's last tick, so a restart neither repeats nor loses one.
    r#"
    ALTER TABLE jobs ADD COLUMN tick_at INTEGER;
    CREATE UNIQUE INDEX jobs_one_per_tick ON jobs (definition, tick_at)
        WHERE tick_at IS NOT NULL;
    CREATE TABLE schedules (
        definition TEXT PRIMARY KEY NOT NULL,
        expression TEXT NOT NULL,
        timezone   TEXT NOT NULL,
        last_tick  INTEGER NOT NULL,
        checked_at INTEGER NOT NULL
    ) STRICT;
    "#,
    // 4: `list` reads newest first without sorting the whole history.
    r#"
    CREATE INDEX jobs_newest ON jobs (created_at DESC, id DESC);
    "#,
];
