//! File watching (notify, debounced): the `watch` triggers of job
//! definitions ([`TriggerWatch`], debounced per definition by
//! [`Batcher`]), what a batch of changes does to the definition's jobs
//! ([`decide`]: merge into a waiting one, or follow `on_busy`), and the
//! jobfile that `run` follows ([`JobfileWatch`]). Directories are
//! watched, not files, because editors save by writing a temp file and
//! renaming it over the old one, which ends a watch on the file itself;
//! events are filtered by name or glob, and by the repository's ignore
//! files ([`IgnoreFiles`]) unless a definition says `ignore_files = false`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::driver::JobRef;
use crate::job::{JobState, Origin, Payload};
use crate::jobfile::inputs::{ALWAYS_IGNORED, glob_set};
use crate::jobfile::{Jobfile, OnBusy, Trigger};
use crate::trigger::ignores::IgnoreFiles;

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
    /// For each glob of `paths`, how many of its leading components are
    /// literal (no wildcard): the ignore files do not filter those.
    literal: Vec<usize>,
    ignore: GlobSet,
    debounce: Duration,
    per_file: bool,
    /// Whether the ignore files filter its changes.
    ignore_files: bool,
    on_busy: OnBusy,
}

impl WatchedJob {
    fn new(name: &str, watch: &crate::jobfile::Watch) -> WatchedJob {
        let (paths, literal) = watch_globs(&watch.paths);
        WatchedJob {
            name: name.to_string(),
            paths,
            literal,
            ignore: glob_set(&watch.ignore),
            debounce: watch.debounce,
            per_file: watch.per_file,
            ignore_files: watch.ignore_files,
            on_busy: watch.on_busy,
        }
    }

    /// Whether a change of `relative` counts for this definition.
    /// `ignored_depth` tells how many leading components of the path reach
    /// its deepest part the ignore files ignore (0: none): a glob keeps the
    /// path when that part is within its literal leading components, so
    /// `build/**` sees `build/x.md` in an ignored `build/`, and `**/*.md`
    /// does not.
    fn wants(&self, relative: &str, ignored_depth: &mut impl FnMut() -> usize) -> bool {
        let hits = self.paths.matches(relative);
        if hits.is_empty() || self.ignore.is_match(relative) {
            return false;
        }
        if !self.ignore_files {
            return true;
        }
        let depth = ignored_depth();
        hits.iter()
            .any(|&i| self.literal.get(i).is_some_and(|&literal| depth <= literal))
    }
}

/// The watch globs as a set (invalid ones, refused by the jobfile's
/// validation, left out), and for each the number of its leading
/// components without a wildcard: 1 for `build/**`, 0 for `**/*.md`, all
/// of them for `docs/index.md`.
fn watch_globs(globs: &[String]) -> (GlobSet, Vec<usize>) {
    let mut builder = GlobSetBuilder::new();
    let mut literal = Vec::new();
    for text in globs {
        if let Ok(glob) = Glob::new(text) {
            builder.add(glob);
            literal.push(
                text.split('/')
                    .take_while(|part| !part.contains(['*', '?', '[', ']', '{', '}', '\\']))
                    .count(),
            );
        }
    }
    match builder.build() {
        Ok(set) => (set, literal),
        Err(_) => (GlobSet::empty(), Vec::new()),
    }
}

