//! A job's life through real workers: completion, retries with backoff,
//! the dead letter queue and back, timeouts, output.

use predicates::prelude::*;

use super::harness::{Env, alive, time, wait_until};

#[test]
fn the_seed_flow_completes_retries_and_dead_letters() {
    let env = Env::new();
    let ok = env.enqueue(&["echo ok"]);
    // Fails until `fixed` exists; one retry after 2 s (backoff_base 2 ^ 1).
    let flaky = env.enqueue(&["--max-retries", "1", "test -f fixed"]);
    let broken = env.enqueue(&["--max-retries", "1", "exit 3"]);

    let worker = env.worker(&["--until-idle", "--count", "2"]);
    let (code, output) = worker.wait();
    assert_eq!(
        code,
        Some(1),
        "until-idle exits 1 when a job is dead:\n{output}"
    );
    assert!(output.contains("1 completed, 2 dead"), "{output}");
    assert!(
        output.contains(&format!(
            "dead      {broken}  exit code 3 after 2 attempt(s)"
        )),
        "{output}"
    );

    // A fresh process reads what the workers left: state survived them.
    assert_eq!(env.state(&ok), "completed");
    assert_eq!(env.state(&flaky), "dead");
    let dead = env.job(&broken);
    assert_eq!(dead["state"], "dead");
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["exit_code"], 3);
    let history = dead["attempt_history"].as_array().expect("attempts");
    assert_eq!(history.len(), 2);
    let gap = time(&history[1]["started_at"]) - time(&history[0]["finished_at"]);
    assert!(
        gap >= 1_900,
        "retry 1 waits backoff_base^1 = 2 s, waited {gap} ms"
    );

    env.cmd(["dlq", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&flaky).and(predicate::str::contains(&broken)));
    env.cmd(["dlq", "stats"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 dead job(s)"));

    // Retry one dead job: it runs again, from zero attempts, and completes.
    env.write("fixed", "");
    env.cmd(["dlq", "retry", &flaky])
        .assert()
        .success()
        .stdout(format!("retried {flaky}\n"));
    assert_eq!(env.state(&flaky), "pending");
    assert_eq!(env.job(&flaky)["attempts"], 0);
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(0));
    let retried = env.job(&flaky);
    assert_eq!(retried["state"], "completed");
    assert_eq!(retried["attempt_history"].as_array().map(Vec::len), Some(3));
    assert_eq!(env.state(&broken), "dead");
}

#[test]
fn zero_retries_go_straight_to_dead() {
    let env = Env::new();
    let id = env.enqueue(&["--max-retries", "0", "exit 1"]);
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(1));
    let job = env.job(&id);
    assert_eq!(
        (job["state"].as_str(), job["attempts"].as_u64()),
        (Some("dead"), Some(1))
    );
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let env = Env::new();
    let id = env.enqueue(&[
        "--timeout",
        "500ms",
        "--max-retries",
        "0",
        "sh -c 'sleep 30 & echo $! > grandchild.pid; wait'",
    ]);
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(1));
    let job = env.job(&id);
    assert_eq!(job["state"], "dead");
    assert_eq!(job["exit_code"], 124);
    assert_eq!(job["attempt_history"][0]["outcome"], "timeout");
    let pid: u32 = env
        .read("grandchild.pid")
        .trim()
        .parse()
        .expect("the grandchild's pid");
    wait_until("the grandchild is gone", || !alive(pid));
}

#[test]
fn death_by_signal_and_commands_that_cannot_start() {
    let env = Env::new();
    let killed = env.enqueue(&["--max-retries", "0", "kill -9 $$"]);
    let nowhere = env.enqueue(&["--max-retries", "0", "true"]);
    // The job's working directory disappears before it runs.
    let json = format!(
        r#"{{"id": "lost-dir", "command": "true", "cwd": "{}", "max_retries": 0}}"#,
        env.file("gone").display()
    );
    std::fs::create_dir(env.file("gone")).expect("mkdir");
    env.cmd(["enqueue", &json]).assert().success();
    std::fs::remove_dir(env.file("gone")).expect("rmdir");
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(1));
    assert_eq!(env.job(&killed)["exit_code"], 137);
    assert_eq!(env.state(&nowhere), "completed");
    let lost = env.job("lost-dir");
    assert_eq!(lost["exit_code"], 127);
    assert!(
        lost["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist"),
        "{lost}"
    );
}

