//! The core model under real life (issue 10): what already ran survives
//! pruning and removal, worker identity and liveness, fencing, bounds on
//! input, special files, foreign databases, leftover processes.

use std::time::Duration;

use predicates::prelude::*;
use serde_json::Value;

use super::harness::{Env, alive, bin, ms, require, wait_until};

/// The registered workers.
fn workers(env: &Env) -> Vec<Value> {
    env.items(&["worker", "status"])
}

/// The heartbeat of the worker with this pid, if it is registered.
fn heartbeat_of(env: &Env, pid: u64) -> Option<i64> {
    workers(env)
        .iter()
        .find(|w| w["pid"].as_u64() == Some(pid))
        .and_then(|w| w["heartbeat_at"].as_str().map(ms))
}

/// Waits until the worker with this pid has written `beats` more
/// heartbeats: it has had that many chances to (wrongly) rescue jobs.
fn wait_heartbeats(env: &Env, pid: u64, beats: i64, every_ms: i64) {
    wait_until("the worker registers", || heartbeat_of(env, pid).is_some());
    let first = heartbeat_of(env, pid).unwrap_or_default();
    wait_until("the worker heartbeats", || {
        heartbeat_of(env, pid).is_some_and(|h| h >= first + beats * every_ms)
    });
}

const SLOW_AND_A: &str = "[jobs.slow]\ncommand = \"while [ ! -f release ]; do sleep 0.02; done\"\n\
    [jobs.a]\ncommand = \"echo a >> a.out\"\nafter = [\"slow\"]\n";
const SLOW_ONLY: &str = "[jobs.slow]\ncommand = \"while [ ! -f release ]; do sleep 0.02; done\"\n";

#[test]
fn a_removed_then_restored_definition_runs_again() {
    let env = Env::new();
    env.write("queuectl.toml", SLOW_AND_A);
    env.cmd(["apply"]).assert().success();
    env.write("queuectl.toml", SLOW_ONLY);
    env.cmd(["apply"]).assert().success().stdout(
        "- cancel   a                removed from jobfile (1 pending)\n\
         Plan: 0 to enqueue, 0 to update, 1 to cancel.\n",
    );
    env.write("queuectl.toml", SLOW_AND_A);
    env.cmd(["plan"]).assert().success().stdout(
        "+ enqueue  a                restored to the jobfile\n\
         Plan: 1 to enqueue, 0 to update, 0 to cancel.\n",
    );
    env.cmd(["apply"]).assert().success();
    env.write("release", "");
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(env.read("a.out"), "a\n");
    env.cmd(["plan"]).assert().success().stdout("No changes.\n");
}

#[test]
fn a_jobfile_briefly_empty_under_run_cancels_nothing() {
    let env = Env::new();
    env.write("queuectl.toml", SLOW_AND_A);
    let run = env.spawn(&["run"]);
    wait_until("slow runs", || {
        env.jobs_of("slow").first().map(|j| j["state"].clone()) == Some("processing".into())
    });
    // `cat > queuectl.toml` (or a non-atomic save, or a checkout of a
    // branch without the job): the file is empty for a second.
    env.write("queuectl.toml", "");
    std::thread::sleep(Duration::from_secs(1));
    env.write("queuectl.toml", SLOW_AND_A);
    env.write("release", "");
    wait_until("a ran", || env.read("a.out") == "a\n");
    let states: Vec<String> = env.states().into_iter().map(|(_, s)| s).collect();
    assert_eq!(states, vec!["completed", "completed"], "{}", run.output());
    assert!(!run.output().contains("- cancel"), "{}", run.output());
}

#[test]
fn pruned_history_does_not_rerun_finished_work() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.a]\ncommand = \"echo run >> a.out\"\n",
    );
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    wait_until("the finished job is pruned", || {
        env.cmd(["prune", "--older-than", "0s"])
            .output()
            .is_ok_and(|o| o.stdout == b"pruned 1 job(s)\n")
    });
    env.cmd(["plan"]).assert().success().stdout("No changes.\n");
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(env.read("a.out"), "run\n", "ran once: {output}");
    // A dependent added later runs: its dependency completed, though its
    // history is gone.
    env.write(
        "queuectl.toml",
        "[jobs.a]\ncommand = \"echo run >> a.out\"\n\
         [jobs.b]\ncommand = \"echo b >> b.out\"\nafter = [\"a\"]\n",
    );
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(env.read("b.out"), "b\n", "{output}");
    assert_eq!(env.read("a.out"), "run\n");
}

