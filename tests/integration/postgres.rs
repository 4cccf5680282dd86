//! The queue on PostgreSQL, as users run it: the same commands as on
//! SQLite against a schema of the test server (`QUEUECTL_TEST_PG_URL`,
//! started by `scripts/pg-server`), and several "hosts" sharing it. A host
//! is a process with its own `QUEUECTL_HOST_ID`: its own view of
//! processes, so workers of two hosts judge each other by the lease
//! alone, as on two machines.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::harness::{Env, Worker, time, wait_until};

/// The test server's URL with another password, port or database.
fn variant(url: &str, f: impl Fn(&str, &str, &str, &str) -> String) -> String {
    // postgres://user:pass@host:port/db
    let rest = url.trim_start_matches("postgres://");
    let (auth, rest) = rest.split_once('@').expect("user@");
    let (user, _) = auth.split_once(':').expect("user:password");
    let (hostport, db) = rest.split_once('/').expect("/db");
    let db = db.split('?').next().unwrap_or(db);
    f(user, hostport, db, auth)
}

fn password_of(url: &str) -> String {
    variant(url, |_, _, _, auth| {
        auth.split_once(':')
            .map(|(_, p)| p.to_string())
            .unwrap_or_default()
    })
}

#[test]
fn every_connection_failure_is_one_clear_error_and_changes_nothing() {
    let Some(env) = Env::postgres() else { return };
    let url = env.db_url().to_string();
    let secret = password_of(&url);
    let wrong_password = variant(&url, |user, hostport, db, _| {
        format!("postgres://{user}:not-{secret}@{hostport}/{db}")
    });
    let missing_db = variant(&url, |user, hostport, _, auth| {
        let _ = user;
        format!("postgres://{auth}@{hostport}/no_such_db")
    });
    let refused = variant(&url, |user, _, db, _| {
        format!("postgres://{user}:x@127.0.0.1:1/{db}")
    });
    let cases = [
        (
            wrong_password.as_str(),
            "password authentication failed",
            "check the user and the password",
        ),
        (
            missing_db.as_str(),
            "database `no_such_db` does not exist",
            "createdb no_such_db",
        ),
        (
            refused.as_str(),
            "no server accepts connections at 127.0.0.1:1",
            "is PostgreSQL running",
        ),
        (
            "postgres://u@h/d?sslmode=sometimes",
            "sslmode `sometimes`",
            "sslmode=require",
        ),
        ("postgres://u@h:0/d", "port `0`", "postgres://USER"),
    ];
    for (db, says, hint) in cases {
        for args in [&["enqueue", "echo", "x"][..], &["status"], &["list"]] {
            let out = env
                .cmd(args)
                .env("QUEUECTL_DB", db)
                .output()
                .expect("run queuectl");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{db} {args:?}: {stderr}");
            assert!(stderr.contains(says), "{db}: {stderr}");
            assert!(stderr.contains(hint), "{db}: {stderr}");
            assert!(!stderr.contains(&secret), "the password leaked: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    // Nothing was written: the schema holds no table, and no SQLite file
    // appeared (the URL is never taken for a path).
    let tables: i64 = env
        .sql()
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(tables, 0);
    assert!(!env.file("postgres:").exists());
    // The password from PGPASSWORD, and never in output.
    let no_password = variant(&url, |user, hostport, db, _| {
        format!("postgres://{user}@{hostport}/{db}")
    });
    let out = env
        .cmd(["-v", "status"])
        .env("QUEUECTL_DB", &no_password)
        .env("PGPASSWORD", &secret)
        .output()
        .expect("run queuectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&no_password), "{text}");
    assert!(!text.contains(&secret), "{text}");
    // Nor in --help, which shows the environment's values of options.
    let help = env.cmd(["status", "--help"]).output().expect("help");
    assert!(help.status.success());
    assert!(!String::from_utf8_lossy(&help.stdout).contains(&secret));
}

/// A read of a queue that another process is creating (its migration
/// holds the lock) waits for it, then reads it: it does not try to create
/// the tables a second time from a snapshot taken before they existed.
#[test]
fn a_read_waiting_on_a_migration_reads_the_new_tables() {
    let Some(env) = Env::postgres() else { return };
    let mut holder = env.sql();
    let mut lock = holder.transaction().expect("a transaction");
    lock.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('queuectl:migrate:' || current_schema(), 0))",
    )
    .expect("the migration lock");
    let waiting = |n: i64| {
        let mut sql = env.sql();
        move || {
            let count: i64 = sql
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                    &[],
                )
                .expect("locks")
                .get(0);
            count >= n
        }
    };
    // First in line: a write, which migrates; then a read behind it.
    let spawn = |args: &[&str]| {
        env.command(super::harness::bin())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start queuectl")
    };
    let writer = spawn(&["enqueue", "true"]);
    wait_until("the write waits for the lock", waiting(1));
    let reader = spawn(&["--json", "list"]);
    wait_until("the read waits behind it", waiting(2));
    lock.rollback().expect("release the lock");
    let writer = writer.wait_with_output().expect("the write");
    let reader = reader.wait_with_output().expect("the read");
    assert!(
        writer.status.success(),
        "{}",
        String::from_utf8_lossy(&writer.stderr)
    );
    assert!(
        reader.status.success(),
        "the read failed: {}",
        String::from_utf8_lossy(&reader.stderr)
    );
    drop(holder);
}

#[test]
fn a_read_command_on_a_new_database_creates_nothing() {
    let Some(env) = Env::postgres() else { return };
    env.cmd(["status"]).assert().success();
    env.cmd(["list"]).assert().success().stdout("no jobs\n");
    let tables: i64 = env
        .sql()
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(tables, 0, "a read created tables");
    env.enqueue(&["true"]);
    let version: String = env
        .sql()
        .query_one(
            "SELECT value FROM queuectl_meta WHERE key = 'schema_version'",
            &[],
        )
        .expect("the schema version")
        .get(0);
    // Migration 2 keeps how much a job had written beside its output;
    // 3 the paused queues; 4 each attempt's host, failed attempts by
    // their end, the ticks a schedule missed.
    assert_eq!(version, "4");
    // A newer schema than this binary knows is refused, changing nothing.
    env.sql()
        .execute(
            "UPDATE queuectl_meta SET value = '99' WHERE key = 'schema_version'",
            &[],
        )
        .expect("bump");
    let out = env.cmd(["enqueue", "true"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema version 99 is newer"));
}

#[test]
fn enqueue_run_dead_letter_and_retry_with_output_in_the_database() {
    let Some(env) = Env::postgres() else { return };
    let ok = env.enqueue(&["--id", "ok", "--", "echo hello from ok"]);
    let bad = env.enqueue(&[
        "--id",
        "bad",
        "--max-retries",
        "0",
        "--",
        "echo oops >&2; exit 3",
    ]);
    let (code, out) = env.spawn(&["run", "--until-idle", "--workers", "2"]).wait();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(env.state(&ok), "completed");
    assert_eq!(env.state(&bad), "dead");
    // Output is read from the database: remove the local logs first.
    let _ = std::fs::remove_dir_all(env.file(".data"));
    let _ = std::fs::remove_dir_all(env.file(".queuectl"));
    env.cmd(["logs", "ok"])
        .assert()
        .success()
        .stdout("hello from ok\n");
    env.cmd(["logs", "bad"]).assert().success().stdout("oops\n");
    env.cmd(["logs", "--follow", "bad"])
        .assert()
        .success()
        .stdout("oops\n");
    let dlq = env.items(&["dlq", "list"]);
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let stats = env.items(&["dlq", "stats"]);
    assert_eq!(stats[0]["exit_code"], 3, "{stats:?}");
    assert_eq!(stats[0]["count"], 1, "{stats:?}");
    env.cmd(["dlq", "retry", "bad"]).assert().success();
    assert_eq!(env.state(&bad), "pending");
    let status = env.json(&["status"]);
    assert_eq!(status["totals"]["pending"], 1, "{status}");
    assert_eq!(status["totals"]["completed"], 1, "{status}");
    env.cmd(["cancel", "bad"]).assert().success();
    assert_eq!(env.state(&bad), "cancelled");
    env.cmd(["prune", "--older-than", "0s"]).assert().success();
    env.cmd(["list"]).assert().success().stdout("no jobs\n");
}

#[test]
fn a_jobfile_reconciles_into_the_server_and_a_rerun_runs_nothing() {
    let Some(env) = Env::postgres() else { return };
    env.write(
        "queuectl.toml",
        &format!(
            "[settings]\ndb = \"{}\"\n\n[jobs.build]\ncommand = \"echo built\"\n\n\
             [jobs.test]\ncommand = \"echo tested\"\nafter = [\"build\"]\n",
            env.db_url()
        ),
    );
    let first = env
        .cmd(["run", "--until-idle"])
        .env_remove("QUEUECTL_DB")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{text}");
    assert!(text.contains("2 completed, 0 dead"), "{text}");
    // The URL's password never shows, not even in config list.
    let secret = password_of(env.db_url());
    let config = env
        .cmd(["config", "list"])
        .env_remove("QUEUECTL_DB")
        .output()
        .expect("config");
    let shown = String::from_utf8_lossy(&config.stdout);
    assert!(shown.contains("settings.db"), "{shown}");
    assert!(!shown.contains(&secret), "{shown}");
    env.cmd(["plan"]).assert().success().stdout("No changes.\n");
    let again = env.cmd(["run", "--until-idle"]).output().expect("run");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("no jobs ran"));
    assert_eq!(env.jobs_of("test").len(), 1);
}

/// `n` jobs that each append their id and host to `runs.log`.
fn jobs_that_record_their_runs(env: &Env, n: usize) {
    let line = r#"{"command":"echo $QUEUECTL_JOB_ID $QUEUECTL_HOST_ID >> runs.log"}"#;
    let jobs: String = (0..n).map(|_| format!("{line}\n")).collect();
    env.write("jobs.jsonl", &jobs);
    env.cmd(["enqueue", "--file", "jobs.jsonl"])
        .assert()
        .success();
}

fn host(env: &Env, id: &str, args: &[&str]) -> Worker {
    env.spawn_with(args, &[("QUEUECTL_HOST_ID", id)])
}

#[test]
fn three_hosts_run_ten_thousand_jobs_exactly_once() {
    let Some(env) = Env::postgres() else { return };
    const N: usize = 10_000;
    jobs_that_record_their_runs(&env, N);
    let hosts: Vec<Worker> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| {
            host(
                &env,
                h,
                &["worker", "start", "--foreground", "--until-idle", "-c", "2"],
            )
        })
        .collect();
    for worker in hosts {
        let (code, out) = worker.wait_within(Duration::from_secs(300));
        assert_eq!(code, Some(0), "{out}");
    }
    let log = env.read("runs.log");
    let mut per_job: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_host: BTreeMap<&str, usize> = BTreeMap::new();
    for line in log.lines() {
        let (id, host) = line.split_once(' ').expect("id host");
        *per_job.entry(id).or_default() += 1;
        *per_host.entry(host).or_default() += 1;
    }
    assert_eq!(per_job.len(), N, "every job ran");
    let twice: Vec<_> = per_job.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs that ran twice: {twice:?}");
    assert_eq!(per_host.len(), 3, "every host took jobs: {per_host:?}");
    let status = env.json(&["status"]);
    assert_eq!(status["totals"]["completed"], N, "{status}");
}

#[test]
fn a_killed_hosts_job_is_rescued_after_its_lease_and_none_is_lost() {
    let Some(env) = Env::postgres() else { return };
    env.write(
        "queuectl.toml",
        "[settings]\nlease = \"2s\"\n\n[queues.default]\nworkers = 1\n",
    );
    // The first attempt hangs on host a; the second, on b, completes.
    let id = env.enqueue(&[
        "--",
        r#"echo "$QUEUECTL_HOST_ID $QUEUECTL_ATTEMPT" >> runs.log; if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 60; fi"#,
    ]);
    let others: Vec<String> = (0..5)
        .map(|_| env.enqueue(&["--", "echo \"$QUEUECTL_HOST_ID later\" >> runs.log"]))
        .collect();
    let a = host(&env, "a", &["worker", "start", "--foreground", "-c", "1"]);
    wait_until("host a starts the job", || {
        env.read("runs.log").contains("a 1")
    });
    a.signal("KILL");
    let b = host(&env, "b", &["worker", "start", "--foreground", "-c", "1"]);
    wait_until("host b rescues and completes the job", || {
        env.state(&id) == "completed"
    });
    for other in &others {
        wait_until("the other jobs complete", || {
            env.state(other) == "completed"
        });
    }
    let outcomes: Vec<String> = env.job(&id)["attempt_history"]
        .as_array()
        .expect("an attempt history")
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or_default().to_string())
        .collect();
    let log = env.read("runs.log");
    assert!(log.contains("a 1") && log.contains("b 2"), "{log}");
    assert_eq!(outcomes, ["lost", "completed"], "{log}");
    assert_eq!(log.matches(" later").count(), 5, "{log}");
    drop(b);
}

