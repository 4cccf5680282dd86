//! The schema, as an append-only list of migrations tracked by
//! `PRAGMA user_version`. Never edit or reorder a shipped migration: add one.
//! (Migrations 5 and 6 created triggers that migration 7 drops: the
//! driver keeps `definitions` current itself.)

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
    // 5: what each definition last did, kept when its jobs are pruned: the
    // latest job, its state and spec (so "already ran at this spec" and a
    // dependency's "latest run completed" outlive the job rows), and
    // whether the jobfile still declares it. Triggers keep it current in
    // the transaction of every insert and state change. And who a worker
    // is: the processes it can see, and its lease.
    r#"
    CREATE TABLE definitions (
        name       TEXT PRIMARY KEY NOT NULL,
        job_id     TEXT NOT NULL,
        state      TEXT NOT NULL,
        reason     TEXT,
        spec_hash  TEXT,
        command    TEXT NOT NULL,
        env        TEXT NOT NULL,
        cwd        TEXT,
        removed_at INTEGER,
        updated_at INTEGER NOT NULL
    ) STRICT;
    INSERT INTO definitions (name, job_id, state, reason, spec_hash, command, env, cwd, updated_at)
        SELECT j.definition, j.id, j.state, j.reason, j.spec_hash, j.command, j.env, j.cwd,
               j.updated_at
        FROM jobs j WHERE j.definition IS NOT NULL AND j.id = (SELECT x.id FROM jobs x
            WHERE x.definition = j.definition ORDER BY x.created_at DESC, x.id DESC LIMIT 1);
    CREATE TRIGGER definitions_latest AFTER INSERT ON jobs WHEN NEW.definition IS NOT NULL
    BEGIN
        INSERT INTO definitions (name, job_id, state, reason, spec_hash, command, env, cwd,
                                 updated_at)
        VALUES (NEW.definition, NEW.id, NEW.state, NEW.reason, NEW.spec_hash, NEW.command,
                NEW.env, NEW.cwd, NEW.updated_at)
        ON CONFLICT (name) DO UPDATE SET job_id = excluded.job_id, state = excluded.state,
            reason = excluded.reason, spec_hash = excluded.spec_hash,
            command = excluded.command, env = excluded.env, cwd = excluded.cwd,
            removed_at = NULL, updated_at = excluded.updated_at;
    END;
    CREATE TRIGGER definitions_follow AFTER UPDATE OF state, reason, spec_hash, command, env, cwd
        ON jobs WHEN NEW.definition IS NOT NULL
    BEGIN
        UPDATE definitions SET state = NEW.state, reason = NEW.reason,
            spec_hash = NEW.spec_hash, command = NEW.command, env = NEW.env, cwd = NEW.cwd,
            updated_at = NEW.updated_at
        WHERE name = NEW.definition AND job_id = NEW.id;
    END;
    ALTER TABLE workers ADD COLUMN process_view TEXT;
    ALTER TABLE workers ADD COLUMN lease_ms INTEGER NOT NULL DEFAULT 30000;
    "#,
    // 6: the inputs (`sources`) a job of a definition ran with, so `plan`
    // can say which one changed; the definitions' record keeps them too.
    r#"
    ALTER TABLE jobs ADD COLUMN inputs TEXT;
    ALTER TABLE definitions ADD COLUMN inputs TEXT;
    DROP TRIGGER definitions_latest;
    DROP TRIGGER definitions_follow;
    CREATE TRIGGER definitions_latest AFTER INSERT ON jobs WHEN NEW.definition IS NOT NULL
    BEGIN
        INSERT INTO definitions (name, job_id, state, reason, spec_hash, command, env, cwd,
                                 inputs, updated_at)
        VALUES (NEW.definition, NEW.id, NEW.state, NEW.reason, NEW.spec_hash, NEW.command,
                NEW.env, NEW.cwd, NEW.inputs, NEW.updated_at)
        ON CONFLICT (name) DO UPDATE SET job_id = excluded.job_id, state = excluded.state,
            reason = excluded.reason, spec_hash = excluded.spec_hash,
            command = excluded.command, env = excluded.env, cwd = excluded.cwd,
            inputs = excluded.inputs, removed_at = NULL, updated_at = excluded.updated_at;
    END;
    CREATE TRIGGER definitions_follow AFTER UPDATE OF state, reason, spec_hash, command, env,
        cwd, inputs ON jobs WHEN NEW.definition IS NOT NULL
    BEGIN
        UPDATE definitions SET state = NEW.state, reason = NEW.reason,
            spec_hash = NEW.spec_hash, command = NEW.command, env = NEW.env, cwd = NEW.cwd,
            inputs = NEW.inputs, updated_at = NEW.updated_at
        WHERE name = NEW.definition AND job_id = NEW.id;
    END;
    "#,
    // 7: the engine decides, the driver stores (issue 12). The triggers
    // that kept `definitions` current go: the driver updates it in the
    // statements that change a job. A trigger's payload (changed paths,
    // a tick) gets its own column instead of env keys; `exclusive` is a key
    // no two running jobs share (a watched or scheduled definition's);
    // `blocked` marks a job whose dependencies have not completed, which
    // the ready indexes leave out.
    r#"
    DROP TRIGGER definitions_latest;
    DROP TRIGGER definitions_follow;
    ALTER TABLE jobs ADD COLUMN payload TEXT;
    ALTER TABLE jobs ADD COLUMN exclusive TEXT;
    ALTER TABLE jobs ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET blocked = 1 WHERE after_deps IS NOT NULL
        AND state IN ('pending', 'failed') AND EXISTS (SELECT 1 FROM json_each(jobs.after_deps) d
            WHERE (SELECT x.state FROM definitions x WHERE x.name = d.value) IS NOT 'completed');
    DROP INDEX jobs_ready_by_queue;
    DROP INDEX jobs_ready;
    CREATE INDEX jobs_ready_by_queue ON jobs (queue, priority DESC, run_at, id)
        WHERE state IN ('pending', 'failed') AND blocked = 0;
    CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, id)
        WHERE state IN ('pending', 'failed') AND blocked = 0;
    CREATE INDEX jobs_exclusive ON jobs (exclusive)
        WHERE state = 'processing' AND exclusive IS NOT NULL;
    "#,
    // 8: counts kept, not counted (issue 13): `status`, the bars, the
    // queue limits and `dlq stats` read a few rows of `job_counts`
    // instead of scanning a million finished jobs. Triggers keep it in
    // the transaction of every change of a job's queue, state or (dead)
    // exit code, whatever statement makes it: bookkeeping, no decision.
    // `code` is the exit code of a dead job (-1: none), 0 otherwise.
    // `list --state` reads the newest jobs of a state from an index.
    r#"
    CREATE TABLE job_counts (
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        code  INTEGER NOT NULL,
        n     INTEGER NOT NULL,
        PRIMARY KEY (queue, state, code)
    ) WITHOUT ROWID, STRICT;
    INSERT INTO job_counts (queue, state, code, n)
        SELECT queue, state,
               CASE WHEN state = 'dead' THEN COALESCE(exit_code, -1) ELSE 0 END AS code,
               COUNT(*)
        FROM jobs GROUP BY queue, state, code;
    CREATE TRIGGER jobs_counted_in AFTER INSERT ON jobs
    BEGIN
        INSERT INTO job_counts (queue, state, code, n)
        VALUES (NEW.queue, NEW.state,
                CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END, 1)
        ON CONFLICT (queue, state, code) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER jobs_counted_out AFTER DELETE ON jobs
    BEGIN
        UPDATE job_counts SET n = n - 1
        WHERE queue = OLD.queue AND state = OLD.state
          AND code = CASE WHEN OLD.state = 'dead' THEN COALESCE(OLD.exit_code, -1) ELSE 0 END;
    END;
    CREATE TRIGGER jobs_counted_moved AFTER UPDATE OF queue, state, exit_code ON jobs
    WHEN OLD.queue IS NOT NEW.queue OR OLD.state IS NOT NEW.state
        OR (NEW.state = 'dead' AND OLD.exit_code IS NOT NEW.exit_code)
    BEGIN
        UPDATE job_counts SET n = n - 1
        WHERE queue = OLD.queue AND state = OLD.state
          AND code = CASE WHEN OLD.state = 'dead' THEN COALESCE(OLD.exit_code, -1) ELSE 0 END;
        INSERT INTO job_counts (queue, state, code, n)
        VALUES (NEW.queue, NEW.state,
                CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END, 1)
        ON CONFLICT (queue, state, code) DO UPDATE SET n = n + 1;
    END;
    DROP INDEX jobs_by_state;
    CREATE INDEX jobs_by_state ON jobs (state, created_at DESC, id DESC);
    CREATE INDEX jobs_dead ON jobs (queue, exit_code, finished_at) WHERE state = 'dead';
    "#,
    // 9: paused queues (`queuectl queue pause`): claims skip their jobs
    // until `queue resume`; kept apart from `queues`, which the jobfile
    // owns, so an apply never resumes a queue an operator paused.
    r#"
    CREATE TABLE paused_queues (
        name  TEXT PRIMARY KEY NOT NULL,
        since INTEGER NOT NULL
    ) STRICT;
    "#,
    // 10: fewer pages written per job (issue 13). `jobs_finished` said
    // `state IN` three values: SQLite builds an ephemeral table to test
    // that list for the old row and the new one on every update of a
    // job's state; the same condition as `OR`s is two comparisons.
    // `jobs_by_runner` goes: the few running jobs are a range of
    // `jobs_by_state`, and every claim and finish wrote a page of it.
    // The count of a job's new state is made by an insert of a missing
    // row and an update, not an upsert: an upsert into a WITHOUT ROWID
    // table makes SQLite keep a statement journal (a copy of every page
    // the statement touches) for the update that fires it; the claim's
    // and the finish's updates (`UPDATE OR FAIL`) then need none.
    r#"
    DROP TRIGGER jobs_counted_moved;
    CREATE TRIGGER jobs_counted_moved AFTER UPDATE OF queue, state, exit_code ON jobs
    WHEN OLD.queue IS NOT NEW.queue OR OLD.state IS NOT NEW.state
        OR (NEW.state = 'dead' AND OLD.exit_code IS NOT NEW.exit_code)
    BEGIN
        UPDATE job_counts SET n = n - 1
        WHERE queue = OLD.queue AND state = OLD.state
          AND code = CASE WHEN OLD.state = 'dead' THEN COALESCE(OLD.exit_code, -1) ELSE 0 END;
        INSERT INTO job_counts (queue, state, code, n)
        SELECT NEW.queue, NEW.state,
               CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END, 0
        WHERE NOT EXISTS (SELECT 1 FROM job_counts
            WHERE queue = NEW.queue AND state = NEW.state
              AND code = CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END);
        UPDATE job_counts SET n = n + 1
        WHERE queue = NEW.queue AND state = NEW.state
          AND code = CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END;
    END;
    DROP INDEX jobs_by_runner;
    DROP INDEX jobs_finished;
    CREATE INDEX jobs_finished ON jobs (state, finished_at)
        WHERE state = 'completed' OR state = 'dead' OR state = 'cancelled';
    "#,
    // 11: what the dashboard shows (issue 16). Each attempt keeps the
    // host of the worker that ran it (a worker's row goes when it stops);
    // failed attempts are found by when they ended, for the failures per
    // minute (a partial index: attempts that succeed never enter it); each
    // schedule counts the ticks it missed while no `run` was looking.
    r#"
    ALTER TABLE attempts ADD COLUMN host TEXT;
    CREATE INDEX attempts_failed ON attempts (finished_at)
        WHERE outcome = 'failed' OR outcome = 'timeout' OR outcome = 'lost';
    ALTER TABLE schedules ADD COLUMN missed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE schedules ADD COLUMN missed_at INTEGER;
    "#,
    // 12: text search in commands without reading every job (issue 16):
    // a trigram index of the commands (FTS5, case-sensitive like `instr`;
    // `detail=none`, `columnsize=0`: row ids only, the smallest index; a
    // match is checked against the command itself). Never touched by a
    // claim or a finish. The driver indexes the jobs an insert made and
    // unindexes those a delete removes, one statement for a whole batch:
    // FTS5 writes a segment at the end of every statement that writes it
    // (its savepoint), so a trigger per row would write one per job. A
    // new command (an apply's update, one job at a time) has a trigger.
    r#"
    CREATE VIRTUAL TABLE jobs_text USING fts5(
        command, content = 'jobs', content_rowid = 'rowid',
        tokenize = 'trigram case_sensitive 1', detail = 'none', columnsize = 0
    );
    INSERT INTO jobs_text (jobs_text) VALUES ('rebuild');
    CREATE TRIGGER jobs_text_changed AFTER UPDATE OF command ON jobs BEGIN
        INSERT INTO jobs_text (jobs_text, rowid, command) VALUES ('delete', OLD.rowid, OLD.command);
        INSERT INTO jobs_text (rowid, command) VALUES (NEW.rowid, NEW.command);
    END;
    "#,
    // 13: no page copied and no temporary table per job (issue 13). A
    // job's count was kept by an upsert (which makes every insert keep a
    // statement journal, a copy of each page the statement touches: a
    // bulk enqueue spent a third of its instructions on it) or by an
    // `INSERT … SELECT … WHERE NOT EXISTS` on `job_counts` (an insert
    // whose select reads its own table goes through a temporary table,
    // one per claim, finish and insert). Now a BEFORE trigger makes a
    // missing count row, at 0, with a plain insert, and the AFTER trigger
    // only updates: SQLite runs every BEFORE trigger before any AFTER
    // one. (`changes()` in a trigger would do it in one, but any SQL
    // function call makes SQLite keep the statement journal again.)
    r#"
    DROP TRIGGER jobs_counted_in;
    DROP TRIGGER jobs_counted_moved;
    CREATE TRIGGER jobs_count_row_in BEFORE INSERT ON jobs
    WHEN NOT EXISTS (SELECT 1 FROM job_counts
        WHERE queue = NEW.queue AND state = NEW.state
          AND code = CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END)
    BEGIN
        INSERT INTO job_counts (queue, state, code, n)
        VALUES (NEW.queue, NEW.state,
                CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END, 0);
    END;
    CREATE TRIGGER jobs_counted_in AFTER INSERT ON jobs
    BEGIN
        UPDATE job_counts SET n = n + 1
        WHERE queue = NEW.queue AND state = NEW.state
          AND code = CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END;
    END;
    CREATE TRIGGER jobs_count_row_moved BEFORE UPDATE OF queue, state, exit_code ON jobs
    WHEN (OLD.queue IS NOT NEW.queue OR OLD.state IS NOT NEW.state
          OR (NEW.state = 'dead' AND OLD.exit_code IS NOT NEW.exit_code))
        AND NOT EXISTS (SELECT 1 FROM job_counts
            WHERE queue = NEW.queue AND state = NEW.state
              AND code = CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END)
    BEGIN
        INSERT INTO job_counts (queue, state, code, n)
        VALUES (NEW.queue, NEW.state,
                CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END, 0);
    END;
    CREATE TRIGGER jobs_counted_moved AFTER UPDATE OF queue, state, exit_code ON jobs
    WHEN OLD.queue IS NOT NEW.queue OR OLD.state IS NOT NEW.state
        OR (NEW.state = 'dead' AND OLD.exit_code IS NOT NEW.exit_code)
    BEGIN
        UPDATE job_counts SET n = n - 1
        WHERE queue = OLD.queue AND state = OLD.state
          AND code = CASE WHEN OLD.state = 'dead' THEN COALESCE(OLD.exit_code, -1) ELSE 0 END;
        UPDATE job_counts SET n = n + 1
        WHERE queue = NEW.queue AND state = NEW.state
          AND code = CASE WHEN NEW.state = 'dead' THEN COALESCE(NEW.exit_code, -1) ELSE 0 END;
    END;
    "#,
];