/// The definitions a change of `relative` (below the watched directory;
/// `is_dir` if it is a directory) counts for. The ignore files are asked
/// at most once, and only when a definition that honours them matches.
fn takers<'a>(
    jobs: &'a [WatchedJob],
    ignores: Option<&mut IgnoreFiles>,
    relative: &str,
    is_dir: bool,
) -> Vec<&'a str> {
    let mut ignores = ignores;
    let mut depth = None;
    let mut ignored_depth = || {
        *depth.get_or_insert_with(|| {
            ignores
                .as_deref_mut()
                .map_or(0, |files| files.ignored_depth(relative, is_dir))
        })
    };
    jobs.iter()
        .filter(|job| job.wants(relative, &mut ignored_depth))
        .map(|job| job.name.as_str())
        .collect()
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
    /// The ignore files under `root`, when a definition honours them.
    ignores: Option<IgnoreFiles>,
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
                Trigger::Watch(w) => Some(WatchedJob::new(&def.name, w)),
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
        let ignores = jobs
            .iter()
            .any(|j| j.ignore_files)
            .then(|| IgnoreFiles::new(&root));
        Some((|| {
            let (sender, events) = channel();
            let mut debouncer = new_debouncer(TRIGGER_DEBOUNCE, None, sender)?;
            debouncer.watch(&root, RecursiveMode::Recursive)?;
            Ok(TriggerWatch {
                _debouncer: debouncer,
                events,
                root,
                jobs,
                ignores,
                batcher: Batcher::default(),
            })
        })())
    }

    /// Reads the ignore files again, those outside the watched directory
    /// (a parent's `.gitignore`, git's global excludes) included.
    pub fn reload_ignore_files(&mut self) {
        if let Some(ignores) = &mut self.ignores {
            ignores.reload();
        }
    }

    /// The batches whose debounce ended by `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Batch> {
        let events: Vec<_> = std::iter::from_fn(|| self.events.try_recv().ok())
            .flat_map(|result| result.into_iter().flatten())
            .filter(|event| !event.kind.is_access())
            .collect();
        // Edited ignore files count for the changes that came with them.
        if let Some(ignores) = &mut self.ignores {
            for path in events.iter().flat_map(|e| &e.paths) {
                ignores.changed(path);
            }
        }
        for event in events {
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
                    let is_dir = path.is_dir();
                    for name in takers(&self.jobs, self.ignores.as_mut(), &relative, is_dir) {
                        self.batcher.add(name, relative.clone(), now);
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
    fn literal_leading_components_of_globs() {
        let (_, literal) = watch_globs(&[
            "build/**".into(),
            "**/*.md".into(),
            "docs/index.md".into(),
            "a/b/*.png".into(),
            "a/{b,c}/x".into(),
            "[invalid".into(),
        ]);
        assert_eq!(literal, vec![1, 0, 2, 2, 1], "the invalid glob is left out");
    }

    /// Which definitions a change counts for, with the ignore files of a
    /// repository whose `.gitignore` ignores `build/` and `*.log`.
    #[test]
    fn ignore_files_filter_changes_unless_a_glob_names_the_path() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().canonicalize()?;
        std::fs::create_dir_all(root.join(".git"))?;
        std::fs::write(root.join(".gitignore"), "build/\n*.log\n!keep.log\n")?;
        let watch = |paths: &[&str], ignore_files: bool| crate::jobfile::Watch {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            ignore: Vec::new(),
            debounce: Duration::ZERO,
            per_file: false,
            ignore_files,
            on_busy: OnBusy::Queue,
        };
        let jobs = [
            WatchedJob::new("all", &watch(&["**"], true)),
            WatchedJob::new("opt-out", &watch(&["**"], false)),
            WatchedJob::new("build", &watch(&["build/**"], true)),
            WatchedJob::new("one-file", &watch(&["build/out/app.log"], true)),
        ];
        let mut ignores = IgnoreFiles::without_global(&root);
        let table: [(&str, &[&str]); 6] = [
            ("notes.md", &["all", "opt-out"]),
            ("build/x.md", &["opt-out", "build"]),
            ("x.log", &["opt-out"]),
            ("keep.log", &["all", "opt-out"]),
            // Inside the named directory the other rules still count.
            ("build/out/app.log", &["opt-out", "one-file"]),
            ("build/out/keep.log", &["opt-out", "build"]),
        ];
        for (path, expected) in table {
            assert_eq!(
                takers(&jobs, Some(&mut ignores), path, false),
                expected,
                "{path}"
            );
        }
        // Without ignore files (no definition honours them), all count.
        assert_eq!(takers(&jobs, None, "x.log", false), vec!["all", "opt-out"]);
        Ok(())
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
