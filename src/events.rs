//! What the long-running parts report. Workers and the supervisor never
//! print: they send [`Event`]s through a [`channel`], and one reporter
//! renders them.
//!
//! The channel delivers in batches: a send only pushes onto a queue, and
//! wakes the reporter only when it sleeps on an empty queue; after each
//! batch the reporter lets [`FRAME`] pass before it takes the next. Two
//! events per job would otherwise wake the reporter twice per job (and
//! the slot that sent them must hand over the CPU), which at thousands
//! of jobs a second cost more than the queue itself. A line shows at
//! most one frame late; the last events are never lost: the reporter
//! drains the queue once every sender is gone.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::job::{AttemptOutcome, JobState};

/// Something that happened in a running worker pool.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The pool is up.
    Ready {
        pid: u32,
        slots: u32,
        queues: Vec<String>,
    },
    /// A slot started an attempt.
    Started {
        slot: usize,
        id: String,
        /// The jobfile definition it runs, if any.
        definition: Option<String>,
        command: String,
        queue: String,
        attempt: u32,
        max_attempts: u32,
    },
    /// An attempt ended; `state` is where the job went.
    Finished {
        slot: usize,
        id: String,
        definition: Option<String>,
        attempt: u32,
        outcome: AttemptOutcome,
        state: JobState,
        exit_code: i32,
        #[serde(rename = "duration_ms", serialize_with = "millis")]
        duration: Duration,
        /// When the job retries (ms since the epoch), if it does.
        #[serde(with = "crate::output::json_time::option")]
        retry_at: Option<i64>,
        error: Option<String>,
        /// For a failed attempt: the end of its output (its last 20 lines).
        #[serde(skip_serializing_if = "Option::is_none")]
        output_tail: Option<String>,
    },
    /// An attempt ended after its worker had been declared dead: another
    /// worker rescued the job, and this end is recorded nowhere.
    Discarded {
        slot: usize,
        id: String,
        definition: Option<String>,
        attempt: u32,
    },
    /// Another worker declared this one dead (it was silent past its lease,
    /// e.g. suspended): its running jobs are stopped, their results
    /// discarded, and it registers again under a new id.
    DeclaredDead {
        /// The jobs it was running.
        stopped: Vec<String>,
        lease_ms: u64,
    },
    /// A job taken back from a worker that died.
    Reclaimed {
        id: String,
        dead: bool,
        worker: String,
    },
    /// How many jobs wait, run, and wait for a retry (for progress bars).
    Counts {
        pending: u64,
        processing: u64,
        failed: u64,
    },
    /// An edit of the jobfile was applied: the plan's lines.
    Applied { plan: Vec<String> },
    /// An edit of the jobfile does not validate; the last good one runs on.
    ConfigError { message: String },
    /// A pool's slot count changed with the jobfile.
    Resized { pool: String, from: u32, to: u32 },
    /// A schedule's tick: its job enqueued, or why not.
    Ticked {
        definition: String,
        /// The tick's nominal time (ms since the epoch).
        #[serde(rename = "tick_at", with = "crate::output::json_time")]
        tick: i64,
        /// A catch-up run for a tick missed while nothing was running.
        catch_up: bool,
        id: Option<String>,
        skipped: Option<String>,
    },
    /// Watched paths changed: a job enqueued, merged into a waiting one, or skipped.
    Triggered {
        definition: String,
        paths: Vec<String>,
        /// `enqueued`, `merged` or `skipped`.
        outcome: String,
        id: Option<String>,
    },
    /// The pool stops claiming; `force` kills running jobs. `again`: what
    /// stops it at once (`Ctrl-C`), after a signal.
    Stopping {
        force: bool,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        again: Option<String>,
    },
    /// A recoverable problem.
    Warning { message: String },
}

impl Event {
    /// The event as a line of `--json` output: its fields, `event` (its
    /// kind) and `timestamp` (when it happened, RFC 3339 in UTC).
    pub fn json_line(&self, sent_at: i64) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "timestamp".into(),
                serde_json::Value::String(crate::clock::rfc3339(sent_at)),
            );
        }
        value.to_string()
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long the reporter lets events gather after a batch.
pub const FRAME: Duration = Duration::from_millis(50);

