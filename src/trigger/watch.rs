//! File watching (notify, debounced): the `watch` triggers of job
//! definitions ([`TriggerWatch`], debounced per definition by
//! [`Batcher`]), what a batch of changes does to the definition's jobs
//! ([`decide`]: merge into a waiting one, or follow `on_busy`), and the
//! jobfile that `run` follows ([`JobfileWatch`]). Directories are
//! watched, not files, because editors save by writing a temp file and
//! renaming it over the old one, which ends a watch on the file itself;
//! events are filtered by name or glob.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use globset::GlobSet;

use crate::driver::JobRef;
use crate::job::{JobState, Origin, Payload};
use crate::jobfile::inputs::{ALWAYS_IGNORED, glob_set};
use crate::jobfile::{Jobfile, OnBusy, Trigger};

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
                // Reading the file (as every reload does) is an access,
                // not a change: counting it would reload forever.
                if !event.kind.is_access()
                    && event
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

/// Raw events are gathered this long before the per-job debounce.
const TRIGGER_DEBOUNCE: Duration = Duration::from_millis(50);

/// A watched definition.
#[derive(Debug)]
struct WatchedJob {
    name: String,
    paths: GlobSet,
    ignore: GlobSet,
    debounce: Duration,
    per_file: bool,
    on_busy: OnBusy,
}

/// Changes of a definition's watched paths, debounced into one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub definition: String,
    /// Relative to the jobfile's directory, sorted.
    pub paths: Vec<String>,
    pub per_file: bool,
    pub on_busy: OnBusy,
}

/// The `watch` triggers of a jobfile: one recursive watch on its directory,
/// events matched to definitions by glob, then debounced per definition.
pub struct TriggerWatch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    events: Receiver<DebounceEventResult>,
    root: PathBuf,
    jobs: Vec<WatchedJob>,
    batcher: Batcher,
}

impl std::fmt::Debug for TriggerWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerWatch")
            .field("root", &self.root)
            .field("jobs", &self.jobs)
            .finish()
    }
}

impl TriggerWatch {
    /// Watches for the `watch` definitions of `jobfile`; `None` when it has none.
    pub fn new(jobfile: &Jobfile) -> Option<notify_debouncer_full::notify::Result<TriggerWatch>> {
        let jobs: Vec<WatchedJob> = jobfile
            .jobs
            .values()
            .filter_map(|def| match &def.trigger {
                Trigger::Watch(w) => Some(WatchedJob {
                    name: def.name.clone(),
                    paths: glob_set(&w.paths),
                    ignore: glob_set(&w.ignore),
                    debounce: w.debounce,
                    per_file: w.per_file,
                    on_busy: w.on_busy,
                }),
                _ => None,
            })
            .collect();
        if jobs.is_empty() {
            return None;
        }
        let root = if jobfile.dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            jobfile.dir.clone()
        };
        let root = root.canonicalize().unwrap_or(root);
        Some((|| {
            let (sender, events) = channel();
            let mut debouncer = new_debouncer(TRIGGER_DEBOUNCE, None, sender)?;
            debouncer.watch(&root, RecursiveMode::Recursive)?;
            Ok(TriggerWatch {
                _debouncer: debouncer,
                events,
                root,
                jobs,
                batcher: Batcher::default(),
            })
        })())
    }

    /// The batches whose debounce ended by `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Batch> {
        while let Ok(result) = self.events.try_recv() {
            for event in result.into_iter().flatten() {
                if event.kind.is_access() {
                    continue;
                }
                for path in &event.paths {
                    // Files written into a new directory before its watch
                    // was added raise no event of their own: look inside.
                    let mut paths = vec![path.clone()];
                    if event.kind.is_create() && path.is_dir() {
                        walk(path, &mut paths, SCAN_LIMIT);
                    }
                    for path in paths {
                        let Some(relative) = relative_path(&self.root, &path) else {
                            continue;
                        };
                        for job in &self.jobs {
                            if job.paths.is_match(&relative) && !job.ignore.is_match(&relative) {
                                self.batcher.add(&job.name, relative.clone(), now);
                            }
                        }
                    }
                }
            }
        }
        let debounce = |name: &str| {
            self.jobs
                .iter()
                .find(|j| j.name == name)
                .map_or(Duration::ZERO, |j| j.debounce)
        };
        self.batcher
            .due(now, debounce)
            .into_iter()
            .filter_map(|(definition, paths)| {
                let job = self.jobs.iter().find(|j| j.name == definition)?;
                Some(Batch {
                    definition,
                    paths,
                    per_file: job.per_file,
                    on_busy: job.on_busy,
                })
            })
            .collect()
    }
}