#[test]
fn workers_pruning_keep_finished_do_not_rerun_finished_work() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[settings]\nkeep_finished = \"1ms\"\n[jobs.a]\ncommand = \"echo run >> a.out\"\n",
    );
    let run = env.spawn(&["run", "--no-watch"]);
    wait_until("a ran and its history was pruned", || {
        env.read("a.out") == "run\n" && env.states().is_empty()
    });
    run.signal("TERM");
    assert_eq!(run.wait().0, Some(143));
    env.cmd(["plan"]).assert().success().stdout("No changes.\n");
}

#[test]
fn a_worker_declared_dead_while_stopped_records_nothing_when_it_resumes() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[settings]\nlease = \"1s\"\n\
         [jobs.long]\ncommand = \"echo $QUEUECTL_ATTEMPT >> starts; sleep 2\"\n\
         retry = { max_retries = 3, backoff_base = 1, max_delay = \"10ms\" }\n",
    );
    env.cmd(["apply"]).assert().success();
    let first = env.worker(&["--count", "1"]);
    wait_until("the first attempt runs", || env.read("starts") == "1\n");
    first.signal("STOP");
    let second = env.worker(&["--count", "1"]);
    wait_until("the second worker rescues the job", || {
        env.read("starts") == "1\n2\n"
    });
    let job = &env.jobs_of("long")[0];
    let id = job["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(env.job(&id)["attempt_history"][0]["outcome"], "lost");
    first.signal("CONT");
    first.wait_for_output("declared dead");
    wait_until("the rescued attempt completes", || {
        env.state(&id) == "completed"
    });
    let job = env.job(&id);
    let outcomes: Vec<&Value> = job["attempt_history"]
        .as_array()
        .map(|a| a.iter().map(|x| &x["outcome"]).collect())
        .unwrap_or_default();
    assert_eq!(outcomes, vec!["lost", "completed"], "{job}");
    assert_eq!(env.read("starts"), "1\n2\n");
    let output = first.output();
    assert!(!output.contains("worker stop --force"), "{output}");
    // Both go on, under ids of their own.
    let ids: std::collections::BTreeSet<String> =
        workers(&env).iter().map(|w| w["id"].to_string()).collect();
    assert_eq!(ids.len(), 2, "{:?}", workers(&env));
    drop(second);
}

/// A job that runs until `release` exists, counting its starts.
const HOLD: &str = "echo $QUEUECTL_ATTEMPT >> starts; while [ ! -f release ]; do sleep 0.05; done";

#[test]
fn a_worker_whose_clock_is_ahead_rescues_no_live_job() {
    if !require("faketime") {
        return;
    }
    // The `faketime` program forks; preloading its library keeps the pid.
    let lib = super::harness::libfaketime();
    let env = Env::new();
    let id = env.enqueue(&[HOLD]);
    let _live = env.worker(&["--count", "1"]);
    wait_until("the job runs", || env.read("starts") == "1\n");
    let ahead = env.spawn_with(
        &["worker", "start", "--foreground", "--count", "1"],
        &[
            ("LD_PRELOAD", lib.to_str().unwrap_or_default()),
            ("FAKETIME", "+60s"),
        ],
    );
    // Its heartbeats are 2 s apart: after two, it has looked at the other
    // worker several times.
    wait_heartbeats(&env, u64::from(ahead.pid()), 2, 2_000);
    assert_eq!(env.read("starts"), "1\n", "{}", ahead.output());
    env.write("release", "");
    wait_until("the job completes", || env.state(&id) == "completed");
    assert_eq!(env.job(&id)["attempts"], 1);
}