#[test]
fn a_queue_limit_holds_across_hosts() {
    let Some(env) = Env::postgres() else { return };
    env.write("queuectl.toml", "[queues.one]\nworkers = 1\n");
    env.cmd(["apply"]).assert().success();
    // Each job takes a lock directory; a second one inside would fail to.
    for _ in 0..12 {
        env.enqueue(&[
            "--queue",
            "one",
            "--",
            "mkdir inside || echo overlap >> overlaps; sleep 0.05; rmdir inside",
        ]);
    }
    let hosts: Vec<Worker> = ["x", "y"]
        .iter()
        .map(|h| {
            host(
                &env,
                h,
                &["worker", "start", "--foreground", "--until-idle", "-c", "3"],
            )
        })
        .collect();
    for worker in hosts {
        let (code, out) = worker.wait_within(Duration::from_secs(300));
        assert_eq!(code, Some(0), "{out}");
    }
    assert_eq!(
        env.read("overlaps"),
        "",
        "two jobs of a queue limited to 1 ran at once"
    );
    let status = env.json(&["status"]);
    assert_eq!(status["totals"]["completed"], 12, "{status}");
}

#[test]
fn one_run_owns_the_queue_and_the_others_are_extra_workers() {
    let Some(env) = Env::postgres() else { return };
    env.write("queuectl.toml", "[jobs.sleepy]\ncommand = \"sleep 30\"\n");
    let owner = env.spawn(&["run"]);
    owner.wait_for_output("start");
    // An extra worker on a queue with nothing in it: idle at once.
    let extra = env
        .cmd([
            "run",
            "--until-idle",
            "--allow-empty",
            "--queue",
            "elsewhere",
        ])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&extra.stderr);
    assert!(
        text.contains("owns this queue: this one runs as extra workers"),
        "{text}"
    );
    drop(owner);
    let holders: BTreeSet<String> = env
        .sql()
        .query("SELECT holder FROM queuectl_owner", &[])
        .expect("owner rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    // A killed owner leaves its lease to lapse; one that stopped deletes it.
    assert!(holders.len() <= 1, "{holders:?}");
}

