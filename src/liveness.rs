//! Which workers are dead, judged by what this process saw itself.
//!
//! A worker is dead when its process is gone, or when it has been silent
//! for longer than its lease. "Gone" is known at once, but only by a worker
//! that sees the same processes (the same boot and PID namespace: see
//! [`crate::sys::host`]). "Silent" is measured on this process's own
//! monotonic clock, from the moment it saw the other's heartbeat value
//! last change, never by comparing the other's wall-clock timestamp with
//! ours: two processes whose clocks disagree by a minute still agree on
//! who is alive. A process that has just started has seen nobody change
//! yet, so it declares nobody silent before a whole lease has passed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::driver::WorkerInfo;

/// Why a worker was found dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its pid is gone, and this process sees the same processes.
    Gone,
    /// Its heartbeat has not changed for this long, past its lease.
    Silent(Duration),
}

/// A worker found dead, and the heartbeat value it was judged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dead {
    pub id: i64,
    pub heartbeat_at: i64,
    pub pid: u32,
    pub host: String,
    pub verdict: Verdict,
}

impl Dead {
    /// `pid 123 on build-1 (its process is gone)`.
    pub fn describe(&self) -> String {
        let why = match &self.verdict {
            Verdict::Gone => "its process is gone".to_string(),
            Verdict::Silent(d) => format!("silent for {}", crate::duration::short(*d)),
        };
        format!("pid {} on {} ({why})", self.pid, self.host)
    }
}

/// What this process saw of every other worker's heartbeat.
#[derive(Debug, Default)]
pub struct Liveness {
    /// worker id -> (the heartbeat value seen, when it was first seen).
    seen: HashMap<i64, (i64, Instant)>,
}

impl Liveness {
    /// Looks at the registered workers at `now` and returns the dead ones.
    /// `me` is never dead; `view` is this process's view of processes
    /// (`None`: no pid is judged); `alive` tells whether a pid exists.
    pub fn judge(
        &mut self,
        workers: &[WorkerInfo],
        me: i64,
        view: Option<&str>,
        now: Instant,
        alive: impl Fn(u32) -> bool,
    ) -> Vec<Dead> {
        self.seen
            .retain(|id, _| workers.iter().any(|w| w.id == *id));
        let mut dead = Vec::new();
        for worker in workers.iter().filter(|w| w.id != me) {
            let since = match self.seen.get(&worker.id) {
                Some(&(value, since)) if value == worker.heartbeat_at => since,
                _ => {
                    self.seen.insert(worker.id, (worker.heartbeat_at, now));
                    now
                }
            };
            let same_view = view.is_some() && worker.process_view.as_deref() == view;
            let silent = now.saturating_duration_since(since);
            let lease = Duration::from_millis(u64::try_from(worker.lease_ms).unwrap_or(0));
            let verdict = if same_view && !alive(worker.pid) {
                Some(Verdict::Gone)
            } else if silent > lease {
                Some(Verdict::Silent(silent))
            } else {
                None
            };
            if let Some(verdict) = verdict {
                dead.push(Dead {
                    id: worker.id,
                    heartbeat_at: worker.heartbeat_at,
                    pid: worker.pid,
                    host: worker.host.clone(),
                    verdict,
                });
            }
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: i64, pid: u32, view: &str, heartbeat_at: i64) -> WorkerInfo {
        WorkerInfo {
            id,
            pid,
            host: "h".into(),
            process_view: Some(view.into()),
            queues: vec![],
            slots: 1,
            busy: 0,
            started_at: 0,
            heartbeat_at,
            lease_ms: 30_000,
            stop: None,
        }
    }

    #[test]
    fn gone_needs_the_same_view_and_silent_needs_a_lease_seen() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut liveness = Liveness::default();
        let no_pid_lives = |_: u32| false;
        // Another view: its pid means nothing here, whatever its clock says
        // (a heartbeat an hour "old" by our clock).
        let other = worker(2, 99_999, "boot/pid:[2]", -3_600_000);
        assert_eq!(
            liveness.judge(
                std::slice::from_ref(&other),
                1,
                Some("boot/pid:[1]"),
                at(0),
                no_pid_lives
            ),
            vec![]
        );
        // It keeps heartbeating: alive however long.
        for s in 1..100 {
            let beating = worker(2, 99_999, "boot/pid:[2]", -3_600_000 + s as i64);
            assert_eq!(
                liveness.judge(&[beating], 1, Some("boot/pid:[1]"), at(s), no_pid_lives),
                vec![]
            );
        }
        // Silent from then on: dead once the lease has passed on our clock.
        let silent = worker(2, 99_999, "boot/pid:[2]", -3_600_000 + 99);
        assert_eq!(
            liveness.judge(
                std::slice::from_ref(&silent),
                1,
                Some("boot/pid:[1]"),
                at(129),
                no_pid_lives
            ),
            vec![]
        );
        let dead = liveness.judge(&[silent], 1, Some("boot/pid:[1]"), at(130), no_pid_lives);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].verdict, Verdict::Silent(Duration::from_secs(31)));
        // The same view and no such pid: dead at once.
        let mut fresh = Liveness::default();
        let here = worker(3, 4242, "boot/pid:[1]", 0);
        let dead = fresh.judge(
            std::slice::from_ref(&here),
            1,
            Some("boot/pid:[1]"),
            at(0),
            no_pid_lives,
        );
        assert_eq!(dead[0].verdict, Verdict::Gone);
        // ...but not while its pid lives, and never this worker itself.
        assert_eq!(
            fresh.judge(&[here], 1, Some("boot/pid:[1]"), at(1), |_| true),
            vec![]
        );
        let me = worker(1, 4242, "boot/pid:[1]", 0);
        assert_eq!(
            fresh.judge(&[me], 1, Some("boot/pid:[1]"), at(100), no_pid_lives),
            vec![]
        );
    }
}
