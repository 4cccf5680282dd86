//! `queuectl queue pause|resume|list`, and what each worker runs
//! (`worker status`, `status`), on both drivers.

use predicates::prelude::*;

use super::harness::{Env, wait_until};

/// A paused queue keeps its jobs through a whole `--until-idle` run and
/// a restart, shows in `status` and `queue list`, and a running `run`
/// takes them as soon as it is resumed.
fn a_paused_queue_claims_nothing_until_resumed(env: &Env) {
    let held = env.enqueue(&["--queue", "deploy", "echo deployed"]);
    env.cmd(["queue", "pause", "deploy"])
        .assert()
        .success()
        .stdout("paused deploy: its waiting jobs stay until `queuectl queue resume deploy`\n");
    env.cmd(["queue", "pause", "deploy"])
        .assert()
        .success()
        .stdout("deploy was paused already\n");
    let free = env.enqueue(&["echo free"]);

    // A CI step: the other queue drains, the paused one is left and said.
    let output = env
        .cmd(["run", "--until-idle", "--progress", "never"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "warning   queue `deploy` is paused: its jobs wait for `queuectl queue resume deploy`\n"
        ),
        "{stdout}"
    );
    assert_eq!(env.state(&free), "completed");
    assert_eq!(env.state(&held), "pending");

    // A new process (a restart) sees the pause too.
    let (code, output) = env.worker(&["--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(env.state(&held), "pending");

    let list = env.json(&["queue", "list"]);
    assert_eq!(list["total"], 2, "{list}");
    let deploy = &list["items"][1];
    assert_eq!(deploy["name"], "deploy", "{list}");
    assert_eq!(deploy["paused"], true, "{list}");
    assert_eq!(deploy["counts"]["pending"], 1, "{list}");
    let paused_at = deploy["paused_at"].as_str().expect("an RFC 3339 time");
    assert!(
        paused_at.ends_with('Z') && paused_at.contains('T'),
        "{paused_at}"
    );
    assert_eq!(list["items"][0]["paused"], false, "{list}");
    let status = env.json(&["status"]);
    assert_eq!(status["queues"][1]["paused"], true, "{status}");
    env.cmd(["status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deploy (paused)"));
    env.cmd(["queue", "list"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^deploy +- +0 +1 +paused .*ago$").expect("regex"));

    // Resumed while a worker idles: it takes the job at once.
    let worker = env.worker(&["--count", "1"]);
    wait_until("the worker registers", || {
        !env.items(&["worker", "status"]).is_empty()
    });
    assert_eq!(env.state(&held), "pending");
    env.cmd(["--json", "queue", "resume", "deploy"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            r#""queue": "deploy",
      "paused": false,
      "changed": true"#,
        ));
    wait_until("the resumed job completes", || {
        env.state(&held) == "completed"
    });
    drop(worker);
    env.cmd(["queue", "resume", "deploy"])
        .assert()
        .success()
        .stdout("deploy was not paused\n");
}

#[test]
fn a_paused_queue_claims_nothing_until_resumed_on_sqlite() {
    a_paused_queue_claims_nothing_until_resumed(&Env::new());
}

#[test]
fn a_paused_queue_claims_nothing_until_resumed_on_postgres() {
    if let Some(env) = Env::postgres() {
        a_paused_queue_claims_nothing_until_resumed(&env);
    }
}

/// A jobfile's job left waiting in a paused queue is not a green CI step.
#[test]
fn until_idle_fails_when_a_declared_job_waits_in_a_paused_queue() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[queues.deploy]\nworkers = 1\n\
         [jobs.ship]\ncommand = \"echo shipped\"\nqueue = \"deploy\"\n\
         [jobs.lint]\ncommand = \"true\"\n",
    );
    env.cmd(["queue", "pause", "deploy"]).assert().success();
    let output = env
        .cmd(["run", "--until-idle", "--progress", "never"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("queue `deploy` is paused"), "{stdout}");
    assert_eq!(env.jobs_of("lint")[0]["state"], "completed");
    assert_eq!(env.jobs_of("ship")[0]["state"], "pending");
    // Resumed, the same step goes green.
    env.cmd(["queue", "resume", "deploy"]).assert().success();
    env.cmd(["run", "--until-idle", "--progress", "never"])
        .assert()
        .code(0);
    assert_eq!(env.jobs_of("ship")[0]["state"], "completed");
}

#[test]
fn queue_names_are_checked_before_anything_is_paused() {
    let env = Env::new();
    env.cmd(["queue", "pause", "ok", "bad name"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid queue name `bad name`"));
    assert_eq!(env.json(&["queue", "list"])["total"], 0);
    env.cmd(["queue", "pause"]).assert().code(2);
    // A queue nothing names yet may be paused, with a note.
    env.cmd(["queue", "pause", "later"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "no job and no jobfile names queue `later` yet",
        ));
}

/// `worker status` and `status` name the job each worker runs.
fn workers_show_the_jobs_they_run(env: &Env) {
    let _worker = env.worker(&["--count", "2"]);
    let id = env.enqueue(&["sleep 30"]);
    wait_until("the job runs", || env.state(&id) == "processing");
    let workers = env.json(&["worker", "status"]);
    let worker = &workers["items"][0];
    assert_eq!(worker["jobs"][0]["id"], id.as_str(), "{workers}");
    assert_eq!(worker["busy"], 1, "{workers}");
    assert_eq!(
        worker["pools"],
        serde_json::json!([{"queues": ["*"], "slots": 2}]),
        "{workers}"
    );
    assert!(
        worker["heartbeat_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{workers}"
    );
    let status = env.json(&["status"]);
    assert_eq!(
        status["workers"], workers["items"],
        "one shape in both commands"
    );
    env.cmd(["worker", "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&id));
    env.cmd(["status"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("    running {id}\n")));
    env.cmd(["cancel", &id]).assert().success();
}

#[test]
fn workers_show_the_jobs_they_run_on_sqlite() {
    workers_show_the_jobs_they_run(&Env::new());
}

#[test]
fn workers_show_the_jobs_they_run_on_postgres() {
    if let Some(env) = Env::postgres() {
        workers_show_the_jobs_they_run(&env);
    }
}

/// `status --watch` shows the queue again when it changes: appended
/// off a terminal, one JSON object a line with `--json`.
#[test]
fn status_watch_follows_the_queue() {
    let env = Env::new();
    let text = env.spawn(&["status", "--watch", "--interval", "100ms"]);
    let json = env.spawn(&["--json", "status", "--watch"]);
    text.wait_for_output("no jobs\n");
    json.wait_for_output("\"totals\":{");
    env.enqueue(&["--queue", "later", "true"]);
    text.wait_for_output("later ");
    json.wait_for_output("\"name\":\"later\"");
    let lines = json.output();
    let objects: Vec<serde_json::Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    assert!(objects.len() >= 2, "{lines}");
    assert_eq!(objects[0]["totals"]["pending"], 0, "{lines}");
    assert_eq!(
        objects.last().expect("a last")["totals"]["pending"],
        1,
        "{lines}"
    );
    env.cmd(["status", "--interval", "1s"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--watch"));
    env.cmd(["status", "--watch", "--interval", "0s"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--interval must be longer than 0"));
}