impl Batch {
    /// The payloads of its jobs: one per path with `per_file`, else one
    /// with every path.
    pub fn payloads(&self) -> Vec<Payload> {
        if self.per_file {
            self.paths.iter().cloned().map(Payload::Path).collect()
        } else {
            vec![Payload::Changed(self.paths.clone())]
        }
    }
}

/// What a watched change does to its definition's jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchDecision {
    /// A job of the definition (for the same path, with `per_file`) still
    /// waits to start: the change merges into it (its paths united).
    Merge { id: String, payload: Payload },
    /// A run is going and `on_busy = "skip"`.
    Skip,
    /// Enqueue a job; with `on_busy = "restart"`, stop these running ones
    /// (they end cancelled; the new one starts once they have stopped).
    Enqueue { restart: Vec<String> },
}

/// Decides what a change carrying `payload` does, given the definition's
/// pending and running jobs (`jobs`).
pub fn decide(jobs: &[JobRef], payload: &Payload, on_busy: OnBusy) -> WatchDecision {
    let same = |job: &&JobRef| {
        job.origin == Origin::Watch
            && match (payload, &job.payload) {
                (Payload::Path(path), Some(Payload::Path(theirs))) => path == theirs,
                (Payload::Path(_), _) => false,
                _ => true,
            }
    };
    if let Some(waiting) = jobs
        .iter()
        .filter(same)
        .find(|j| j.state == JobState::Pending)
    {
        let payload = match (&waiting.payload, payload) {
            (Some(Payload::Changed(before)), Payload::Changed(now)) => {
                let all: BTreeSet<&String> = before.iter().chain(now).collect();
                Payload::Changed(all.into_iter().cloned().collect())
            }
            _ => payload.clone(),
        };
        return WatchDecision::Merge {
            id: waiting.id.clone(),
            payload,
        };
    }
    let running: Vec<String> = jobs
        .iter()
        .filter(same)
        .filter(|j| j.state == JobState::Processing)
        .map(|j| j.id.clone())
        .collect();
    match on_busy {
        OnBusy::Skip if !running.is_empty() => WatchDecision::Skip,
        OnBusy::Restart => WatchDecision::Enqueue { restart: running },
        _ => WatchDecision::Enqueue {
            restart: Vec::new(),
        },
    }
}

/// At most this many entries are scanned in a new directory.
const SCAN_LIMIT: usize = 10_000;

/// Adds the files under `dir` to `out`, skipping always-ignored
/// directories, up to `limit` entries.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, limit: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if out.len() >= limit {
            return;
        }
        let path = entry.path();
        let name = entry.file_name();
        if ALWAYS_IGNORED.contains(&name.to_string_lossy().as_ref()) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, out, limit);
        } else {
            out.push(path);
        }
    }
}

