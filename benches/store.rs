//! The store's hot path, in process: one worker slot's claim + finish
//! cycle, on an empty database and on one holding 100,000 finished jobs
//! (the claim must not slow down with history). Whole-process targets are
//! in `scripts/bench`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use queuectl::job::{AttemptOutcome, JobState, NewJob, Origin, generate_id};
use queuectl::retry::RetryPolicy;
use queuectl::store::{ClaimArgs, Durability, Finish, QueueFilter, Registration, Store};

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
    }
}

/// A store with `history` completed jobs and `waiting` pending ones.
fn store(dir: &std::path::Path, history: usize, waiting: usize) -> Store {
    let mut store = Store::open(&dir.join("queue.db"), Durability::Normal).expect("a store");
    let runner = 1;
    store
        .register_worker(&Registration {
            id: runner,
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
    store.enqueue(&jobs).expect("history");
    for i in 0..history {
        let claimed = store
            .claim(ClaimArgs {
                runner,
                queues: &QueueFilter::Any,
                lease_until: i64::MAX,
                now: i as i64,
            })
            .expect("claim")
            .expect("a job");
        finish(&mut store, runner, &claimed.id, claimed.run, None);
    }
    let jobs: Vec<NewJob> = (0..waiting).map(|i| job(1_000_000 + i as i64)).collect();
    store.enqueue(&jobs).expect("waiting jobs");
    store
}

fn finish(
    store: &mut Store,
    runner: i64,
    id: &str,
    run: u32,
    next: Option<ClaimArgs<'_>>,
) -> Option<String> {
    let finish = Finish {
        id,
        run,
        runner,
        outcome: AttemptOutcome::Completed,
        exit_code: Some(0),
        error: None,
        output_bytes: 0,
        state: JobState::Completed,
        run_at: None,
        now: 2_000_000,
    };
    store.finish(&finish, next).expect("finish").1.map(|c| c.id)
}

fn claim_finish(c: &mut Criterion) {
    for (name, history) in [("empty", 0), ("100k finished", 100_000)] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut store = store(dir.path(), history, 0);
        let runner = 1;
        let mut clock = 3_000_000;
        c.bench_function(&format!("finish + claim next, {name}"), |b| {
            b.iter_custom(|iters| {
                // Untimed: as many waiting jobs as iterations, the first claimed.
                clock += 1;
                let jobs: Vec<NewJob> = (0..=iters).map(|_| job(clock)).collect();
                store.enqueue(&jobs).expect("enqueue");
                let args = ClaimArgs {
                    runner,
                    queues: &QueueFilter::Any,
                    lease_until: i64::MAX,
                    now: i64::MAX / 2,
                };
                let mut current = store.claim(args).expect("claim").map(|j| (j.id, j.run));
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    let (id, run) = current.take().expect("a claimed job");
                    let next = finish(&mut store, runner, &id, run, Some(args));
                    current = black_box(next.map(|id| (id, 1)));
                }
                let elapsed = started.elapsed();
                if let Some((id, run)) = current {
                    finish(&mut store, runner, &id, run, None);
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