#[test]
fn an_extra_run_on_another_host_takes_over_when_the_owner_is_killed() {
    let Some(env) = Env::postgres() else { return };
    // The owner's lease (half the workers' 2 s) lapses on the server's
    // clock; the extra on another host takes the queue over.
    super::run::an_extra_run_takes_over(
        &env,
        [
            &[("QUEUECTL_HOST_ID", "host-a")],
            &[("QUEUECTL_HOST_ID", "host-b")],
        ],
    );
}

#[test]
fn an_owner_whose_lease_was_taken_runs_on_as_extra_and_takes_it_back_when_it_lapses() {
    let Some(env) = Env::postgres() else { return };
    env.write(
        "queuectl.toml",
        "[settings]\nlease = \"2s\"\n[jobs.once]\ncommand = \"true\"\n",
    );
    let owner = env.spawn(&["run"]);
    wait_until("the owner holds the lease", || {
        env.sql()
            .query("SELECT 1 FROM queuectl_owner", &[])
            .is_ok_and(|rows| rows.len() == 1)
    });
    // Another host took the lease over while this one was frozen; its
    // lease runs 3 s on the server's clock and is not renewed.
    env.sql()
        .execute(
            "UPDATE queuectl_owner SET token = 0, holder = 'pid 1 on elsewhere', \
             expires_at = (extract(epoch from now()) * 1000)::bigint + 3000",
            &[],
        )
        .expect("take the lease");
    owner.wait_for_output("took the queue over: this one runs on as extra workers");
    owner.wait_for_output("(pid 1 on elsewhere) is gone: this one owns it now");
}

