//! Signals: the first SIGINT/SIGTERM drains a worker, the second forces
//! it; SIGHUP is ignored by background workers. A thread counts them; the
//! supervisor looks at the count each time round its loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::thread;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::error::{Error, Result};

/// Counts SIGINT/SIGTERM on a background thread.
pub struct SignalWatch {
    count: Arc<AtomicUsize>,
    last: Arc<AtomicI32>,
    handle: signal_hook::iterator::Handle,
}

impl SignalWatch {
    pub fn start(ignore_hangup: bool) -> Result<SignalWatch> {
        let mut wanted = vec![SIGINT, SIGTERM];
        if ignore_hangup {
            wanted.push(SIGHUP);
        }
        let mut signals = Signals::new(&wanted)
            .map_err(|e| Error::Internal(format!("cannot install signal handlers: {e}")))?;
        let handle = signals.handle();
        let count = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(AtomicI32::new(0));
        let (c, l) = (count.clone(), last.clone());
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        continue;
                    }
                    l.store(signal, Ordering::SeqCst);
                    c.fetch_add(1, Ordering::SeqCst);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the signal thread: {e}")))?;
        Ok(SignalWatch {
            count,
            last,
            handle,
        })
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> i32 {
        self.last.load(Ordering::SeqCst)
    }

    pub fn name(&self) -> &'static str {
        match self.last() {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }

    pub fn close(&self) {
        self.handle.close();
    }
}