/// `PRAGMA application_id` of a queuectl database ("qctl"): what tells it
/// from another program's SQLite file.
pub const APPLICATION_ID: i32 = 0x7163_746c;

/// The tables every queuectl schema has had since version 1: a database
/// without `application_id` (made before version 5) is queuectl's if it
/// holds them.
pub const LEGACY_TABLES: [&str; 3] = ["attempts", "jobs", "workers"];

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use rusqlite::Connection;

    fn counts(conn: &Connection, sql: &str) -> Vec<(String, String, i64, i64)> {
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        stmt.query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `job_counts` as the triggers keep it, against a count of the jobs.
    fn kept_and_counted(conn: &Connection) -> [Vec<(String, String, i64, i64)>; 2] {
        [
            counts(
                conn,
                "SELECT queue, state, code, n FROM job_counts WHERE n > 0 ORDER BY 1, 2, 3",
            ),
            counts(
                conn,
                "SELECT queue, state, CASE WHEN state = 'dead' THEN COALESCE(exit_code, -1) \
                 ELSE 0 END AS code, COUNT(*) FROM jobs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            ),
        ]
    }

    /// Every kind of move of jobs "a" (pending), "b" (processing), "c"
    /// (dead) and "d" (in `deploy`), one statement each, as the driver
    /// writes them: the counts kept equal the jobs counted after each,
    /// whether the count moved to exists or not yet.
    fn counts_follow_every_move(conn: &Connection) {
        for (sql, what) in [
            (
                "UPDATE OR FAIL jobs SET state = 'processing' WHERE id = 'a'",
                "a claim",
            ),
            (
                "UPDATE OR FAIL jobs SET state = 'completed', exit_code = 0 WHERE id = 'b'",
                "a finish",
            ),
            (
                "UPDATE jobs SET state = 'dead', exit_code = 9 WHERE id = 'a'",
                "a death with a new exit code",
            ),
            (
                "UPDATE jobs SET exit_code = 2 WHERE id = 'a'",
                "a dead job's code",
            ),
            (
                "UPDATE jobs SET queue = 'other' WHERE id = 'd'",
                "a new queue",
            ),
            ("DELETE FROM jobs WHERE id = 'c'", "a delete"),
        ] {
            conn.execute(sql, [])
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let [kept, counted] = kept_and_counted(conn);
            assert_eq!(kept, counted, "after {what}");
        }
    }

    /// An in-memory database at schema `version` (its first migrations).
    fn at_schema(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}"));
        }
        conn
    }

    /// A database made at schema 9, with jobs in it, migrated to 10: the
    /// counts stay right through every kind of move (to a count that
    /// exists and to one that does not yet), the chart's query still
    /// reads `jobs_finished`, and `jobs_by_runner` is gone.
    #[test]
    fn migration_10_keeps_the_counts_and_the_finished_index() {
        let conn = at_schema(9);
        let insert = |id: &str, queue: &str, state: &str, code: Option<i64>| {
            conn.execute(
                "INSERT INTO jobs (id, command, origin, queue, state, max_retries, backoff_base, \
                 run_at, created_at, updated_at, exit_code, finished_at) \
                 VALUES (?1, 'true', 'cli', ?2, ?3, 3, 2.0, 0, 0, 0, ?4, 5)",
                rusqlite::params![id, queue, state, code],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        };
        insert("a", "default", "pending", None);
        insert("b", "default", "processing", None);
        insert("c", "default", "dead", Some(2));
        insert("d", "deploy", "completed", Some(0));
        conn.execute_batch(MIGRATIONS[9])
            .unwrap_or_else(|e| panic!("{e}"));
        let [kept, counted] = kept_and_counted(&conn);
        assert_eq!(kept, counted, "as migrated");

        counts_follow_every_move(&conn);

        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT state, finished_at / 60000 AS minute, COUNT(*) \
                 FROM jobs INDEXED BY jobs_finished \
                 WHERE (state = 'completed' OR state = 'dead' OR state = 'cancelled') \
                 AND state <> 'cancelled' AND finished_at >= 0 GROUP BY state, minute",
            )
            .and_then(|mut s| {
                s.query_map([], |row| row.get::<_, String>(3))?
                    .collect::<rusqlite::Result<_>>()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            plan.iter().any(|step| step.contains("jobs_finished")),
            "{plan:?}"
        );
        let runner_index: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'jobs_by_runner'",
                [],
                |row| row.get(0),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(runner_index, 0);
    }

    #[test]
    fn migration_11_keeps_attempts_and_schedules() {
        let conn = at_schema(10);
        conn.execute_batch(
            "INSERT INTO jobs (id, command, origin, queue, state, max_retries, backoff_base, \
             run_at, created_at, updated_at) VALUES ('a', 'true', 'cli', 'default', 'failed', \
             3, 2.0, 0, 0, 0); \
             INSERT INTO attempts (job_id, run, runner, started_at, finished_at, outcome) \
             VALUES ('a', 1, 7, 0, 61000, 'failed'); \
             INSERT INTO schedules VALUES ('nightly', '@daily', 'UTC', 5, 6);",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(MIGRATIONS[10])
            .unwrap_or_else(|e| panic!("{e}"));
        let kept: (i64, Option<String>, i64, Option<i64>) = conn
            .query_row(
                "SELECT runner, host, missed, missed_at FROM attempts, schedules",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            kept,
            (7, None, 0, None),
            "the old rows stand, with no host and nothing missed"
        );
        // The failures per minute read the new index (INDEXED BY fails
        // to prepare where the index cannot serve the condition).
        let failed: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM attempts INDEXED BY attempts_failed \
                 WHERE (outcome = 'failed' OR outcome = 'timeout' OR outcome = 'lost') \
                 AND finished_at >= 60000",
                [],
                |row| row.get(0),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(failed, 1);
    }

    #[test]
    fn migration_12_indexes_the_commands_already_there() {
        let conn = at_schema(11);
        let insert = |id: &str, command: &str| {
            conn.execute(
                "INSERT INTO jobs (id, command, origin, queue, state, max_retries, backoff_base, \
                 run_at, created_at, updated_at) VALUES (?1, ?2, 'cli', 'default', 'pending', \
                 3, 2.0, 0, 0, 0)",
                [id, command],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        };
        insert("old", "make Release");
        insert("other", "make release");
        conn.execute_batch(MIGRATIONS[11])
            .unwrap_or_else(|e| panic!("{e}"));
        let found = |pattern: &str| -> Vec<String> {
            conn.prepare(
                "SELECT id FROM jobs WHERE rowid IN \
                 (SELECT rowid FROM jobs_text WHERE command GLOB ?1) ORDER BY id",
            )
            .and_then(|mut s| s.query_map([pattern], |row| row.get(0))?.collect())
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(found("*Release*"), ["old"], "rebuilt, case-sensitive");
        assert_eq!(found("*make*"), ["old", "other"]);
        // A new command is indexed by the trigger (inserts and deletes by
        // the driver, a batch at a time: the conformance tests).
        conn.execute_batch("UPDATE jobs SET command = 'cargo build' WHERE id = 'old'")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found("*make*"), ["other"], "the old command is out");
        assert_eq!(found("*cargo*"), ["old"]);
    }

    /// A database at schema 12, with jobs, migrated to 13: the counts stay
    /// right through inserts (to a count that exists, to a new queue, a
    /// duplicate id refused inside a transaction) and every kind of move,
    /// and neither the insert nor a claim or a finish goes through a
    /// temporary table (`EXPLAIN` lists the triggers' programs too).
    #[test]
    fn migration_13_keeps_the_counts_without_a_temporary_table() {
        let conn = at_schema(12);
        conn.execute_batch(
            "INSERT INTO jobs (id, command, origin, queue, state, max_retries, backoff_base, \
             run_at, created_at, updated_at, exit_code) VALUES \
             ('b', 'true', 'cli', 'default', 'processing', 3, 2.0, 0, 0, 0, NULL), \
             ('c', 'true', 'cli', 'default', 'dead', 3, 2.0, 0, 0, 0, 2);",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(MIGRATIONS[12])
            .unwrap_or_else(|e| panic!("{e}"));
        let [kept, counted] = kept_and_counted(&conn);
        assert_eq!(kept, counted, "as migrated");

        let insert = "INSERT OR FAIL INTO jobs (id, command, origin, queue, state, max_retries, \
                      backoff_base, run_at, created_at, updated_at) \
                      VALUES (?1, 'true', 'cli', ?2, 'pending', 3, 2.0, 0, 0, 0)";
        conn.execute_batch("BEGIN")
            .unwrap_or_else(|e| panic!("{e}"));
        for (id, queue) in [("a", "default"), ("d", "deploy"), ("e", "deploy")] {
            conn.execute(insert, [id, queue])
                .unwrap_or_else(|e| panic!("insert {id}: {e}"));
        }
        conn.execute_batch("COMMIT")
            .unwrap_or_else(|e| panic!("{e}"));
        let [kept, counted] = kept_and_counted(&conn);
        assert_eq!(kept, counted, "after inserts");
        conn.execute_batch("BEGIN")
            .unwrap_or_else(|e| panic!("{e}"));
        conn.execute(insert, ["f", "fresh"])
            .unwrap_or_else(|e| panic!("{e}"));
        let duplicate = conn.execute(insert, ["a", "other"]);
        assert!(duplicate.is_err(), "{duplicate:?}");
        conn.execute_batch("ROLLBACK")
            .unwrap_or_else(|e| panic!("{e}"));
        let [kept, counted] = kept_and_counted(&conn);
        assert_eq!(kept, counted, "after a refused insert");
        counts_follow_every_move(&conn);

        for sql in [
            insert,
            "UPDATE OR FAIL jobs SET state = 'processing' WHERE id = 'e'",
            "UPDATE OR FAIL jobs SET state = 'dead', exit_code = 7 WHERE id = 'e'",
        ] {
            let ops: Vec<String> = conn
                .prepare(&format!("EXPLAIN {sql}"))
                .and_then(|mut s| {
                    let unbound = vec![rusqlite::types::Null; s.parameter_count()];
                    s.query_map(rusqlite::params_from_iter(unbound), |row| {
                        row.get::<_, String>(1)
                    })?
                    .collect::<rusqlite::Result<_>>()
                })
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                ops.iter().any(|op| op == "Program"),
                "the triggers are in the listing: {ops:?}"
            );
            assert!(
                !ops.iter().any(|op| op == "OpenEphemeral"),
                "{sql}: {ops:?}"
            );
        }
    }
}
