//! `GET /events/job/ID`: a job's output as it is written, as server-sent
//! events, for its page. A blocking thread per stream runs
//! [`crate::logs::follow`], what `logs --follow` runs: every
//! [`crate::logs::FOLLOW_POLL`] it sends what the attempt's log on this
//! host gained, or, for an attempt running on another host, what the
//! database keeps of it (stored as it goes, see
//! [`crate::exec::LIVE_EVERY`]).
//!
//! The events, each `data` one line of JSON:
//!
//! - `attempt` `{"attempt": N}`: attempt N's output follows, from its
//!   start (the page empties that attempt's output, then appends to it);
//! - `output` `{"attempt": N, "text": "…"}`: what it wrote (invalid UTF-8
//!   replaced; a character split between two reads goes whole with the
//!   second);
//! - `state` `{"state": "…"}`: the job's state when the stream begins, at
//!   each change while it is not finished, and every [`WAITING_REFRESH`]
//!   while it waits (what it waits for may have changed); the page
//!   reloads its fragment when it shows another state, or, with
//!   `"refresh": true`, always;
//! - `end` `{"state": "…", "exit_code": N}`: the job ended; the stream
//!   ends after it.
//!
//! The stream also ends when the client goes away or the server stops.
//! The output is text here and on the page (a text node): never markup.

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use serde_json::json;
use tokio::sync::mpsc;

use super::events::Events;
use super::{Shared, Ui, UiError, with_engine};
use crate::job::{Job, JobState};
use crate::logs::Follower;

/// Events a stream may queue for a slow client before its thread waits.
const BACKLOG: usize = 16;

/// How often the page of a waiting job reloads its fragment.
const WAITING_REFRESH: Duration = Duration::from_secs(5);

pub(crate) async fn job_output(
    State(ui): State<Shared>,
    Path(arg): Path<String>,
) -> Result<Sse<KeepAliveStream<Events>>, UiError> {
    let id = with_engine(&ui, false, move |_, engine| engine.resolve_job(&arg)).await?;
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::task::spawn_blocking(move || {
        let Ok(mut engine) = ui.context.engine_read() else {
            return;
        };
        let mut stream = Stream {
            ui: &ui,
            tx: &tx,
            run: 0,
            text: Utf8Pieces::default(),
            state: None,
            sent: Instant::now(),
        };
        // An error (the job deleted meanwhile, the queue unreadable) ends
        // the stream; the page's EventSource asks again, and stops at an
        // answer that is not a stream (a job gone is a 404).
        let _ = crate::logs::follow(&ui.context.logs, &mut engine, &id, None, &mut stream);
    });
    Ok(Sse::new(Events(rx)).keep_alive(KeepAlive::default()))
}

/// One client's stream, as [`crate::logs::follow`] feeds it.
struct Stream<'a> {
    ui: &'a Ui,
    tx: &'a mpsc::Sender<Event>,
    /// The attempt whose output comes.
    run: u32,
    text: Utf8Pieces,
    /// The state last sent, and when.
    state: Option<JobState>,
    sent: Instant,
}

impl Stream<'_> {
    /// Sends an event; a client gone is seen at the next look.
    fn send(&self, name: &str, data: &serde_json::Value) {
        // JSON escapes line ends: the data is one line, as SSE needs. (Keys
        // are written in order, so the text is the same whether or not
        // serde_json keeps insertion order.)
        let _ = self
            .tx
            .blocking_send(Event::default().event(name).data(data.to_string()));
    }

    fn send_text(&self, text: &str) {
        if !text.is_empty() {
            self.send("output", &json!({"attempt": self.run, "text": text}));
        }
    }
}

impl Write for Stream<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let text = self.text.push(bytes);
        self.send_text(&text);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Follower for Stream<'_> {
    fn attempt(&mut self, run: u32, _first: bool) -> crate::error::Result<()> {
        let rest = self.text.finish();
        self.send_text(&rest);
        self.run = run;
        self.send("attempt", &json!({ "attempt": run }));
        Ok(())
    }

    fn looked(&mut self, job: &Job) -> bool {
        if self.ui.stopping.load(Ordering::SeqCst) || self.tx.is_closed() {
            return false;
        }
        // A finished job's state comes with `end`.
        if self.state != Some(job.state) && !job.state.is_finished() {
            self.send("state", &json!({ "state": job.state.as_str() }));
            self.sent = Instant::now();
        } else if job.state.is_waiting() && self.sent.elapsed() >= WAITING_REFRESH {
            self.send(
                "state",
                &json!({ "refresh": true, "state": job.state.as_str() }),
            );
            self.sent = Instant::now();
        }
        self.state = Some(job.state);
        true
    }

    fn end(&mut self, job: &Job) -> crate::error::Result<()> {
        let rest = self.text.finish();
        self.send_text(&rest);
        self.send(
            "end",
            &json!({ "exit_code": job.exit_code, "state": job.state.as_str() }),
        );
        Ok(())
    }
}

/// Text from bytes read in pieces: a character split between two pieces
/// comes whole with the second; bytes that are not UTF-8 become U+FFFD.
#[derive(Debug, Default)]
struct Utf8Pieces {
    /// The start of a character whose end has not come yet (at most 3
    /// bytes).
    pending: Vec<u8>,
}

impl Utf8Pieces {
    /// The text `bytes` complete.
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut text = String::with_capacity(self.pending.len());
        let mut rest = &self.pending[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        // Cut short: the rest may come with the next piece.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let keep = self.pending.len() - rest.len();
        self.pending.drain(..keep);
        text
    }

    /// What is left when no more comes: a character cut short, replaced.
    fn finish(&mut self) -> String {
        match self.pending.is_empty() {
            true => String::new(),
            false => {
                self.pending.clear();
                char::REPLACEMENT_CHARACTER.to_string()
            }
        }
    }
}

#[cfg(test)]
#[test]
fn text_comes_whole_from_pieces() {
    let mut pieces = Utf8Pieces::default();
    assert_eq!(pieces.push(b"plain <b>"), "plain <b>");
    // "é" (c3 a9) and "€" (e2 82 ac) cut between pieces.
    assert_eq!(pieces.push(b"caf\xc3"), "caf");
    assert_eq!(pieces.push(b"\xa9 \xe2"), "é ");
    assert_eq!(pieces.push(b"\x82"), "");
    assert_eq!(pieces.push(b"\xac!\n"), "€!\n");
    // Bytes that are no UTF-8 at all, alone and amid text.
    assert_eq!(pieces.push(b"a\xffb\xc3("), "a\u{fffd}b\u{fffd}(");
    assert_eq!(pieces.push(b"\xf0\x9f"), "");
    assert_eq!(
        pieces.finish(),
        "\u{fffd}",
        "a character cut short at the end"
    );
    assert_eq!(pieces.finish(), "");
    assert_eq!(pieces.push(b"next"), "next");
}
