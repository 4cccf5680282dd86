//! Every form of `enqueue`, and the read commands' output.

use predicates::prelude::*;

use super::harness::{Env, SpawnExt, time};

#[test]
fn a_plain_command_gets_a_generated_id() {
    let env = Env::new();
    let out = env
        .cmd(["enqueue", "echo", "hello", "world"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().strip_prefix("enqueued ").expect("enqueued ID");
    assert_eq!(id.len(), 12);
    let job = env.job(id);
    assert_eq!(job["command"], "echo hello world");
    assert_eq!(
        (job["queue"].as_str(), job["max_retries"].as_u64()),
        (Some("default"), Some(3))
    );
    assert_eq!(job["backoff_base"], 2.0);
    assert_eq!(job["origin"], "cli");
}

#[test]
fn flags_set_every_field() {
    let env = Env::new();
    env.cmd([
        "enqueue",
        "--id",
        "full",
        "--queue",
        "deploy",
        "--priority",
        "7",
        "--max-retries",
        "5",
        "--timeout",
        "90s",
        "--delay",
        "10m",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "./deploy.sh",
    ])
    .assert()
    .success()
    .stdout("enqueued full\n");
    let job = env.job("full");
    assert_eq!(job["queue"], "deploy");
    assert_eq!(job["priority"], 7);
    assert_eq!(job["max_retries"], 5);
    assert_eq!(job["timeout_ms"], 90_000);
    assert_eq!(job["env"], serde_json::json!([["A", "1"], ["B", "x=y"]]));
    let wait = time(&job["run_at"]) - time(&job["created_at"]);
    assert!((599_000..=601_000).contains(&wait), "{wait}");
}

#[test]
fn a_seed_json_job() {
    let env = Env::new();
    env.cmd([
        "enqueue",
        r#"{"id":"job1","command":"sleep 2","state":"pending","attempts":0,"max_retries":3,"created_at":"2025-11-04T10:30:00Z","updated_at":"2025-11-04T10:30:00Z"}"#,
    ])
    .assert()
    .success()
    .stdout("enqueued job1\n");
    assert_eq!(env.job("job1")["command"], "sleep 2");
}

#[test]
fn files_of_every_shape_and_stdin() {
    let env = Env::new();
    env.write("one.json", r#"{"id": "o1", "command": "true"}"#);
    env.write(
        "many.json",
        r#"[{"id": "a1", "command": "true"}, {"id": "a2", "command": "true", "priority": 3}]"#,
    );
    env.write(
        "lines.jsonl",
        "{\"id\": \"l1\", \"command\": \"true\"}\n\n{\"id\": \"l2\", \"command\": \"true\"}\n",
    );
    env.cmd(["enqueue", "--file", "one.json"])
        .assert()
        .success()
        .stdout("enqueued o1\n");
    env.cmd(["enqueue", "-f", "many.json", "--queue", "bulk"])
        .assert()
        .success()
        .stdout("enqueued 2 jobs\n");
    // A lone argument naming a .jsonl file is read as --file.
    env.cmd(["enqueue", "lines.jsonl"])
        .assert()
        .success()
        .stdout("enqueued 2 jobs\n");
    env.cmd(["enqueue", "--file", "-"])
        .write_stdin(
            "{\"id\": \"s1\", \"command\": \"true\"}\n{\"id\": \"s2\", \"command\": \"true\"}\n",
        )
        .assert()
        .success()
        .stdout("enqueued 2 jobs\n");
    assert_eq!(env.states().len(), 7);
    assert_eq!(
        env.job("a2")["queue"],
        "bulk",
        "flags are defaults for file jobs"
    );
    assert_eq!(env.job("a2")["priority"], 3);
}

#[test]
fn dry_run_changes_nothing() {
    let env = Env::new();
    env.cmd(["enqueue", "--dry-run", "--id", "x", "make test"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "dry run: 1 job(s) would be enqueued",
        ));
    assert!(env.states().is_empty());
    assert!(
        !env.file(".queuectl").exists(),
        "nothing is created on disk"
    );
    assert!(!env.data_home().exists(), "nothing is created on disk");
}

#[test]
fn read_commands_on_an_empty_directory_create_nothing() {
    let env = Env::new();
    env.cmd(["list"]).assert().success().stdout("no jobs\n");
    env.cmd(["status"])
        .assert()
        .success()
        .stdout("no jobs\n\nworkers: 0 live\n");
    env.cmd(["dlq", "list"])
        .assert()
        .success()
        .stdout("the dead letter queue is empty\n");
    assert!(!env.file(".queuectl").exists());
    assert!(!env.data_home().exists());
}

#[test]
fn the_database_sits_beside_the_nearest_jobfile() {
    let env = Env::new();
    env.write("queuectl.toml", "");
    std::fs::create_dir_all(env.file("a/b")).expect("mkdir");
    env.cmd(["enqueue", "true"])
        .current_dir(env.file("a/b"))
        .assert()
        .success();
    assert!(env.file(".queuectl/queue.db").is_file());
    assert!(!env.file("a/b/.queuectl").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.file(".queuectl"))
            .expect("dir")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(env.read(".queuectl/.gitignore"), "*\n");
    // --db and QUEUECTL_DB override.
    env.cmd(["--db", "elsewhere.db", "enqueue", "true"])
        .assert()
        .success();
    env.cmd(["list", "--json"])
        .env("QUEUECTL_DB", env.file("elsewhere.db"))
        .assert()
        .success()
        .stdout(predicate::str::contains("\"command\": \"true\"").count(1));
}

#[test]
fn status_and_list_in_json() {
    let env = Env::new();
    env.enqueue(&["true"]);
    env.enqueue(&["--queue", "q2", "true"]);
    let status = env.json(&["status"]);
    assert_eq!(status["totals"]["pending"], 2);
    // Queues are a list of queue objects (issue 15's JSON contract).
    assert_eq!(status["queues"][1]["name"], "q2");
    assert_eq!(status["queues"][1]["counts"]["pending"], 1);
    assert_eq!(status["workers"], serde_json::json!([]));
    // Lists are `{"items": [...], "total": N}` (issue 15's JSON contract):
    // the total counts every match, past the limit.
    let list = env.json(&["list", "--state", "running"]);
    assert_eq!(list, serde_json::json!({"items": [], "total": 0}));
    let list = env.json(&["list", "--limit", "1"]);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["total"], 2, "{list}");
}

#[test]
fn completions_are_generated() {
    let env = Env::new();
    // The script registers clap_complete's dynamic completer (issue 15): it
    // names no command itself; queuectl completes them when asked.
    env.cmd(["completions", "bash"]).assert().success().stdout(
        predicate::str::contains("_clap_complete_queuectl()").and(predicate::str::contains(
            "-F _clap_complete_queuectl queuectl",
        )),
    );
    env.cmd(["--", "queuectl", "enq"])
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "1")
        .assert()
        .success()
        .stdout("enqueue");
    env.cmd(["completions", "zsh"])
        .assert()
        .success()
        .stdout(predicate::str::contains("#compdef queuectl"));
}

#[test]
fn dlq_remove_asks_unless_told() {
    let env = Env::new();
    let id = env.enqueue(&["--max-retries", "0", "false"]);
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(1));
    env.cmd(["dlq", "remove"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "refusing to remove every dead job without confirmation",
        ));
    assert_eq!(env.state(&id), "dead");
    env.cmd(["dlq", "remove", "--yes"])
        .assert()
        .success()
        .stdout(format!("removed {id}\n"));
    env.cmd(["show", &id]).assert().code(2);
}

#[test]
fn many_processes_creating_the_database_at_once_all_succeed() {
    // SQLite can refuse the switch to WAL at once (no busy wait) when
    // another process creates the same database: every open must retry.
    for _ in 0..20 {
        let env = Env::new();
        let children: Vec<_> = (0..8)
            .map(|i| {
                let args: &[&str] = if i % 2 == 0 {
                    &["enqueue", "true"]
                } else {
                    &["list"]
                };
                env.cmd(args).assert_child()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("a process");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(env.states().len(), 4);
    }
}

#[test]
fn verbose_names_the_files_in_use() {
    let env = Env::new();
    env.cmd(["-v", "list"]).assert().success().stderr(
        predicate::str::contains("jobfile: none found\ndatabase: ").and(predicate::str::contains(
            env.queue_file("queue.db").display().to_string(),
        )),
    );
    env.write("queuectl.toml", "");
    env.cmd(["--verbose", "--json", "list"])
        .assert()
        .success()
        .stdout("{\n  \"items\": [],\n  \"total\": 0\n}\n")
        .stderr(predicate::str::contains("queuectl.toml"));
}
