//! `GET /events`: the overview's live fragment as server-sent events.
//! A blocking thread per stream waits on the queue's change feed and
//! renders the fragment when something changed (at most once a second)
//! and at least every 5 s; the stream ends when the client goes away or
//! the server stops.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use tokio::sync::mpsc;

use super::Shared;
use super::html::overview_fragment;
use super::pages::overview_data;

/// At most one event this often.
const MIN_GAP: Duration = Duration::from_secs(1);
/// At least one event this often.
const MAX_GAP: Duration = Duration::from_secs(5);

/// The events of one client, as a blocking thread sends them; they end
/// when it drops its sender.
#[derive(Debug)]
pub(crate) struct Events(pub mpsc::Receiver<Event>);

impl futures_core::Stream for Events {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}

pub(crate) async fn events(State(ui): State<Shared>) -> Sse<KeepAliveStream<Events>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::task::spawn_blocking(move || follow(&ui, &tx));
    Sse::new(Events(rx)).keep_alive(KeepAlive::default())
}

/// Sends the fragment now, then on changes and every [`MAX_GAP`], until
/// the receiver is gone, the server stops, or the queue cannot be read.
fn follow(ui: &Shared, tx: &mpsc::Sender<Event>) {
    let mut feed = None;
    let mut changed = true;
    let mut last = Instant::now() - MAX_GAP;
    loop {
        if ui.stopping.load(Ordering::SeqCst) || tx.is_closed() {
            return;
        }
        let since = last.elapsed();
        if (changed && since >= MIN_GAP) || since >= MAX_GAP {
            // A fresh engine each time: a queue that did not exist when the
            // stream began (nothing enqueued yet) is seen once it does.
            let Ok(mut engine) = ui.context.engine_read() else {
                return;
            };
            if feed.is_none() {
                feed = engine.change_feed().ok();
            }
            let Ok(data) = overview_data(ui, &mut engine) else {
                return;
            };
            // One line per `data:` line, as the Event writes it.
            let html = overview_fragment(&data).into_string().replace('\r', "");
            if tx
                .blocking_send(Event::default().event("overview").data(html))
                .is_err()
            {
                return;
            }
            last = Instant::now();
            changed = false;
        }
        // Wake for a change, the next due event, or a look at `stopping`.
        let wait = Duration::from_millis(500);
        match feed.as_mut().map(|feed| feed.wait(wait)) {
            Some(Ok(true)) => changed = true,
            Some(Ok(false)) => {}
            // No feed (yet): look again after a while.
            Some(Err(_)) | None => {
                std::thread::sleep(wait);
                changed = true;
            }
        }
    }
}