/// `run --until-idle` as host a, with its logs (`.queuectl/logs` beside
/// no jobfile) in a directory of its own: its path, and the process.
fn run_on_host_a(env: &Env) -> (std::path::PathBuf, super::harness::Worker) {
    let host_a = env.file("host-a");
    std::fs::create_dir(&host_a).expect("mkdir host-a");
    let mut run = env.command(super::harness::bin());
    run.args(["run", "--until-idle"])
        .current_dir(&host_a)
        .env("QUEUECTL_HOST_ID", "host-a");
    (host_a, env.start(run))
}

#[test]
fn logs_follow_on_another_host_shows_output_while_the_job_runs() {
    let Some(env) = Env::postgres() else { return };
    let id = env.enqueue(&[
        "--",
        "echo first; while [ ! -f go ]; do sleep 0.05; done; echo second",
    ]);
    let (host_a, runner) = run_on_host_a(&env);
    // Host b follows it, with no log of it here.
    let mut follow = env.command(super::harness::bin());
    follow.args(["logs", "--follow", &id]);
    let follower = env.start(follow);
    follower.wait_for_output("first\n");
    assert_eq!(env.state(&id), "processing", "shown while it runs");
    env.write("go", "");
    let (code, output) = follower.wait();
    assert_eq!((code, output.as_str()), (Some(0), "first\nsecond\n"));
    assert_eq!(runner.wait().0, Some(0));
    assert!(
        host_a.join(".queuectl/logs").is_dir(),
        "host a keeps its log"
    );
    assert!(!env.file(".queuectl/logs").exists(), "host b has none");
}

