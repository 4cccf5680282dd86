//! Worker processes: many at once, stopping them gently and by force,
//! crashes, cancellation, the background mode.

use std::collections::HashMap;

use predicates::prelude::*;

use super::harness::{Env, alive, wait_until};

#[test]
fn three_worker_processes_run_every_job_exactly_once() {
    let env = Env::new();
    let lines: String = (0..300)
        .map(|i| {
            format!("{{\"id\": \"job-{i}\", \"command\": \"echo $QUEUECTL_JOB_ID >> ran\"}}\n")
        })
        .collect();
    env.write("jobs.jsonl", &lines);
    env.cmd(["enqueue", "--file", "jobs.jsonl"])
        .assert()
        .success()
        .stdout("enqueued 300 jobs\n");
    let workers: Vec<_> = (0..3)
        .map(|_| env.worker(&["--until-idle", "--count", "2"]))
        .collect();
    for worker in workers {
        let (code, output) = worker.wait();
        assert_eq!(code, Some(0), "{output}");
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in env.read("ran").lines() {
        *seen.entry(line.to_string()).or_default() += 1;
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|&n| n == 1), "a job ran twice: {seen:?}");
    assert!(env.states().iter().all(|(_, state)| state == "completed"));
}

#[test]
fn worker_stop_lets_the_running_job_finish() {
    let env = Env::new();
    env.cmd(["worker", "start", "--count", "1"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("started worker pid "));
    let workers = env.items(&["worker", "status"]);
    let pid = workers[0]["pid"].as_u64().expect("a worker pid") as u32;
    env.cmd(["status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("workers: 1 live"));

    let id = env.enqueue(&["sleep 2; echo finished"]);
    wait_until("the job runs", || env.state(&id) == "processing");
    env.cmd(["worker", "stop"])
        .assert()
        .success()
        .stdout("stopped 1 worker(s)\n");
    // stop returns only after the job finished and the worker exited.
    assert_eq!(env.state(&id), "completed");
    env.cmd(["logs", &id]).assert().stdout("finished\n");
    wait_until("the worker process is gone", || !alive(pid));
    assert_eq!(
        env.json(&["worker", "status"]),
        serde_json::json!({"items": [], "total": 0})
    );
}

#[test]
fn worker_stop_force_returns_the_job_to_the_queue() {
    let env = Env::new();
    env.cmd(["worker", "start", "--count", "1"])
        .assert()
        .success();
    let id = env.enqueue(&["echo $$ > job.pid; exec sleep 30"]);
    wait_until("the job runs", || {
        env.state(&id) == "processing" && !env.read("job.pid").is_empty()
    });
    let job_pid: u32 = env.read("job.pid").trim().parse().expect("pid");
    env.cmd(["worker", "stop", "--force"])
        .assert()
        .success()
        .stdout(format!(
            "stopped 1 worker(s)\ninterrupted and returned to the queue: {id}\n"
        ));
    let job = env.job(&id);
    assert_eq!(job["state"], "pending", "{job}");
    assert_eq!(job["attempts"], 0, "an interrupted attempt does not count");
    assert_eq!(job["attempt_history"][0]["outcome"], "interrupted");
    wait_until("the job's process is gone", || !alive(job_pid));
}

#[test]
fn a_killed_worker_loses_no_job() {
    let env = Env::new();
    let id = env.enqueue(&["echo run >> runs; test \"$QUEUECTL_ATTEMPT\" != 1 || exec sleep 30"]);
    let worker = env.worker(&["--count", "1"]);
    wait_until("the job runs", || env.read("runs") == "run\n");
    worker.signal("KILL");
    let (code, _) = worker.wait();
    assert_eq!(code, None, "killed by a signal");
    assert_eq!(env.state(&id), "processing", "nobody has noticed yet");

    // A new worker sees the dead worker's pid gone and reruns the job at once.
    let (code, output) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains(&format!("reclaim   {id}")), "{output}");
    let job = env.job(&id);
    assert_eq!(job["state"], "completed");
    assert_eq!(job["attempts"], 2, "the lost attempt counts");
    assert_eq!(job["attempt_history"][0]["outcome"], "lost");
    assert_eq!(env.read("runs"), "run\nrun\n");
}

#[test]
fn cancel_stops_a_running_job_and_drops_a_pending_one() {
    let env = Env::new();
    let running = env.enqueue(&["exec sleep 30"]);
    let _worker = env.worker(&["--count", "1"]);
    wait_until("the job runs", || env.state(&running) == "processing");
    let waiting = env.enqueue(&["--delay", "1h", "true"]);
    env.cmd(["cancel", &waiting])
        .assert()
        .success()
        .stdout(format!("cancelled {waiting}\n"));
    env.cmd(["cancel", &running])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!("stopping {running}")));
    wait_until("the running job is cancelled", || {
        env.state(&running) == "cancelled"
    });
    assert_eq!(env.state(&waiting), "cancelled");
    env.cmd(["cancel", &running])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "job `{running}` is already cancelled"
        )));
}

#[test]
fn sigterm_drains_then_exits_143() {
    let env = Env::new();
    let id = env.enqueue(&["sleep 1; echo done"]);
    let worker = env.worker(&["--count", "1"]);
    wait_until("the job runs", || env.state(&id) == "processing");
    let later = env.enqueue(&["true"]);
    worker.signal("TERM");
    let (code, output) = worker.wait();
    assert_eq!(code, Some(143), "{output}");
    assert_eq!(env.state(&id), "completed");
    assert_eq!(
        env.state(&later),
        "pending",
        "a draining worker claims nothing new"
    );
}

#[test]
fn an_idle_worker_picks_up_a_job_from_another_process() {
    let env = Env::new();
    let _worker = env.worker(&["--count", "1"]);
    wait_until("the worker registers", || {
        !env.items(&["worker", "status"]).is_empty()
    });
    let id = env.enqueue(&["true"]);
    wait_until("the job completes", || env.state(&id) == "completed");
}

#[test]
fn queues_are_served_only_by_their_workers() {
    let env = Env::new();
    let batch = env.enqueue(&["--queue", "batch", "true"]);
    let other = env.enqueue(&["true"]);
    let (code, _) = env
        .worker(&["--until-idle", "--count", "1", "--queue", "batch"])
        .wait();
    assert_eq!(code, Some(0));
    assert_eq!(env.state(&batch), "completed");
    assert_eq!(env.state(&other), "pending");
    env.cmd(["list", "--queue", "batch"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&batch).and(predicate::str::contains(&other).not()));
}
