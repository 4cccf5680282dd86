//! The PostgreSQL schema, as an append-only list of migrations whose
//! count is `schema_version` in `queuectl_meta`. Every table is named
//! `queuectl_*`, so a queue can share a database (or a schema) with an
//! application's tables. The columns are SQLite's (epoch milliseconds,
//! JSON as text), so the two drivers store the same records. Never edit
//! or reorder a shipped migration: add one.

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the whole queue, as SQLite's migrations 1-8 left it, plus the
    // owner lease and the attempts' output.
    r#"
    CREATE TABLE queuectl_jobs (
        id               TEXT PRIMARY KEY,
        command          TEXT NOT NULL,
        definition       TEXT,
        origin           TEXT NOT NULL,
        queue            TEXT NOT NULL,
        priority         BIGINT NOT NULL DEFAULT 0,
        state            TEXT NOT NULL,
        attempts         BIGINT NOT NULL DEFAULT 0,
        runs             BIGINT NOT NULL DEFAULT 0,
        max_retries      BIGINT NOT NULL,
        backoff_base     DOUBLE PRECISION NOT NULL,
        max_delay_ms     BIGINT,
        jitter           BOOLEAN NOT NULL DEFAULT false,
        no_retry_codes   TEXT NOT NULL DEFAULT '[]',
        timeout_ms       BIGINT,
        env              TEXT NOT NULL DEFAULT '[]',
        cwd              TEXT,
        run_at           BIGINT NOT NULL,
        created_at       BIGINT NOT NULL,
        updated_at       BIGINT NOT NULL,
        started_at       BIGINT,
        finished_at      BIGINT,
        exit_code        INTEGER,
        last_error       TEXT,
        runner           BIGINT,
        lease_until      BIGINT,
        cancel_requested BOOLEAN NOT NULL DEFAULT false,
        spec_hash        TEXT,
        source_commit    TEXT,
        reason           TEXT,
        after_deps       TEXT,
        tick_at          BIGINT,
        inputs           TEXT,
        payload          TEXT,
        exclusive        TEXT,
        blocked          BOOLEAN NOT NULL DEFAULT false
    ) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02,
            autovacuum_vacuum_threshold = 500);
    CREATE INDEX queuectl_jobs_ready_by_queue ON queuectl_jobs (queue, priority DESC, run_at, id)
        WHERE state IN ('pending', 'failed') AND NOT blocked;
    CREATE INDEX queuectl_jobs_ready ON queuectl_jobs (priority DESC, run_at, id)
        WHERE state IN ('pending', 'failed') AND NOT blocked;
    CREATE INDEX queuectl_jobs_by_runner ON queuectl_jobs (runner) WHERE state = 'processing';
    CREATE INDEX queuectl_jobs_finished ON queuectl_jobs (state, finished_at)
        WHERE state IN ('completed', 'dead', 'cancelled');
    CREATE INDEX queuectl_jobs_by_definition ON queuectl_jobs (definition, created_at)
        WHERE definition IS NOT NULL;
    CREATE INDEX queuectl_jobs_with_deps ON queuectl_jobs (state) WHERE after_deps IS NOT NULL;
    CREATE UNIQUE INDEX queuectl_jobs_one_per_tick ON queuectl_jobs (definition, tick_at)
        WHERE tick_at IS NOT NULL;
    CREATE INDEX queuectl_jobs_newest ON queuectl_jobs (created_at DESC, id DESC);
    CREATE INDEX queuectl_jobs_exclusive ON queuectl_jobs (exclusive)
        WHERE state = 'processing' AND exclusive IS NOT NULL;
    CREATE INDEX queuectl_jobs_by_state ON queuectl_jobs (state, created_at DESC, id DESC);
    CREATE INDEX queuectl_jobs_dead ON queuectl_jobs (queue, exit_code, finished_at)
        WHERE state = 'dead';

    CREATE TABLE queuectl_attempts (
        job_id       TEXT NOT NULL REFERENCES queuectl_jobs (id) ON DELETE CASCADE,
        run          BIGINT NOT NULL,
        runner       BIGINT,
        started_at   BIGINT NOT NULL,
        finished_at  BIGINT,
        exit_code    INTEGER,
        outcome      TEXT,
        error        TEXT,
        output_bytes BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, run)
    );
    -- An attempt's output (its tail, bounded by log_max_bytes), so `logs`
    -- works from any host; appended to while it runs.
    CREATE TABLE queuectl_outputs (
        job_id TEXT NOT NULL REFERENCES queuectl_jobs (id) ON DELETE CASCADE,
        run    BIGINT NOT NULL,
        bytes  BYTEA NOT NULL,
        PRIMARY KEY (job_id, run)
    );

    -- Heartbeats rewrite an unindexed column: HOT updates.
    CREATE TABLE queuectl_workers (
        id           BIGINT PRIMARY KEY,
        pid          BIGINT NOT NULL,
        host         TEXT NOT NULL,
        process_view TEXT,
        queues       TEXT NOT NULL,
        slots        BIGINT NOT NULL,
        lease_ms     BIGINT NOT NULL DEFAULT 30000,
        started_at   BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        stop         TEXT
    ) WITH (fillfactor = 50);

    CREATE TABLE queuectl_queues (
        name    TEXT PRIMARY KEY,
        workers BIGINT NOT NULL
    );

    CREATE TABLE queuectl_schedules (
        definition TEXT PRIMARY KEY,
        expression TEXT NOT NULL,
        timezone   TEXT NOT NULL,
        last_tick  BIGINT NOT NULL,
        checked_at BIGINT NOT NULL
    );

    CREATE TABLE queuectl_definitions (
        name       TEXT PRIMARY KEY,
        job_id     TEXT NOT NULL,
        state      TEXT NOT NULL,
        reason     TEXT,
        spec_hash  TEXT,
        command    TEXT NOT NULL,
        env        TEXT NOT NULL,
        cwd        TEXT,
        inputs     TEXT,
        removed_at BIGINT,
        updated_at BIGINT NOT NULL
    );

    -- Counts kept, not counted (as SQLite's migration 8).
    CREATE TABLE queuectl_job_counts (
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        code  BIGINT NOT NULL,
        n     BIGINT NOT NULL,
        PRIMARY KEY (queue, state, code)
    );
    CREATE FUNCTION queuectl_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE queuectl_job_counts SET n = n - 1
            WHERE queue = OLD.queue AND state = OLD.state
              AND code = CASE WHEN OLD.state = 'dead' THEN COALESCE(OLD.exit_code, -1) ELSE 0 END;
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            INSERT INTO queuectl_job_counts (queue, state, code, n)
            VALUES (NEW.queue, NEW.state,
                    CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END, 1)
            ON CONFLICT (queue, state, code) DO UPDATE SET n = queuectl_job_counts.n + 1;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER queuectl_jobs_counted AFTER INSERT OR DELETE ON queuectl_jobs
        FOR EACH ROW EXECUTE FUNCTION queuectl_count();
    CREATE TRIGGER queuectl_jobs_counted_moved AFTER UPDATE OF queue, state, exit_code
        ON queuectl_jobs FOR EACH ROW
        WHEN (OLD.queue IS DISTINCT FROM NEW.queue OR OLD.state IS DISTINCT FROM NEW.state
              OR (NEW.state = 'dead' AND OLD.exit_code IS DISTINCT FROM NEW.exit_code))
        EXECUTE FUNCTION queuectl_count();

    -- The one `run` that applies the jobfile and fires triggers: a lease
    -- on the server clock.
    CREATE TABLE queuectl_owner (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        holder     TEXT NOT NULL,
        token      BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    "#,
    // 2: output kept while the attempt runs, for `logs --follow` on
    // another host: how much the job had written when `bytes` was taken
    // (NULL: all of it is in `bytes`).
    r#"
    ALTER TABLE queuectl_outputs ADD COLUMN produced BIGINT;
    "#,
    // 3: paused queues (`queuectl queue pause`), apart from the queues
    // the jobfile declares.
    r#"
    CREATE TABLE queuectl_paused_queues (
        name  TEXT PRIMARY KEY,
        since BIGINT NOT NULL
    );
    "#,
    // 4: what the dashboard shows (SQLite's 11): each attempt's host,
    // failed attempts by when they ended, the ticks a schedule missed.
    r#"
    ALTER TABLE queuectl_attempts ADD COLUMN host TEXT;
    CREATE INDEX queuectl_attempts_failed ON queuectl_attempts (finished_at)
        WHERE outcome IN ('failed', 'timeout', 'lost');
    ALTER TABLE queuectl_schedules ADD COLUMN missed BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE queuectl_schedules ADD COLUMN missed_at BIGINT;
    "#,
];