/// The dashboard on a host without the attempt's log streams a running
/// job's output from the database, as `logs --follow` does there: the
/// first line while the job is held, the second once it is released.
#[test]
fn the_dashboard_on_another_host_streams_output_from_the_database() {
    let Some(env) = Env::postgres() else { return };
    let gate = super::harness::Gate::new(&env, "gate");
    let id = env.enqueue(&["--", "echo first; read go < gate; echo \"second $go\""]);
    let (host_a, runner) = run_on_host_a(&env);
    // Host b serves the dashboard, with no log of the job here.
    let (_ui, addr) = super::web::start_ui(&env, &[]);
    wait_until("the job runs", || env.state(&id) == "processing");
    let mut events = super::web::EventStream::open(&addr, &format!("/events/job/{id}"));
    events.wait_for("event: output\ndata: {\"attempt\":1,\"text\":\"first\\n\"}\n\n");
    assert_eq!(env.state(&id), "processing", "shown while it runs");
    assert!(!events.seen().contains("second"), "{}", events.seen());
    gate.release("now");
    events.wait_for("event: output\ndata: {\"attempt\":1,\"text\":\"second now\\n\"}\n\n");
    events.wait_for("event: end\ndata: {\"exit_code\":0,\"state\":\"completed\"}\n\n");
    events.wait_closed();
    assert_eq!(runner.wait().0, Some(0));
    assert!(
        host_a.join(".queuectl/logs").is_dir(),
        "host a keeps its log"
    );
    assert!(!env.file(".queuectl/logs").exists(), "host b has none");
}

