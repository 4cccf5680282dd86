//! Limits that hold across processes (issue 12): a queue's `workers` is a
//! limit of the queue on the whole database, however many processes and
//! slots serve it; a watched or scheduled definition never runs two jobs
//! at once unless its policy allows it. Each test runs several real
//! processes and detects an overlap from inside the jobs: a job that
//! cannot create the lock directory ran beside another.

use super::harness::{Env, wait_until};

/// A command that records whether another job holding `lock` ran at the
/// same time, takes `seconds`, and appends its id to `done`.
fn exclusive(lock: &str, seconds: &str) -> String {
    format!(
        "mkdir {lock}.lock 2>/dev/null || echo \"$QUEUECTL_JOB_ID\" >> overlaps; \
         sleep {seconds}; echo \"$QUEUECTL_JOB_ID\" >> done; rmdir {lock}.lock 2>/dev/null; true"
    )
}

/// Waits until every job is finished; returns how many completed.
fn wait_all_completed(env: &Env, count: usize) {
    wait_until(&format!("{count} jobs completed"), || {
        env.states()
            .iter()
            .filter(|(_, s)| s == "completed")
            .count()
            == count
    });
}

#[test]
fn a_queue_limit_holds_across_worker_processes() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 2\n[queues.deploy]\nworkers = 1\n",
    );
    env.cmd(["apply"]).assert().success();
    for _ in 0..6 {
        env.enqueue(&["--queue", "deploy", &exclusive("deploy", "0.3")]);
    }
    // Two processes with a deploy slot each, and one with four slots over
    // every queue: seven slots could take a deploy job.
    let _a = env.worker(&[]);
    let _b = env.worker(&[]);
    let _c = env.worker(&["--count", "4"]);
    wait_all_completed(&env, 6);
    assert_eq!(env.read("overlaps"), "", "two deploy jobs ran at once");
    assert_eq!(env.read("done").lines().count(), 6);
}

#[test]
fn count_is_the_capacity_of_a_process_not_a_queue_limit() {
    let env = Env::new();
    env.write("queuectl.toml", "[queues.deploy]\nworkers = 1\n");
    env.cmd(["apply"]).assert().success();
    for _ in 0..4 {
        env.enqueue(&["--queue", "deploy", &exclusive("deploy", "0.3")]);
    }
    // Jobs of a queue without a declared limit run as many at once as the
    // process has slots: each waits for the other three to have started.
    for i in 0..3 {
        env.enqueue(&[&format!(
            "touch started-{i}; for n in $(seq 200); do [ $(ls started-* | wc -l) -ge 3 ] && exit 0; sleep 0.05; done; exit 1"
        )]);
    }
    let (code, output) = env.worker(&["--count", "4", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(env.read("overlaps"), "", "two deploy jobs ran at once");
    wait_all_completed(&env, 7);
}

#[test]
fn a_worker_honours_the_limits_of_its_jobfile_before_any_apply() {
    let env = Env::new();
    env.write("queuectl.toml", "[queues.deploy]\nworkers = 1\n");
    for _ in 0..4 {
        env.enqueue(&["--queue", "deploy", &exclusive("deploy", "0.2")]);
    }
    let _a = env.worker(&["--count", "2"]);
    let _b = env.worker(&["--count", "2"]);
    wait_all_completed(&env, 4);
    assert_eq!(env.read("overlaps"), "", "two deploy jobs ran at once");
}

#[test]
fn a_watched_job_never_runs_twice_at_once() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        &format!(
            "[queues.default]\nworkers = 4\n[jobs.docs]\ncommand = \"{}\"\n\
             watch = {{ paths = [\"docs/*.md\"], debounce = \"50ms\" }}\non_busy = \"queue\"\n",
            exclusive("docs", "2").replace('"', "\\\"")
        ),
    );
    std::fs::create_dir(env.file("docs")).expect("mkdir");
    let run = env.spawn(&["run"]);
    run.wait_for_output("ready");
    // Three changes a second apart, each while the last run is going.
    for i in 0..3 {
        if i > 0 {
            wait_until("the first run started", || env.file("docs.lock").exists());
            std::thread::sleep(std::time::Duration::from_millis(1000));
        }
        env.write("docs/a.md", &format!("version {i}"));
    }
    wait_until("two runs finished", || {
        env.read("done").lines().count() >= 2
    });
    wait_until("nothing waits", || {
        env.jobs_of("docs")
            .iter()
            .all(|j| j["state"] == "completed")
    });
    assert_eq!(env.read("overlaps"), "", "two runs of `docs` at once");
    drop(run);
}

#[test]
fn two_runs_on_one_queue_keep_a_watched_job_exclusive() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        &format!(
            "[jobs.docs]\ncommand = \"{}\"\n\
             watch = {{ paths = [\"docs/*.md\"], debounce = \"50ms\" }}\non_busy = \"queue\"\n",
            exclusive("docs", "1.5").replace('"', "\\\"")
        ),
    );
    std::fs::create_dir(env.file("docs")).expect("mkdir");
    let owner = env.spawn(&["run", "--workers", "2"]);
    owner.wait_for_output("ready");
    let extra = env.spawn(&["run", "--workers", "2"]);
    extra.wait_for_output("ready");
    env.write("docs/a.md", "one");
    wait_until("the first run started", || env.file("docs.lock").exists());
    env.write("docs/b.md", "two");
    wait_until("two runs finished", || {
        env.read("done").lines().count() >= 2
    });
    assert_eq!(env.read("overlaps"), "", "two runs of `docs` at once");
    drop((owner, extra));
}
