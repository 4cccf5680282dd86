//! Nothing is lost: producers and consumers in separate processes, a
//! killer sending SIGKILL to consumers at random moments. Every job that
//! `enqueue` acknowledged ends completed; it runs more than once only if a
//! kill landed during its run, which its attempts show as `lost`. Without
//! kills, every job runs exactly once.
//!
//! CI mode: 4 producers x 2,500 jobs, at least 20 kills. Soak mode
//! (`QUEUECTL_SOAK=1`): at least 100 kills.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::harness::{Env, SpawnExt, Worker};

const PRODUCERS: usize = 4;
const JOBS_EACH: usize = 2_500;

/// A small pseudo-random sequence (no crate for it), seeded from the clock.
struct Random(u64);

impl Random {
    fn new() -> Random {
        Random(
            Instant::now().elapsed().as_nanos() as u64
                ^ u64::from(std::process::id())
                ^ 0x9e37_79b9_7f4a_7c15,
        )
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Two `run` processes of 4 slots each: 8 consumers. Since issue 12 a
/// queue's `workers` is its limit across processes (it was each process's
/// pool size), so the jobfile declares 8 and each process gets 4 slots.
const CONSUMER: [&str; 4] = ["run", "--no-watch", "--workers", "4"];

fn jobfile(env: &Env) {
    std::fs::create_dir(env.file("markers")).expect("mkdir");
    env.write("queuectl.toml", "[queues.default]\nworkers = 8\n[retry.default]\nmax_retries = 100\nmax_delay = \"100ms\"\n");
}

/// Starts the producers: each enqueues its jobs in batches, as separate
/// `queuectl enqueue` processes.
fn produce(env: &Env) -> Vec<std::process::Child> {
    (0..PRODUCERS)
        .map(|p| {
            let lines: String = (0..JOBS_EACH)
                .map(|i| {
                    format!(
                        "{{\"id\": \"p{p}-{i}\", \"command\": \"touch markers/$QUEUECTL_JOB_ID.$$; sleep 0.01\"}}\n"
                    )
                })
                .collect();
            let file = env.write(&format!("producer-{p}.jsonl"), &lines);
            env.cmd(["enqueue", "--file", file.to_str().unwrap_or_default()]).assert_child()
        })
        .collect()
}

/// How many times each job's command ran, from the marker files.
fn runs(env: &Env) -> HashMap<String, usize> {
    let mut runs = HashMap::new();
    for entry in std::fs::read_dir(env.file("markers"))
        .expect("markers")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((id, _pid)) = name.rsplit_once('.') {
            *runs.entry(id.to_string()).or_default() += 1;
        }
    }
    runs
}

fn all_done(env: &Env) -> bool {
    let status = env.json(&["status"]);
    let totals = &status["totals"];
    totals["completed"].as_u64() == Some((PRODUCERS * JOBS_EACH) as u64)
}

fn wait_producers(producers: Vec<std::process::Child>) {
    for producer in producers {
        let out = producer.wait_with_output().expect("a producer");
        assert!(
            out.status.success(),
            "enqueue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn kill_9_at_random_moments_loses_no_job() {
    kill_9_at_random_moments(Env::new());
}

/// The same on a server: the workers of one host, so a killed one's jobs
/// are rescued as soon as its pid is gone, as on SQLite.
#[test]
fn kill_9_at_random_moments_loses_no_job_on_postgres() {
    if let Some(env) = Env::postgres() {
        kill_9_at_random_moments(env);
    }
}

fn kill_9_at_random_moments(env: Env) {
    jobfile(&env);
    let kills_wanted = if std::env::var_os("QUEUECTL_SOAK").is_some() {
        100
    } else {
        20
    };
    let mut random = Random::new();
    let mut runs_alive: Vec<Worker> = (0..2).map(|_| env.spawn(&CONSUMER)).collect();
    let producers = produce(&env);
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(if kills_wanted > 20 { 900 } else { 240 });
    let mut producers = Some(producers);
    loop {
        assert!(
            Instant::now() < deadline,
            "the load did not drain in time ({kills} kills)"
        );
        // Random moments: the point of this test is that a kill may land
        // anywhere, so here a sleep is the thing being tested.
        std::thread::sleep(Duration::from_millis(50 + random.below(250)));
        if kills < kills_wanted {
            let victim = random.below(2) as usize;
            runs_alive[victim].signal("KILL");
            let killed = std::mem::replace(&mut runs_alive[victim], env.spawn(&CONSUMER));
            let _ = killed.wait();
            kills += 1;
        } else {
            if let Some(p) = producers.take() {
                wait_producers(p);
            }
            if all_done(&env) {
                break;
            }
        }
    }
    drop(runs_alive);
    let runs = runs(&env);
    let jobs = env.items(&["list", "--all"]);
    assert_eq!(
        jobs.len(),
        PRODUCERS * JOBS_EACH,
        "every acknowledged job is there"
    );
    let mut duplicates = 0;
    for job in &jobs {
        let id = job["id"].as_str().unwrap_or_default();
        assert_eq!(job["state"], "completed", "{job}");
        let ran = runs.get(id).copied().unwrap_or(0);
        assert!(ran >= 1, "{id} never ran");
        if ran > 1 {
            duplicates += 1;
            let history = env.job(id)["attempt_history"].clone();
            let lost = history
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["outcome"] == "lost")
                .count();
            assert!(
                lost >= ran - 1,
                "{id} ran {ran} times with {lost} lost attempts: {history}"
            );
        }
    }
    eprintln!(
        "chaos: {} jobs, {kills} kills, {duplicates} jobs ran twice (each after a kill)",
        jobs.len()
    );
}

#[test]
fn without_kills_every_job_runs_exactly_once() {
    let env = Env::new();
    jobfile(&env);
    let consumers: Vec<Worker> = (0..2).map(|_| env.spawn(&CONSUMER)).collect();
    wait_producers(produce(&env));
    let deadline = Instant::now() + Duration::from_secs(180);
    while !all_done(&env) {
        assert!(Instant::now() < deadline, "the load did not drain in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(consumers);
    let runs = runs(&env);
    assert_eq!(runs.len(), PRODUCERS * JOBS_EACH);
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "jobs that did not run exactly once: {twice:?}"
    );
}

/// The process groups alive whose id is in `pgids` (from /proc).
fn live_groups(pgids: &[u32]) -> Vec<u32> {
    let mut alive = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        // state, ppid, pgrp
        if let (Some(state), Some(pgrp)) = (
            fields.first(),
            fields.get(2).and_then(|p| p.parse::<u32>().ok()),
        ) && *state != "Z"
            && pgids.contains(&pgrp)
        {
            alive.push(pgrp);
        }
    }
    alive
}

#[test]
fn sigterm_under_load_loses_nothing_and_leaves_no_process() {
    let env = Env::new();
    std::fs::create_dir(env.file("markers")).expect("mkdir");
    env.write("queuectl.toml", "[queues.default]\nworkers = 4\n");
    let lines: String = (0..200)
        .map(|i| format!("{{\"id\": \"j{i}\", \"command\": \"echo $$ >> pgids; sleep 0.2 & wait; touch markers/$QUEUECTL_JOB_ID\"}}\n"))
        .collect();
    env.write("jobs.jsonl", &lines);
    env.cmd(["enqueue", "--file", "jobs.jsonl"])
        .assert()
        .success();
    let run = env.spawn(&["run", "--no-watch"]);
    super::harness::wait_until("some jobs ran", || env.read("pgids").lines().count() >= 8);
    run.signal("TERM");
    let (code, output) = run.wait();
    assert_eq!(code, Some(143), "{output}");
    let pgids: Vec<u32> = env
        .read("pgids")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(
        live_groups(&pgids).is_empty(),
        "job process groups outlived the run: {:?}",
        live_groups(&pgids)
    );
    let states = env.states();
    assert!(
        states
            .iter()
            .all(|(_, s)| s == "completed" || s == "pending"),
        "{states:?}"
    );
    // Nothing lost: the rest runs on the next start.
    let (code, _) = env.spawn(&["run", "--no-watch", "--until-idle"]).wait();
    assert_eq!(code, Some(0));
    assert!(env.states().iter().all(|(_, s)| s == "completed"));
    assert_eq!(
        std::fs::read_dir(env.file("markers"))
            .map(|d| d.count())
            .unwrap_or(0),
        200
    );
}