/// Creates a channel of events: senders for the long-running parts, one
/// receiver for the reporter.
pub fn channel() -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            sleeping: false,
        }),
        wake: Condvar::new(),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver {
            shared,
            batch: VecDeque::new(),
            sent_at: 0,
            last_batch: None,
            frame: FRAME,
        },
    )
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug)]
struct State {
    /// Each event with when it was sent (ms since the epoch).
    queue: VecDeque<(i64, Event)>,
    senders: usize,
    /// The receiver waits on the condition for the queue to fill.
    sleeping: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending half; clones send to the same receiver.
#[derive(Debug)]
pub struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Queues `event`; wakes the receiver only if it sleeps on an empty
    /// queue. Events sent after the receiver is gone are dropped.
    pub fn send(&self, event: Event) {
        let sent_at = crate::clock::now_ms();
        let mut state = self.shared.lock();
        state.queue.push_back((sent_at, event));
        if state.sleeping {
            state.sleeping = false;
            self.shared.wake.notify_one();
        }
    }
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        self.shared.lock().senders += 1;
        Sender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        if state.senders == 0 {
            state.sleeping = false;
            self.shared.wake.notify_one();
        }
    }
}

/// The receiving half: every event, in the order sent, until every
/// sender is gone.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
    /// The batch taken last, being handed out.
    batch: VecDeque<(i64, Event)>,
    /// When the event handed out last was sent.
    sent_at: i64,
    last_batch: Option<Instant>,
    frame: Duration,
}

impl Receiver {
    /// The next event if one was sent; `Err(true)` when none is left and
    /// every sender is gone, `Err(false)` when none is waiting now.
    pub fn try_recv(&mut self) -> Result<Event, bool> {
        let next = match self.batch.pop_front() {
            Some(next) => next,
            None => {
                let mut state = self.shared.lock();
                match state.queue.pop_front() {
                    Some(next) => next,
                    None => return Err(state.senders == 0),
                }
            }
        };
        self.sent_at = next.0;
        Ok(next.1)
    }

    /// When the event handed out last was sent (ms since the epoch).
    pub fn sent_at(&self) -> i64 {
        self.sent_at
    }

    /// Takes the next batch: waits for the frame since the last one to
    /// pass (unless every sender is gone), then for an event.
    fn refill(&mut self) {
        let mut state = self.shared.lock();
        if let Some(last) = self.last_batch {
            // Sends do not wake this wait; the last sender's drop does.
            let rest = self.frame.saturating_sub(last.elapsed());
            state = self
                .shared
                .wake
                .wait_timeout_while(state, rest, |s| s.senders > 0)
                .map_or_else(|p| p.into_inner().0, |(state, _)| state);
        }
        while state.queue.is_empty() && state.senders > 0 {
            state.sleeping = true;
            state = self
                .shared
                .wake
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        state.sleeping = false;
        std::mem::swap(&mut self.batch, &mut state.queue);
        self.last_batch = Some(Instant::now());
    }
}

impl Iterator for Receiver {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.batch.is_empty() {
            self.refill();
        }
        let (sent_at, event) = self.batch.pop_front()?;
        self.sent_at = sent_at;
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(n: usize) -> Event {
        Event::Warning {
            message: n.to_string(),
        }
    }

    fn number(event: &Event) -> usize {
        match event {
            Event::Warning { message } => message.parse().unwrap_or(usize::MAX),
            _ => usize::MAX,
        }
    }

    #[test]
    fn every_event_arrives_in_order_until_the_senders_are_gone() {
        let (sender, receiver) = channel();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    for n in 0..1000 {
                        sender.send(warning(t * 1000 + n));
                    }
                })
            })
            .collect();
        drop(sender);
        let received: Vec<usize> = receiver.map(|e| number(&e)).collect();
        for thread in threads {
            assert!(thread.join().is_ok());
        }
        assert_eq!(received.len(), 4000);
        for t in 0..4 {
            let own: Vec<usize> = received.iter().copied().filter(|n| n / 1000 == t).collect();
            assert_eq!(own, (t * 1000..(t + 1) * 1000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn events_sent_during_a_frame_come_as_one_batch() {
        let (sender, mut receiver) = channel();
        receiver.frame = Duration::from_secs(3600);
        sender.send(warning(0));
        assert_eq!(receiver.next().as_ref().map(number), Some(0));
        sender.send(warning(1));
        sender.send(warning(2));
        // The frame has not passed, but the senders are gone: the rest
        // arrives at once, also when they go while the receiver waits.
        let started = Instant::now();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(sender);
        });
        assert_eq!(receiver.map(|e| number(&e)).collect::<Vec<_>>(), [1, 2]);
        assert!(closer.join().is_ok());
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn try_recv_tells_empty_from_closed() {
        let (sender, mut receiver) = channel();
        assert_eq!(receiver.try_recv().err(), Some(false));
        sender.send(warning(7));
        assert_eq!(receiver.try_recv().ok().as_ref().map(number), Some(7));
        drop(sender);
        assert_eq!(receiver.try_recv().err(), Some(true));
    }
}