#[test]
fn a_worker_in_another_pid_namespace_is_not_declared_dead() {
    if !require("unshare") {
        return;
    }
    let env = Env::new();
    let id = env.enqueue(&[HOLD]);
    // Same host name, another PID namespace: its pid means nothing here.
    let script = format!(
        "echo 99998 > /proc/sys/kernel/ns_last_pid; '{}' worker start --foreground --count 1",
        bin().display()
    );
    let _inside = env.start({
        let mut command = env.command("unshare");
        command.args([
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
            &script,
        ]);
        command
    });
    wait_until("the job runs", || env.read("starts") == "1\n");
    assert_eq!(
        workers(&env)[0]["pid"],
        99_999,
        "the worker runs in its own namespace"
    );
    let outside = env.worker(&["--count", "1"]);
    wait_heartbeats(&env, u64::from(outside.pid()), 2, 2_000);
    assert_eq!(env.read("starts"), "1\n", "{}", outside.output());
    env.write("release", "");
    wait_until("the job completes", || env.state(&id) == "completed");
    assert_eq!(env.job(&id)["attempts"], 1);
    assert_eq!(workers(&env).len(), 2, "neither declared the other dead");
}

#[test]
fn workers_are_bounded() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 100000\n[jobs.a]\ncommand = \"true\"\n",
    );
    env.cmd(["validate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`queues.default.workers` is 100000: at most 1024 jobs of a queue run at once",
        ));
    let env = Env::new();
    env.cmd(["run", "--workers", "5000"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--workers is 5000: at most 1024"));
    env.cmd(["worker", "start", "--count", "2000"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--count is 2000: at most 1024"));
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 1000\n[queues.b]\nworkers = 1000\n",
    );
    env.cmd(["run", "--until-idle"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the pools add up to 2000 workers: one process runs at most 1024",
        ));
    assert!(!env.file(".queuectl").exists(), "nothing was created");
    assert!(!env.data_home().exists(), "nothing was created");
}

/// A SQLite database of another program, in rollback-journal mode.
fn foreign_database(env: &Env, name: &str, schema: &str) -> Vec<u8> {
    let path = env.file(name);
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(schema).expect("schema");
    drop(conn);
    std::fs::read(&path).expect("read")
}

#[test]
fn another_programs_database_is_never_touched() {
    let env = Env::new();
    let notes = foreign_database(
        &env,
        "notes.db",
        "CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine');",
    );
    for args in [
        &["status"][..],
        &["list"],
        &["plan"],
        &["enqueue", "true"],
        &["apply"],
        &["worker", "start", "--until-idle"],
    ] {
        let mut full = vec!["--db", "notes.db"];
        full.extend_from_slice(args);
        env.write("queuectl.toml", "[jobs.a]\ncommand = \"true\"\n");
        env.cmd(&full).assert().code(2).stderr(
            predicate::str::contains("notes.db`: not a queuectl database").and(
                predicate::str::contains("it holds tables of another program (`notes`)"),
            ),
        );
        assert_eq!(
            std::fs::read(env.file("notes.db")).expect("read"),
            notes,
            "{args:?}"
        );
        assert!(
            !env.file("notes.db-wal").exists(),
            "{args:?} switched it to WAL"
        );
    }
    // One whose `jobs` table is not queuectl's: refused the same way, not
    // with a failed migration.
    let jobs = foreign_database(&env, "jobs.db", "CREATE TABLE jobs (name TEXT);");
    env.cmd(["--db", "jobs.db", "enqueue", "true"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("jobs.db`: not a queuectl database")
                .and(predicate::str::contains("CREATE").not()),
        );
    assert_eq!(std::fs::read(env.file("jobs.db")).expect("read"), jobs);
}

#[test]
fn read_commands_on_a_new_queue_create_nothing_and_an_empty_file_is_adopted() {
    let env = Env::new();
    env.write("empty.db", "");
    env.cmd(["--db", "empty.db", "status"]).assert().success();
    assert_eq!(
        std::fs::metadata(env.file("empty.db"))
            .map(|m| m.len())
            .ok(),
        Some(0)
    );
    env.cmd(["--db", "empty.db", "enqueue", "--id", "x", "true"])
        .assert()
        .success();
    env.cmd(["--db", "empty.db", "--json", "show", "x"])
        .assert()
        .success();
}

#[test]
fn concurrent_config_sets_lose_no_update() {
    let env = Env::new();
    env.write("queuectl.toml", "# queues set concurrently\n");
    let children: Vec<_> = (0..40)
        .map(|i| {
            std::process::Command::new(bin())
                .current_dir(env.path())
                .env_remove("QUEUECTL_FILE")
                .args([
                    "config",
                    "set",
                    &format!("queues.q{i}.workers"),
                    &(i + 1).to_string(),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("config set")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..40 {
        env.cmd(["config", "get", &format!("queues.q{i}.workers")])
            .assert()
            .success()
            .stdout(format!("{}\n", i + 1));
    }
}

#[test]
fn special_files_are_refused_at_once() {
    let env = Env::new();
    let fifo = env.file("jobs.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let fifo = fifo.to_str().unwrap_or_default();
    let ten = Duration::from_secs(10);
    for args in [
        &["-f", fifo, "validate"][..],
        &["-f", fifo, "status"],
        &["-f", "/dev/zero", "validate"],
        &["-f", "/dev/zero", "enqueue", "true"],
    ] {
        env.cmd(args)
            .timeout(ten)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("is not a regular file"));
    }
    for file in [fifo, "/dev/zero"] {
        env.cmd(["enqueue", "--file", file])
            .timeout(ten)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("is not a regular file"));
    }
    // Regular files and stdin have a size limit.
    let big = "# padding\n".repeat(2_000_000);
    env.write("queuectl.toml", &big);
    env.cmd(["validate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is larger than 16 MiB"));
    std::fs::remove_file(env.file("queuectl.toml")).expect("rm");
    env.cmd(["enqueue", "--file", "-"])
        .write_stdin(vec![b' '; 65 * 1024 * 1024])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("larger than 64 MiB"));
    assert!(env.states().is_empty());
}

#[test]
fn input_that_can_never_succeed_is_refused() {
    let env = Env::new();
    let long = "x".repeat(200 * 1024);
    env.write("long.json", &format!("{{\"command\": \"echo {long}\"}}"));
    let table: &[(&[&str], &str)] = &[
        (
            &["enqueue", r#"{"command": "true", "delay": 1e16}"#],
            "field `delay` is too long: `10000000000000000` seconds (at most 100 years)",
        ),
        (
            &["enqueue", "--delay", "300000d", "true"],
            "--delay is too long: `300000d` (at most 100 years)",
        ),
        (
            &["enqueue", r#"{"command": "a\u0000b"}"#],
            "field `command` contains a NUL byte",
        ),
        (
            &[
                "enqueue",
                r#"{"command": "true", "env": {"A": "x\u0000y"}}"#,
            ],
            "`env.A` contains a NUL byte",
        ),
        (
            &["enqueue", "--file", "long.json"],
            "field `command` is 204805 bytes: at most 128000 can be run",
        ),
        (
            &["enqueue", "--env", "A=${X", "true"],
            "unclosed `${` in `${X`",
        ),
        (
            &["enqueue", r#"{"command": "a", "command": "b"}"#],
            "duplicate field `command`",
        ),
        (
            &[
                "enqueue",
                r#"{"command": "a", "env": {"A": "1", "A": "2"}}"#,
            ],
            "duplicate key `A`",
        ),
        (&["enqueue", "--timeout", "10", "true"], "write a unit"),
    ];
    for (args, message) in table {
        env.cmd(*args).assert().code(2).stderr(
            predicate::str::contains(*message).and(predicate::str::contains("panicked").not()),
        );
    }
    assert!(env.states().is_empty());
    for (jobfile, message) in [
        (
            "[jobs.a]\ncommand = \"true\"\ntimeout = \"0s\"\n",
            "`jobs.a.timeout` is 0s",
        ),
        (
            "[jobs.a]\ncommand = \"true\"\ntimeout = \"10\"\n",
            "invalid duration `10`: write a unit",
        ),
        (
            "[jobs.a]\ncommand = \"a\\u0000b\"\n",
            "`jobs.a.command` contains a NUL byte",
        ),
        (
            "[jobs.a]\ncommand = \"true\"\nenv = { A = \"x\\u0000\" }\n",
            "`jobs.a.env.A` contains a NUL byte",
        ),
    ] {
        env.write("queuectl.toml", jobfile);
        env.cmd(["validate"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
    }
    env.write(
        "queuectl.toml",
        &format!("[jobs.a]\ncommand = \"{long}\"\n"),
    );
    env.cmd(["validate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`jobs.a.command` is 204800 bytes: at most 128000 can be run",
        ));
}

#[test]
fn no_descendant_of_a_job_outlives_it() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.detach]\ncommand = \"setsid sleep 1000 & echo $! > detach.pid\"\n\
         [jobs.timeout]\ncommand = \"setsid sleep 1000 & echo $! > timeout.pid; sleep 30\"\n\
         timeout = \"500ms\"\nretry = { max_retries = 0 }\n",
    );
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1), "the timeout is a failure: {output}");
    for file in ["detach.pid", "timeout.pid"] {
        let pid: u32 = env.read(file).trim().parse().expect("a pid");
        wait_until(&format!("{file}'s process is gone"), || !alive(pid));
    }
    // And a shutdown.
    env.write(
        "queuectl.toml",
        "[jobs.hold]\ncommand = \"setsid sleep 1000 & echo $! > hold.pid; sleep 30\"\n",
    );
    let run = env.spawn(&["run"]);
    wait_until("the job started its escapee", || {
        !env.read("hold.pid").is_empty()
    });
    run.signal("TERM");
    run.signal("TERM");
    let (code, _) = run.wait();
    assert_eq!(code, Some(143));
    let pid: u32 = env.read("hold.pid").trim().parse().expect("a pid");
    wait_until("hold's escapee is gone", || !alive(pid));
}

#[test]
fn messages_say_what_happened() {
    let env = Env::new();
    // A symlink loop is not "no jobfile".
    std::os::unix::fs::symlink("queuectl.toml", env.file("queuectl.toml")).expect("symlink");
    env.cmd(["validate"]).assert().code(2).stderr(
        predicate::str::contains("queuectl.toml` is a symbolic link that cannot be followed")
            .and(predicate::str::contains("create one").not()),
    );
    env.cmd(["status"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be followed"));
    std::fs::remove_file(env.file("queuectl.toml")).expect("rm");
}

#[test]
fn a_worker_that_fails_on_a_full_disk_does_not_say_nothing_changed() {
    if !require("prlimit") {
        return;
    }
    let env = Env::new();
    let lines: String = (0..3_000)
        .map(|i| format!("{{\"command\": \"echo {i} {}\"}}\n", "x".repeat(400)))
        .collect();
    env.write("jobs.jsonl", &lines);
    env.cmd(["enqueue", "--file", "jobs.jsonl"])
        .assert()
        .success();
    // Room for a few more writes than the files hold now, not for all.
    let size = ["queue.db", "queue.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(env.queue_file(f)).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0);
    let limit = size + 300_000;
    let out = env
        .command("prlimit")
        .arg(format!("--fsize={limit}:{limit}"))
        .arg(bin())
        .args(["worker", "start", "--until-idle", "--count", "1"])
        .output()
        .expect("prlimit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("done"), "it ran jobs first: {stdout}");
    assert!(stderr.contains("a write failed"), "{stderr}");
    assert!(!stderr.contains("nothing was changed"), "{stderr}");
}

#[test]
fn rows_and_directories_queuectl_did_not_make_are_not_trusted() {
    let env = Env::new();
    // A pre-existing world-writable .queuectl/ is tightened.
    env.write("queuectl.toml", "");
    std::fs::create_dir(env.file(".queuectl")).expect("mkdir");
    std::fs::set_permissions(
        env.file(".queuectl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    env.enqueue(&["--id", "ok", "true"]);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.file(".queuectl"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    // A crafted row whose id is a path: never becomes a file name.
    std::fs::write(env.file("victim.1.log"), "keep me").expect("write");
    let conn = rusqlite::Connection::open(env.file(".queuectl/queue.db")).expect("open");
    conn.execute(
        "INSERT INTO jobs (id, command, origin, queue, state, max_retries, backoff_base, run_at, \
         created_at, updated_at) SELECT '../../victim', 'echo escaped', origin, queue, 'pending', \
         0, 2.0, 0, 0, 0 FROM jobs WHERE id = 'ok'",
        [],
    )
    .expect("crafted row");
    drop(conn);
    let (code, output) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(1), "{output}");
    assert_eq!(env.read("victim.1.log"), "keep me");
    let crafted = env.job("../../victim");
    assert_eq!(crafted["state"], "dead", "{crafted}");
    assert!(
        crafted["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid job id"),
        "{crafted}"
    );
    env.cmd(["prune", "--state", "dead", "--older-than", "0s"])
        .assert()
        .success();
    assert_eq!(env.read("victim.1.log"), "keep me");
}
