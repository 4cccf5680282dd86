//! The engine's hot path over the SQLite driver, in process: one worker
//! slot's finish + claim cycle, on an empty database and on one holding
//! 100,000 finished jobs (the claim must not slow down with history).
//! Whole-process targets are in `scripts/bench`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use queuectl::driver::{Durability, Location, QueueFilter, Registration};
use queuectl::engine::{ClaimRequest, Done, Ended, Engine};
use queuectl::job::{AttemptOutcome, Claimed, JobState, NewJob, Origin, generate_id};
use queuectl::retry::RetryPolicy;

const RUNNER: i64 = 1;

fn job(now: i64) -> NewJob {
    NewJob {
        id: generate_id(now),
        command: "true".into(),
        definition: None,
        origin: Origin::Cli,
        queue: "default".into(),
        priority: 0,
        retry: RetryPolicy::default(),
        timeout_ms: None,
        env: vec![],
        cwd: None,
        run_at: now,
        created_at: now,
        spec_hash: None,
        source_commit: None,
        after: vec![],
        tick_at: None,
        inputs: None,
        payload: None,
        exclusive: None,
    }
}

fn request<'a>(queues: &'a QueueFilter, limits: &'a BTreeMap<String, u32>) -> ClaimRequest<'a> {
    ClaimRequest {
        runner: RUNNER,
        queues,
        limits,
        lease_until: i64::MAX,
        now: i64::MAX / 2,
        count: 1,
    }
}

/// An engine over a queue with `history` completed jobs.
fn engine(dir: &std::path::Path, history: usize) -> Engine {
    let location = Location::Sqlite(dir.join("queue.db"));
    let mut engine = Engine::open(&location, Durability::Normal).expect("a queue");
    engine
        .register_worker(&Registration {
            id: RUNNER,
            pid: 1,
            host: "bench",
            process_view: None,
            queues: &[],
            slots: 1,
            lease_ms: 30_000,
            now: 0,
        })
        .expect("a worker");
    let jobs: Vec<NewJob> = (0..history).map(|i| job(i as i64)).collect();
    engine.enqueue(&jobs).expect("history");
    let (any, limits) = (QueueFilter::Any, BTreeMap::new());
    for _ in 0..history {
        let claimed = engine.claim(&request(&any, &limits)).expect("claim");
        let job = claimed.into_iter().next().expect("a job");
        finish(&mut engine, &job, None);
    }
    engine
}

fn finish(engine: &mut Engine, job: &Claimed, next: Option<&ClaimRequest<'_>>) -> Option<Claimed> {
    let ended = Ended {
        outcome: AttemptOutcome::Completed,
        state: JobState::Completed,
        run_at: None,
        error: None,
    };
    let done = Done {
        job,
        runner: RUNNER,
        ended: &ended,
        exit_code: Some(0),
        output_bytes: 0,
        now: 2_000_000,
    };
    engine
        .finish(&done, next)
        .expect("finish")
        .1
        .into_iter()
        .next()
}

fn claim_finish(c: &mut Criterion) {
    for (name, history) in [("empty", 0), ("100k finished", 100_000)] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut engine = engine(dir.path(), history);
        let mut clock = 3_000_000;
        let (any, limits) = (QueueFilter::Any, BTreeMap::new());
        c.bench_function(&format!("finish + claim next, {name}"), |b| {
            b.iter_custom(|iters| {
                // Untimed: as many waiting jobs as iterations, the first claimed.
                clock += 1;
                let jobs: Vec<NewJob> = (0..=iters).map(|_| job(clock)).collect();
                engine.enqueue(&jobs).expect("enqueue");
                let request = request(&any, &limits);
                let mut current = engine.claim(&request).expect("claim").into_iter().next();
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    let job = current.take().expect("a claimed job");
                    current = black_box(finish(&mut engine, &job, Some(&request)));
                }
                let elapsed = started.elapsed();
                if let Some(job) = current {
                    finish(&mut engine, &job, None);
                }
                elapsed
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = claim_finish
}
criterion_main!(benches);