#[test]
fn output_past_log_max_bytes_reads_the_same_from_the_database() {
    let Some(env) = Env::postgres() else { return };
    env.write(
        "queuectl.toml",
        "[settings]\nlog_max_bytes = \"100B\"\n[jobs.big]\ncommand = \"seq 1 200\"\n",
    );
    let (code, out) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{out}");
    let logs = |args: &[&str]| {
        let out = env.cmd(args).output().expect("logs");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let here = logs(&["logs", "big"]);
    let tail: String = (1..=200).map(|n| format!("{n}\n")).collect();
    let tail = &tail[tail.len() - 100..];
    assert_eq!(
        here,
        format!("[queuectl: 592 earlier bytes of output were dropped]\n{tail}")
    );
    std::fs::remove_dir_all(env.file(".queuectl/logs")).expect("remove the logs");
    assert_eq!(logs(&["logs", "big"]), here, "from the database");
    assert_eq!(logs(&["logs", "--follow", "big"]), here, "followed");
}

#[test]
fn tls_verify_full_with_the_servers_ca_and_clear_errors_without_it() {
    let Some(env) = Env::postgres() else { return };
    let ca = match std::env::var("QUEUECTL_TEST_PG_CA") {
        Ok(ca) if !ca.is_empty() => ca,
        _ => {
            assert!(
                std::env::var_os("QUEUECTL_REQUIRE_PG").is_none(),
                "QUEUECTL_REQUIRE_PG is set but QUEUECTL_TEST_PG_CA is not (scripts/pg-server needs openssl)"
            );
            eprintln!("note: the test server has no TLS; this test did not run");
            return;
        }
    };
    // verify-full with the server's CA; and the default, `prefer`, which
    // encrypts without asking who signed the certificate, as libpq does.
    for (n, params) in [
        format!("sslmode=verify-full&sslrootcert={ca}"),
        String::new(),
    ]
    .iter()
    .enumerate()
    {
        let app = format!("qc-tls-{}-{n}", std::process::id());
        let url = format!("{}&{params}&application_name={app}", env.db_url());
        let out = env
            .cmd([
                "--json",
                "enqueue",
                "--",
                "while [ ! -f go ]; do sleep 0.05; done",
            ])
            .env("QUEUECTL_DB", &url)
            .output()
            .expect("enqueue");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let enqueued: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let id = enqueued["items"][0]["id"]
            .as_str()
            .expect("an id")
            .to_string();
        let runner = env.spawn_with(&["run", "--until-idle"], &[("QUEUECTL_DB", &url)]);
        wait_until("the job runs", || env.state(&id) == "processing");
        // Every session of the worker is encrypted.
        let sessions: Vec<bool> = env
            .sql()
            .query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = $1",
                &[&app],
            )
            .expect("pg_stat_ssl")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(
            !sessions.is_empty() && sessions.iter().all(|ssl| *ssl),
            "{params}: {sessions:?}"
        );
        env.write("go", "");
        assert_eq!(runner.wait().0, Some(0));
        assert_eq!(env.state(&id), "completed");
        std::fs::remove_file(env.file("go")).expect("rm go");
    }

    // Without the CA, verify-full trusts only the system's roots, which did
    // not sign the test server's certificate.
    let untrusted = format!("{}&sslmode=verify-full", env.db_url());
    // A server that answers the TLS request with "no" (as one without TLS
    // does) while the URL requires it.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = plain.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in plain.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_ok() {
                let _ = stream.write_all(b"N");
            }
        }
    });
    let no_tls = format!("postgres://u:p@127.0.0.1:{port}/d?sslmode=require");
    for (db, says) in [
        (untrusted.as_str(), "TLS with the server failed"),
        (no_tls.as_str(), "TLS"),
    ] {
        let out = env
            .cmd(["status"])
            .env("QUEUECTL_DB", db)
            .output()
            .expect("status");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{db}: {stderr}");
        assert!(stderr.contains(says), "{db}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn hosts_whose_clocks_disagree_go_by_the_servers() {
    let Some(env) = Env::postgres() else { return };
    if !super::harness::require("faketime") {
        return;
    }
    // The `faketime` program forks; preloading its library keeps the pid.
    let lib = super::harness::libfaketime();
    let skewed = |hours: &str| {
        [
            ("LD_PRELOAD", lib.to_str().unwrap_or_default().to_string()),
            ("FAKETIME", hours.to_string()),
        ]
    };
    // A host an hour ahead enqueues "in 1s": on the server's clock, so a
    // host on time runs it within seconds, not in an hour.
    let ahead = skewed("+1h");
    let out = env
        .cmd([
            "--json",
            "enqueue",
            "--delay",
            "1s",
            "--",
            "echo ran >> ran",
        ])
        .envs(ahead.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("enqueue");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A host an hour behind runs it: due on the server's clock, not in an
    // hour of its own.
    let behind = skewed("-1h");
    let vars: Vec<(&str, &str)> = behind.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let worker = env.spawn_with(
        &["worker", "start", "--foreground", "--until-idle", "-c", "1"],
        &vars,
    );
    let (code, out) = worker.wait();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(env.read("ran"), "ran\n", "{out}");
    let job = &env.items(&["list"])[0];
    let waited = time(&job["started_at"]) - time(&job["run_at"]);
    assert!(
        (0..60_000).contains(&waited),
        "started {waited} ms after run_at: {job}"
    );
}

#[test]
fn a_poll_only_queue_still_picks_up_jobs() {
    let Some(env) = Env::postgres() else { return };
    let name = format!("polling_{}", std::process::id());
    let url = format!("{}&listen=off&application_name={name}", env.db_url());
    let worker = env.spawn_with(
        &["worker", "start", "--foreground", "-c", "1"],
        &[("QUEUECTL_DB", &url)],
    );
    let id = env.enqueue(&["--", "echo polled >> ran"]);
    wait_until("the polling worker runs the job", || {
        env.state(&id) == "completed"
    });
    assert_eq!(env.read("ran"), "polled\n", "{}", worker.output());
    let listening: i64 = env
        .sql()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND query LIKE 'LISTEN%'",
            &[&name],
        )
        .expect("sessions")
        .get(0);
    assert_eq!(listening, 0, "a poll-only worker listens");
}

#[test]
fn workers_reconnect_when_the_server_drops_their_connections() {
    let Some(env) = Env::postgres() else { return };
    let first = env.enqueue(&["--", "echo one >> ran"]);
    let name = format!("reconnecting_{}", std::process::id());
    let url = format!("{}&application_name={name}", env.db_url());
    let worker = env.spawn_with(
        &["worker", "start", "--foreground", "-c", "1"],
        &[("QUEUECTL_DB", &url)],
    );
    wait_until("the first job runs", || env.state(&first) == "completed");
    // As a server restart or a proxy would: every queuectl session ends.
    let ended: i64 = env
        .sql()
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) t",
            &[&name],
        )
        .expect("terminate")
        .get(0);
    assert!(ended >= 2, "the worker's sessions: {ended}");
    let second = env.enqueue(&["--", "echo two >> ran"]);
    wait_until("the worker runs a job enqueued after", || {
        env.state(&second) == "completed"
    });
    assert_eq!(env.read("ran"), "one\ntwo\n", "{}", worker.output());
}
