//! Every bad input gets a clear error naming the problem, exit code 2, and
//! leaves the queue as it was.

use predicates::prelude::*;

use super::harness::Env;

/// Runs `args`, expects exit 2 with `message` on stderr and the queue unchanged.
fn rejects(env: &Env, args: &[&str], message: &str) {
    let before = env.states();
    env.cmd(args)
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(message));
    assert_eq!(env.states(), before, "{args:?} changed the queue");
}

#[test]
fn bad_jobs_are_rejected_whole() {
    let env = Env::new();
    env.cmd(["enqueue", "--id", "taken", "true"])
        .assert()
        .success();
    env.write(
        "broken.jsonl",
        "{\"id\": \"fine\", \"command\": \"true\"}\n{\"id\": \"oops\", \"command\": }\n",
    );
    env.write("number.json", "42");
    env.write(
        "dup.jsonl",
        "{\"id\": \"d1\", \"command\": \"true\"}\n{\"id\": \"d1\", \"command\": \"true\"}\n",
    );
    let table: &[(&[&str], &str)] = &[
        (
            &["enqueue", "{\"command\": "],
            "error: the argument: invalid JSON at line 1 column 12: EOF while parsing a value",
        ),
        (
            &["enqueue", "--file", "broken.jsonl"],
            "broken.jsonl:2: invalid JSON: expected value",
        ),
        (
            &["enqueue", "--file", "number.json"],
            "expected a JSON object (a job), found a number",
        ),
        (
            &["enqueue", r#"{"id": "x"}"#],
            "the argument: missing field `command`",
        ),
        (
            &["enqueue", r#"{"command": ""}"#],
            "the argument: field `command` is empty",
        ),
        (&["enqueue", ""], "the command is empty"),
        (&["enqueue"], "nothing to enqueue"),
        (
            &["enqueue", "--id", "taken", "true"],
            "job id `taken` already exists",
        ),
        (
            &["enqueue", "--file", "dup.jsonl"],
            "job id `d1` already exists",
        ),
        (
            &["enqueue", "--id", "../x", "true"],
            "invalid job id `../x`: `/` is not allowed",
        ),
        (
            &["enqueue", r#"{"command": "true", "max_retries": -1}"#],
            "field `max_retries` must be between 0 and 4294967295 (got -1)",
        ),
        (
            &["enqueue", "--max-retries", "-1", "true"],
            "invalid value '-1' for '--max-retries <N>'",
        ),
        (
            &["enqueue", "--timeout", "soon", "true"],
            "invalid duration `soon` for --timeout",
        ),
        (
            &["enqueue", "--env", "NOEQUALS", "true"],
            "invalid --env `NOEQUALS`",
        ),
        (
            &["enqueue", "--queue", "a b", "true"],
            "invalid queue name `a b`",
        ),
        (
            &["enqueue", "--run-at", "yesterday-ish", "true"],
            "invalid time `yesterday-ish`",
        ),
        (
            &["enqueue", "--file", "missing.json"],
            "cannot read `missing.json`",
        ),
        (&["list", "--state", "bogus"], "unknown state `bogus`"),
        (&["show", "nope"], "unknown job `nope`"),
        (&["logs", "nope"], "unknown job `nope`"),
        (&["cancel", "nope"], "unknown job `nope`"),
        (
            &["dlq", "retry", "taken"],
            "job `taken` is pending, not dead",
        ),
        (&["dlq", "retry", "nope"], "unknown job `nope`"),
        (
            &["worker", "start", "--count", "0", "--until-idle"],
            "--count must be at least 1",
        ),
    ];
    for (args, message) in table {
        rejects(&env, args, message);
    }
    assert_eq!(
        env.states(),
        vec![("taken".to_string(), "pending".to_string())]
    );
}

#[test]
fn a_file_that_is_not_a_database() {
    let env = Env::new();
    env.write("notes.db", &"this is not SQLite\n".repeat(200));
    env.cmd(["--db", "notes.db", "enqueue", "true"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("cannot use database").and(predicate::str::contains(
                "the file is not a SQLite database",
            )),
        );
    env.cmd(["--db", "notes.db", "list"]).assert().code(2);
    assert_eq!(
        env.read("notes.db"),
        "this is not SQLite\n".repeat(200),
        "left as it was"
    );
}

#[test]
fn a_directory_that_cannot_be_created() {
    let env = Env::new();
    env.write("plain-file", "");
    env.cmd(["--db", "plain-file/sub/queue.db", "enqueue", "true"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("cannot create the database directory")
                .and(predicate::str::contains("plain-file/sub")),
        );
}

#[test]
fn a_missing_secret_fails_the_attempt_clearly() {
    let env = Env::new();
    let id = env.enqueue(&[
        "--max-retries",
        "0",
        "--env",
        "TOKEN=${QUEUECTL_TEST_UNSET_SECRET}",
        "true",
    ]);
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(1));
    let job = env.job(&id);
    assert_eq!(job["exit_code"], 127);
    assert!(
        job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("env `TOKEN`: environment variable `QUEUECTL_TEST_UNSET_SECRET` is not set")
    );
}

#[test]
fn a_database_locked_longer_than_the_busy_timeout() {
    let env = Env::new();
    env.enqueue(&["--id", "before", "true"]);
    let holder = rusqlite::Connection::open(env.queue_file("queue.db")).expect("open");
    holder.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let started = std::time::Instant::now();
    env.cmd(["enqueue", "true"]).assert().code(2).stderr(
        predicate::str::contains("the database is locked by another process")
            .and(predicate::str::contains("no write lock within 10s"))
            .and(predicate::str::contains("held a write lock for longer").not()),
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(9),
        "it waited for the lock first"
    );
    holder.execute_batch("ROLLBACK").expect("unlock");
    assert_eq!(
        env.states(),
        vec![("before".to_string(), "pending".to_string())]
    );
}

#[test]
fn a_full_disk_is_an_error_and_changes_nothing() {
    // RLIMIT_FSIZE stands in for a full disk: writes past it fail.
    let env = Env::new();
    env.enqueue(&["--id", "before", "true"]);
    let lines: String = (0..20_000)
        .map(|i| format!("{{\"command\": \"echo {i} {}\"}}\n", "x".repeat(200)))
        .collect();
    env.write("big.jsonl", &lines);
    let bin = assert_cmd::cargo::cargo_bin!("queuectl");
    let out = std::process::Command::new("sh")
        .current_dir(env.path())
        .env_remove("QUEUECTL_DB")
        .arg("-c")
        .arg(format!(
            "ulimit -f 200; exec '{}' enqueue --file big.jsonl",
            bin.display()
        ))
        .output()
        .expect("sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a write failed") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(
        env.states(),
        vec![("before".to_string(), "pending".to_string())]
    );
    env.cmd(["enqueue", "true"]).assert().success();
}

/// Makes a path immutable (`chattr +i`: read-only even for root, who
/// ignores permission bits) until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(path: std::path::PathBuf) -> Immutable {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&path)
            .status()
            .expect("chattr");
        assert!(status.success(), "chattr +i {}", path.display());
        Immutable(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn read_only_directories_and_files() {
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let dir = base.path().join("ro");
    std::fs::create_dir(&dir).expect("mkdir");
    let env = Env::new();
    {
        let _ro = Immutable::new(dir.clone());
        let db = dir.join(".queuectl/queue.db");
        env.cmd(["--db", db.to_str().unwrap_or_default(), "enqueue", "true"])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("cannot create the database directory")
                    .and(predicate::str::contains("Operation not permitted")),
            );
    }
    // A database file that cannot be written.
    env.enqueue(&["--id", "before", "true"]);
    let db = env.queue_file("queue.db");
    {
        let _ro = Immutable::new(db);
        env.cmd(["enqueue", "true"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("cannot use database"));
    }
    assert_eq!(
        env.states(),
        vec![("before".to_string(), "pending".to_string())]
    );
}