#[test]
fn output_of_every_attempt_is_kept_and_shown() {
    let env = Env::new();
    let id = env.enqueue(&[
        "--max-retries",
        "1",
        "echo \"try $QUEUECTL_ATTEMPT\"; echo oops >&2; test $QUEUECTL_ATTEMPT = 2",
    ]);
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(0));
    env.cmd(["logs", &id])
        .assert()
        .success()
        .stdout("try 2\noops\n");
    env.cmd(["logs", &id, "--attempt", "1"])
        .assert()
        .success()
        .stdout("try 1\noops\n");
    env.cmd(["logs", &id, "--attempt", "3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "job `{id}` has no attempt 3"
        )));
    let logs = std::fs::read_dir(env.queue_file("queue.logs")).expect("logs dir");
    for entry in logs {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &entry
                .expect("entry")
                .metadata()
                .expect("meta")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn huge_output_keeps_only_the_tail() {
    let env = Env::new();
    // 100 MB of output, then a last line: the log keeps 1 MiB.
    let id = env.enqueue(&["head -c 100000000 /dev/zero | tr '\\0' x; echo; echo the-end"]);
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(0));
    let out = env.cmd(["logs", &id]).output().expect("logs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("[queuectl: "),
        "{}",
        &text[..80.min(text.len())]
    );
    assert!(text.ends_with("x\nthe-end\n"));
    assert!(
        out.stdout.len() <= 1024 * 1024 + 100,
        "{} bytes kept",
        out.stdout.len()
    );
    assert_eq!(
        env.job(&id)["attempt_history"][0]["output_bytes"],
        100_000_000 + 9
    );
    let log = env.queue_file(&format!("queue.logs/{id}.1.log"));
    let size = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    assert!(size <= 1024 * 1024 + 100, "bounded on disk: {size} bytes");
}

#[test]
fn logs_follow_streams_until_the_job_ends() {
    let env = Env::new();
    let id = env.enqueue(&["echo one; sleep 0.5; echo two"]);
    let _worker = env.worker(&["--count", "1"]);
    wait_until("the job starts", || env.state(&id) != "pending");
    env.cmd(["logs", "--follow", &id])
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .success()
        .stdout("one\ntwo\n");
    assert_eq!(env.state(&id), "completed");
}

/// `logs --follow` of a job cancelled before it ever ran ends: it no
/// longer waits for a first attempt that cannot come.
#[test]
fn logs_follow_ends_when_the_job_is_cancelled_before_it_ran() {
    let env = Env::new();
    let id = env.enqueue(&["--delay", "1h", "echo never"]);
    let follower = env.spawn(&["logs", "--follow", &id]);
    env.cmd(["cancel", &id]).assert().success();
    let (code, output) = follower.wait();
    assert_eq!((code, output.as_str()), (Some(0), ""));
}

#[test]
fn higher_priority_runs_first_then_fifo() {
    let env = Env::new();
    for (name, priority) in [("a", "0"), ("b", "0"), ("c", "5"), ("d", "-1"), ("e", "5")] {
        env.cmd([
            "enqueue",
            "--id",
            name,
            "--priority",
            priority,
            "echo $QUEUECTL_JOB_ID >> order",
        ])
        .assert()
        .success();
    }
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(0));
    assert_eq!(env.read("order"), "c\ne\na\nb\nd\n");
}

#[test]
fn delayed_jobs_wait_for_their_time() {
    let env = Env::new();
    let later = env.enqueue(&["--delay", "1h", "true"]);
    let now = env.enqueue(&["true"]);
    let worker = env.worker(&["--count", "1"]);
    wait_until("the ready job completes", || env.state(&now) == "completed");
    assert_eq!(env.state(&later), "pending");
    drop(worker);
}

#[test]
fn prune_deletes_old_finished_jobs_and_their_logs() {
    let env = Env::new();
    let done = env.enqueue(&["echo hi"]);
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(0));
    let waiting = env.enqueue(&["--delay", "1h", "true"]);
    env.cmd(["prune", "--older-than", "1h"])
        .assert()
        .success()
        .stdout("pruned 0 job(s)\n");
    std::thread::sleep(std::time::Duration::from_millis(20));
    env.cmd(["prune", "--older-than", "0s"])
        .assert()
        .success()
        .stdout("pruned 1 job(s)\n");
    env.cmd(["show", &done]).assert().code(2);
    assert!(!env.queue_file(&format!("queue.logs/{done}.1.log")).exists());
    assert_eq!(env.state(&waiting), "pending");
    env.cmd(["prune", "--state", "pending"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot prune pending jobs: they have not finished",
        ));
}