/// The path relative to the root, with `/`, unless it is under an
/// always-ignored directory.
fn relative_path(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for part in relative.components() {
        let part = part.as_os_str().to_string_lossy();
        if ALWAYS_IGNORED.contains(&part.as_ref()) {
            return None;
        }
        parts.push(part.into_owned());
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Debounce per definition: paths gather until a definition has had no new
/// change for its debounce (trailing edge), then come out as one batch.
#[derive(Debug, Default)]
pub struct Batcher {
    pending: BTreeMap<String, (BTreeSet<String>, Instant)>,
}

impl Batcher {
    pub fn add(&mut self, definition: &str, path: String, now: Instant) {
        let entry = self
            .pending
            .entry(definition.to_string())
            .or_insert_with(|| (BTreeSet::new(), now));
        entry.0.insert(path);
        entry.1 = now;
    }

    /// The batches quiet for their debounce by `now`, taken out.
    pub fn due(
        &mut self,
        now: Instant,
        debounce: impl Fn(&str) -> Duration,
    ) -> Vec<(String, Vec<String>)> {
        let ready: Vec<String> = self
            .pending
            .iter()
            .filter(|(name, (_, last))| now.duration_since(*last) >= debounce(name))
            .map(|(name, _)| name.clone())
            .collect();
        ready
            .into_iter()
            .filter_map(|name| {
                self.pending
                    .remove(&name)
                    .map(|(paths, _)| (name, paths.into_iter().collect()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debounce_is_per_definition_and_trailing() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let debounce = |name: &str| Duration::from_millis(if name == "slow" { 300 } else { 100 });
        let mut batcher = Batcher::default();
        // 50 quick writes to one file and a few to another: one batch.
        for i in 0..50 {
            batcher.add("docs", "a.md".into(), at(i));
        }
        batcher.add("docs", "b.md".into(), at(60));
        batcher.add("slow", "x".into(), at(60));
        assert_eq!(batcher.due(at(100), debounce), vec![]);
        assert_eq!(
            batcher.due(at(160), debounce),
            vec![(
                "docs".to_string(),
                vec!["a.md".to_string(), "b.md".to_string()]
            )]
        );
        assert_eq!(batcher.due(at(200), debounce), vec![]);
        batcher.add("slow", "y".into(), at(300));
        assert_eq!(batcher.due(at(500), debounce), vec![]);
        assert_eq!(
            batcher.due(at(600), debounce),
            vec![("slow".to_string(), vec!["x".to_string(), "y".to_string()])]
        );
    }

    #[test]
    fn changes_merge_or_follow_on_busy() {
        let job = |id: &str, state, payload: Payload| JobRef {
            id: id.into(),
            state,
            origin: Origin::Watch,
            payload: Some(payload),
        };
        let changed =
            |paths: &[&str]| Payload::Changed(paths.iter().map(|p| p.to_string()).collect());
        let path = |p: &str| Payload::Path(p.into());
        let merge = |id: &str, payload| WatchDecision::Merge {
            id: id.into(),
            payload,
        };
        let enqueue = |restart: &[&str]| WatchDecision::Enqueue {
            restart: restart.iter().map(|s| s.to_string()).collect(),
        };
        let pending = job("p", JobState::Pending, changed(&["x.md"]));
        let running = job("r", JobState::Processing, changed(&["x.md"]));
        let table = [
            (
                "nothing waits or runs",
                vec![],
                changed(&["a"]),
                OnBusy::Queue,
                enqueue(&[]),
            ),
            (
                "a pending job takes the change, paths united",
                vec![running.clone(), pending.clone()],
                changed(&["y.md", "x.md"]),
                OnBusy::Skip,
                merge("p", changed(&["x.md", "y.md"])),
            ),
            (
                "running, skip",
                vec![running.clone()],
                changed(&["z"]),
                OnBusy::Skip,
                WatchDecision::Skip,
            ),
            (
                "running, queue",
                vec![running.clone()],
                changed(&["z"]),
                OnBusy::Queue,
                enqueue(&[]),
            ),
            (
                "running, restart",
                vec![running.clone()],
                changed(&["z"]),
                OnBusy::Restart,
                enqueue(&["r"]),
            ),
            (
                "per file: only the same path merges",
                vec![job("f", JobState::Pending, path("1.png"))],
                path("2.png"),
                OnBusy::Queue,
                enqueue(&[]),
            ),
            (
                "per file: the same path merges",
                vec![job("f", JobState::Pending, path("1.png"))],
                path("1.png"),
                OnBusy::Queue,
                merge("f", path("1.png")),
            ),
            (
                "per file: another path's run is no reason to skip",
                vec![job("g", JobState::Processing, path("1.png"))],
                path("2.png"),
                OnBusy::Skip,
                enqueue(&[]),
            ),
            (
                "a run asked for by hand is not merged into",
                vec![JobRef {
                    origin: Origin::Cli,
                    ..pending.clone()
                }],
                changed(&["a"]),
                OnBusy::Queue,
                enqueue(&[]),
            ),
        ];
        for (what, jobs, payload, on_busy, expected) in table {
            assert_eq!(decide(&jobs, &payload, on_busy), expected, "{what}");
        }
    }

    #[test]
    fn always_ignored_directories() {
        let root = Path::new("/repo");
        assert_eq!(
            relative_path(root, Path::new("/repo/src/a.rs")).as_deref(),
            Some("src/a.rs")
        );
        for ignored in [
            "/repo/.git/index",
            "/repo/target/debug/x",
            "/repo/.queuectl/queue.db-wal",
            "/repo/sub/target/x",
        ] {
            assert_eq!(relative_path(root, Path::new(ignored)), None, "{ignored}");
        }
        assert_eq!(relative_path(root, Path::new("/elsewhere/a")), None);
    }
}
