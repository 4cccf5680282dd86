//! The pools of a worker process: slots that take jobs from the same
//! queues. A pool's slots are the process's capacity for those queues;
//! how many jobs of a queue run at once on the whole database is the
//! queue's limit, which claims enforce (`engine::claim`).

use crate::driver::QueueFilter;
use crate::error::{Error, Result};
use crate::jobfile::{DEFAULT_QUEUE, Jobfile, MAX_WORKERS};

/// Slots that take jobs from the same queues.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// A queue name, queue names joined by `+`, or `*` for every queue.
    pub label: String,
    pub queues: QueueFilter,
    pub slots: u32,
}

/// The pools of a worker: `--queue`/`--count` when given; else one pool per
/// queue of the jobfile with its declared workers (the `default` pool also
/// serves every queue the jobfile does not declare); else one pool for every
/// queue with a slot per CPU.
pub fn pools(count: Option<u32>, queues: &[String], jobfile: Option<&Jobfile>) -> Vec<Pool> {
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| u32::try_from(n.get()).unwrap_or(MAX_WORKERS))
        .min(MAX_WORKERS);
    if !queues.is_empty() {
        let declared = |q: &String| jobfile.and_then(|j| j.queues.get(q)).copied().unwrap_or(1);
        return vec![Pool {
            label: queues.join("+"),
            queues: QueueFilter::Only(queues.to_vec()),
            slots: count.unwrap_or_else(|| queues.iter().map(declared).sum()),
        }];
    }
    match (count, jobfile) {
        (None, Some(jobfile)) => {
            let others: Vec<String> = jobfile
                .queues
                .keys()
                .filter(|q| *q != DEFAULT_QUEUE)
                .cloned()
                .collect();
            jobfile
                .queues
                .iter()
                .map(|(name, &workers)| Pool {
                    label: name.clone(),
                    queues: if name == DEFAULT_QUEUE {
                        QueueFilter::Except(others.clone())
                    } else {
                        QueueFilter::Only(vec![name.clone()])
                    },
                    slots: workers,
                })
                .collect()
        }
        (count, _) => vec![Pool {
            label: "*".into(),
            queues: QueueFilter::Any,
            slots: count.unwrap_or(cpus),
        }],
    }
}

/// Checks a slot count given on the command line (`--workers`, `--count`).
pub fn check_count(count: Option<u32>, flag: &str) -> Result<()> {
    match count {
        Some(0) => Err(Error::input(format!("{flag} must be at least 1"))),
        Some(n) if n > MAX_WORKERS => Err(Error::input_with_hint(
            format!("{flag} is {n}: at most {MAX_WORKERS} jobs run at once in one process"),
            "start more processes for more; each registers as a worker of the same queue",
        )),
        _ => Ok(()),
    }
}

/// Checks that `pools` fit in one process.
pub fn check_pools(pools: &[Pool]) -> Result<()> {
    let total: u64 = pools.iter().map(|p| u64::from(p.slots)).sum();
    if total > u64::from(MAX_WORKERS) {
        return Err(Error::input_with_hint(
            format!("the pools add up to {total} workers: one process runs at most {MAX_WORKERS}"),
            "lower `workers` of the queues, or run some queues in another process (--queue)",
        ));
    }
    Ok(())
}

/// The queues some pool serves: every queue unless all pools name theirs.
pub fn served(pools: &[Pool]) -> QueueFilter {
    let mut names = Vec::new();
    for pool in pools {
        match &pool.queues {
            QueueFilter::Only(queues) => names.extend(queues.iter().cloned()),
            _ => return QueueFilter::Any,
        }
    }
    QueueFilter::Only(names)
}

/// How a worker lists its pools: `label:slots`.
pub fn labels(pools: &[Pool]) -> Vec<String> {
    pools
        .iter()
        .map(|p| format!("{}:{}", p.label, p.slots))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobfile(text: &str) -> Jobfile {
        crate::jobfile::parse(text, std::path::Path::new("q.toml"))
            .unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn pools_follow_flags_then_the_jobfile() {
        let file = jobfile("[queues.default]\nworkers = 3\n[queues.deploy]\nworkers = 1\n");
        assert_eq!(
            pools(None, &[], Some(&file)),
            vec![
                Pool {
                    label: "default".into(),
                    queues: QueueFilter::Except(vec!["deploy".into()]),
                    slots: 3
                },
                Pool {
                    label: "deploy".into(),
                    queues: QueueFilter::Only(vec!["deploy".into()]),
                    slots: 1
                },
            ]
        );
        assert_eq!(
            pools(Some(5), &[], Some(&file)),
            vec![Pool {
                label: "*".into(),
                queues: QueueFilter::Any,
                slots: 5
            }]
        );
        assert_eq!(
            pools(None, &["deploy".into()], Some(&file)),
            vec![Pool {
                label: "deploy".into(),
                queues: QueueFilter::Only(vec!["deploy".into()]),
                slots: 1
            }]
        );
        assert_eq!(
            served(&pools(None, &["deploy".into()], Some(&file))),
            QueueFilter::Only(vec!["deploy".into()])
        );
        assert_eq!(served(&pools(None, &[], Some(&file))), QueueFilter::Any);
        assert_eq!(
            labels(&pools(None, &[], Some(&file))),
            vec!["default:3", "deploy:1"]
        );
    }
}
