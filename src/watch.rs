//! File watching (notify, debounced). For now, the jobfile that `run`
//! follows: its directory is watched, not the file, because editors save
//! by writing a temp file and renaming it over the old one, which ends a
//! watch on the file itself; events are filtered by name.

use std::ffi::OsString;
use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

/// How long edits of the jobfile are gathered before it is read again.
const JOBFILE_DEBOUNCE: Duration = Duration::from_millis(100);

/// Says when the jobfile changed.
pub struct JobfileWatch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    events: Receiver<DebounceEventResult>,
    name: OsString,
}

impl std::fmt::Debug for JobfileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobfileWatch")
            .field("name", &self.name)
            .finish()
    }
}

impl JobfileWatch {
    pub fn new(jobfile: &Path) -> notify_debouncer_full::notify::Result<JobfileWatch> {
        let dir = jobfile
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let (sender, events) = channel();
        let mut debouncer = new_debouncer(JOBFILE_DEBOUNCE, None, sender)?;
        debouncer.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(JobfileWatch {
            _debouncer: debouncer,
            events,
            name: jobfile.file_name().map(OsString::from).unwrap_or_default(),
        })
    }

    /// Whether the jobfile changed since the last call.
    pub fn changed(&self) -> bool {
        let mut changed = false;
        while let Ok(result) = self.events.try_recv() {
            for event in result.into_iter().flatten() {
                if event
                    .paths
                    .iter()
                    .any(|p| p.file_name() == Some(self.name.as_os_str()))
                {
                    changed = true;
                }
            }
        }
        changed
    }
}
