//! The ignore files a watch honours, as git and ripgrep read them (the
//! `ignore` crate parses them): which paths under the watched directory
//! they ignore.
//!
//! - Inside a git repository (a `.git` directory or file in the watched
//!   directory or one of its parents): the `.gitignore` files from the
//!   repository's top down to the changed path, `.git/info/exclude` (a
//!   worktree's is its main repository's), and git's global excludes
//!   (`core.excludesFile` in the global git configuration, else
//!   `$XDG_CONFIG_HOME/git/ignore` or `~/.config/git/ignore`). Outside one,
//!   git reads none of them, and neither does this.
//! - Always: `.ignore` files, from the repository's top (or, outside one,
//!   the watched directory) down.
//!
//! The nearest rule wins as in ripgrep: `.ignore` files before
//! `.gitignore` files (each the deepest first), then `info/exclude`, then
//! the global excludes; within a file the last matching line. As in git, a
//! path is ignored when it or any directory between the watched directory
//! and it is (`!keep.md` does not bring a file back out of an ignored
//! directory). The watched directory itself never counts as ignored, like
//! the directory ripgrep is started in. Lines that are not valid patterns
//! are skipped, as git skips them.
//!
//! A directory's ignore files are read the first time a path below it is
//! matched, and read again after a change of them ([`IgnoreFiles::changed`]);
//! [`IgnoreFiles::reload`] reads everything again, the repository's
//! `info/exclude` and the global excludes included.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The per-directory ignore files.
const GITIGNORE: &str = ".gitignore";
const DOT_IGNORE: &str = ".ignore";

/// The ignore files of one directory.
#[derive(Debug)]
struct DirRules {
    ignore: Gitignore,
    /// Empty outside a git repository.
    gitignore: Gitignore,
}

/// The ignore files that apply under a watched directory.
#[derive(Debug)]
pub struct IgnoreFiles {
    /// The watched directory.
    root: PathBuf,
    /// Where to read the global excludes from; `None`: git's configuration says.
    global_path: Option<PathBuf>,
    /// The top of the git repository holding `root`, if any.
    repo: Option<PathBuf>,
    /// The first directory whose ignore files count: `repo`, else `root`.
    top: PathBuf,
    /// Where the repository's `info/exclude` is, and its rules.
    exclude_path: Option<PathBuf>,
    exclude: Gitignore,
    /// Git's global excludes.
    global: Gitignore,
    /// The ignore files of the directories read so far.
    dirs: BTreeMap<PathBuf, DirRules>,
}

impl IgnoreFiles {
    /// The ignore files under `root`, with git's global excludes where
    /// git's global configuration says.
    pub fn new(root: &Path) -> IgnoreFiles {
        IgnoreFiles::with_global(root, None)
    }

    /// [`IgnoreFiles::new`] with the global excludes read from `global`
    /// (tests: the user's own must not count).
    pub fn with_global(root: &Path, global: Option<PathBuf>) -> IgnoreFiles {
        let mut files = IgnoreFiles {
            root: root.to_path_buf(),
            global_path: global,
            repo: None,
            top: root.to_path_buf(),
            exclude_path: None,
            exclude: Gitignore::empty(),
            global: Gitignore::empty(),
            dirs: BTreeMap::new(),
        };
        files.reload();
        files
    }

    /// [`IgnoreFiles::new`] without global excludes, whatever the user's
    /// git configuration says.
    #[cfg(test)]
    pub(crate) fn without_global(root: &Path) -> IgnoreFiles {
        // An empty path reads as no file.
        IgnoreFiles::with_global(root, Some(PathBuf::new()))
    }

    /// Reads everything again: the repository, its `info/exclude`, the
    /// global excludes; per-directory files on their next use.
    pub fn reload(&mut self) {
        self.dirs.clear();
        self.repo = self
            .root
            .ancestors()
            .find(|d| is_repo_top(d))
            .map(Path::to_path_buf);
        self.top = self.repo.clone().unwrap_or_else(|| self.root.clone());
        self.exclude_path = self.repo.as_deref().and_then(info_exclude);
        self.exclude = Gitignore::empty();
        self.global = Gitignore::empty();
        if let Some(repo) = &self.repo {
            if let Some(exclude) = &self.exclude_path {
                self.exclude = read_rules(repo, exclude);
            }
            let global = self
                .global_path
                .clone()
                .or_else(ignore::gitignore::gitconfig_excludes_path);
            if let Some(global) = global {
                self.global = read_rules(repo, &global);
            }
        }
    }

    /// Takes note of a change of `path` (any path an event names): an
    /// ignore file is read again on its next use, and so is everything
    /// below a changed directory (it may have been replaced).
    pub fn changed(&mut self, path: &Path) {
        let name = path.file_name().and_then(|n| n.to_str());
        if matches!(name, Some(GITIGNORE | DOT_IGNORE))
            && let Some(dir) = path.parent()
        {
            self.dirs.remove(dir);
        }
        let stale: Vec<PathBuf> = self
            .dirs
            .range(path.to_path_buf()..)
            .map(|(dir, _)| dir)
            .take_while(|dir| dir.starts_with(path))
            .cloned()
            .collect();
        for dir in stale {
            self.dirs.remove(&dir);
        }
        // A repository made or removed here, or its excludes edited.
        if name == Some(".git") && path.parent() == Some(self.root.as_path()) {
            self.reload();
        } else if let Some(repo) = &self.repo
            && self.exclude_path.as_deref() == Some(path)
        {
            self.exclude = read_rules(repo, path);
        }
    }

    /// How many leading components of `relative` (a path below the
    /// watched directory, `/`-separated) reach its deepest ignored part:
    /// 0 when nothing of it is ignored, its number of components when the
    /// path itself is. `is_dir` says whether the path is a directory; the
    /// ones above it are.
    pub fn ignored_depth(&mut self, relative: &str, is_dir: bool) -> usize {
        let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
        let mut deepest = 0;
        let mut path = self.root.clone();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            let dir = is_dir || i + 1 < parts.len();
            if self.is_ignored(&path, dir) {
                deepest = i + 1;
            }
        }
        deepest
    }

    /// Whether the rules ignore `path` itself (not looking at its parents).
    fn is_ignored(&mut self, path: &Path, is_dir: bool) -> bool {
        // The directories whose ignore files apply: its parent up to the top.
        let dirs: Vec<PathBuf> = path
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&self.top))
            .map(Path::to_path_buf)
            .collect();
        for dir in &dirs {
            if !self.dirs.contains_key(dir) {
                let rules = DirRules {
                    ignore: read_rules(dir, &dir.join(DOT_IGNORE)),
                    gitignore: if self.repo.is_some() {
                        read_rules(dir, &dir.join(GITIGNORE))
                    } else {
                        Gitignore::empty()
                    },
                };
                self.dirs.insert(dir.clone(), rules);
            }
        }
        let under = |dir: &Path| path.strip_prefix(dir).unwrap_or(path).to_path_buf();
        let layers: Vec<(&PathBuf, &DirRules)> = dirs
            .iter()
            .filter_map(|d| self.dirs.get(d).map(|rules| (d, rules)))
            .collect();
        let mut verdict = Match::None;
        for (dir, rules) in &layers {
            verdict = rules.ignore.matched(under(dir), is_dir).map(|_| ());
            if !verdict.is_none() {
                break;
            }
        }
        if verdict.is_none() {
            for (dir, rules) in &layers {
                verdict = rules.gitignore.matched(under(dir), is_dir).map(|_| ());
                if !verdict.is_none() {
                    break;
                }
            }
        }
        if let Some(repo) = &self.repo {
            if verdict.is_none() {
                verdict = self.exclude.matched(under(repo), is_dir).map(|_| ());
            }
            if verdict.is_none() {
                verdict = self.global.matched(under(repo), is_dir).map(|_| ());
            }
        }
        verdict.is_ignore()
    }
}

/// Whether `dir` is the top of a git repository (a `.git` directory, or a
/// `.git` file as in worktrees and submodules).
fn is_repo_top(dir: &Path) -> bool {
    dir.join(".git").exists()
}

/// The repository's `info/exclude`: in `.git/`, or for a worktree (a
/// `.git` file saying `gitdir: …`) in its main repository's directory.
fn info_exclude(repo: &Path) -> Option<PathBuf> {
    let dot_git = repo.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git.join("info/exclude"));
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let gitdir = text.lines().find_map(|l| l.strip_prefix("gitdir:"))?.trim();
    let gitdir = repo.join(gitdir);
    let common = match std::fs::read_to_string(gitdir.join("commondir")) {
        Ok(common) => gitdir.join(common.trim()),
        Err(_) => gitdir,
    };
    Some(common.join("info/exclude"))
}

/// The rules of the ignore file at `file` (none if it cannot be read),
/// matched relative to `dir`. Lines that are not valid patterns are
/// skipped, as git does; the file need not be UTF-8.
fn read_rules(dir: &Path, file: &Path) -> Gitignore {
    let Ok(bytes) = std::fs::read(file) else {
        return Gitignore::empty();
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut builder = GitignoreBuilder::new(dir);
    for line in text.lines() {
        // An invalid pattern is left out; the others still count.
        let _ = builder.add_line(Some(file.to_path_buf()), line);
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temp dir with files, `.git/` made when `repo`.
    fn tree(repo: bool, files: &[(&str, &str)]) -> std::io::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        if repo {
            std::fs::create_dir_all(dir.path().join(".git/info"))?;
        }
        for (path, text) in files {
            let path = dir.path().join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, text)?;
        }
        Ok(dir)
    }

    fn canonical(dir: &tempfile::TempDir) -> PathBuf {
        dir.path()
            .canonicalize()
            .unwrap_or_else(|_| dir.path().to_path_buf())
    }

    /// The paths of `paths` that the ignore files ignore (anywhere along them).
    fn ignored(files: &mut IgnoreFiles, paths: &[&str]) -> Vec<String> {
        paths
            .iter()
            .filter(|p| files.ignored_depth(p, false) > 0)
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn gitignore_negation_and_directories() -> std::io::Result<()> {
        let dir = tree(
            true,
            &[(
                ".gitignore",
                "build/\n*.md\n!keep.md\n# a comment\n[z-a]\n/top.txt\n",
            )],
        )?;
        let mut files = IgnoreFiles::without_global(&canonical(&dir));
        assert_eq!(
            ignored(
                &mut files,
                &[
                    "build/x.md",
                    "build/keep.md",
                    "build/deep/x.txt",
                    "notes.md",
                    "keep.md",
                    "docs/keep.md",
                    "src/a.rs",
                    "top.txt",
                    "src/top.txt",
                    "build",
                ]
            ),
            vec![
                "build/x.md",
                "build/keep.md",
                "build/deep/x.txt",
                "notes.md",
                "top.txt"
            ],
            "a negated pattern keeps a file, but not out of an ignored directory; \
             an invalid line ([z-a]) is skipped, the lines after it count"
        );
        // `build/` matches directories only: a file named build is not ignored.
        assert_eq!(files.ignored_depth("build", false), 0);
        assert_eq!(files.ignored_depth("build", true), 1);
        assert_eq!(files.ignored_depth("build/deep/x.txt", false), 1);
        Ok(())
    }

    #[test]
    fn nested_gitignore_and_dot_ignore() -> std::io::Result<()> {
        let dir = tree(
            true,
            &[
                (".gitignore", "*.log\n"),
                ("docs/.gitignore", "draft.md\n!keep.log\n"),
                ("docs/sub/.ignore", "!draft.md\n"),
                (".ignore", "scratch/\n"),
            ],
        )?;
        let mut files = IgnoreFiles::without_global(&canonical(&dir));
        assert_eq!(
            ignored(
                &mut files,
                &[
                    "a.log",
                    "docs/a.log",
                    "docs/keep.log",
                    "docs/draft.md",
                    "draft.md",
                    "docs/sub/draft.md",
                    "scratch/x.md",
                    "docs/scratch/x.md",
                ]
            ),
            vec![
                "a.log",
                "docs/a.log",
                "docs/draft.md",
                "scratch/x.md",
                "docs/scratch/x.md"
            ],
            "the deeper .gitignore overrides the upper one; .ignore overrides .gitignore"
        );
        Ok(())
    }

    #[test]
    fn a_watched_subdirectory_sees_the_repository_s_files() -> std::io::Result<()> {
        let dir = tree(
            true,
            &[
                (".gitignore", "app/out/\nwatched/\n"),
                (".git/info/exclude", "local.md\n"),
                ("global-excludes", "*.bak\n"),
                ("app/x.md", ""),
            ],
        )?;
        let root = canonical(&dir);
        let mut files =
            IgnoreFiles::with_global(&root.join("app"), Some(root.join("global-excludes")));
        assert_eq!(
            ignored(
                &mut files,
                &["out/x.md", "local.md", "x.md.bak", "x.md", "sub/local.md"]
            ),
            vec!["out/x.md", "local.md", "x.md.bak", "sub/local.md"],
            "a parent's .gitignore, info/exclude and the global excludes count"
        );
        // The watched directory itself is never ignored (`watched/` in the
        // repository's .gitignore): what is below it counts.
        let mut files = IgnoreFiles::without_global(&root.join("watched"));
        assert_eq!(files.ignored_depth("x.md", false), 0);
        Ok(())
    }

    #[test]
    fn outside_a_repository_only_dot_ignore_counts() -> std::io::Result<()> {
        let dir = tree(
            false,
            &[
                (".gitignore", "*.md\n"),
                (".ignore", "*.tmp\n"),
                ("global-excludes", "*.bak\n"),
            ],
        )?;
        let root = canonical(&dir);
        // The temp dir must not be inside a repository for this test to mean anything.
        if root.ancestors().any(is_repo_top) {
            eprintln!("note: the temp dir is inside a git repository; this test did not run");
            return Ok(());
        }
        let mut files = IgnoreFiles::with_global(&root, Some(root.join("global-excludes")));
        assert_eq!(
            ignored(&mut files, &["a.md", "a.tmp", "a.bak"]),
            vec!["a.tmp"]
        );
        // `git init` here: the repository's files count from then on.
        std::fs::create_dir(root.join(".git"))?;
        files.changed(&root.join(".git"));
        assert_eq!(
            ignored(&mut files, &["a.md", "a.tmp", "a.bak"]),
            vec!["a.md", "a.tmp", "a.bak"]
        );
        Ok(())
    }

    #[test]
    fn edited_ignore_files_are_read_again() -> std::io::Result<()> {
        let dir = tree(true, &[(".gitignore", "a.md\n"), ("docs/.ignore", "")])?;
        let root = canonical(&dir);
        let mut files = IgnoreFiles::without_global(&root);
        assert_eq!(
            ignored(&mut files, &["a.md", "b.md", "docs/c.md"]),
            vec!["a.md"]
        );
        std::fs::write(root.join(".gitignore"), "b.md\n")?;
        std::fs::write(root.join("docs/.ignore"), "c.md\n")?;
        std::fs::write(root.join(".git/info/exclude"), "e.md\n")?;
        // Not told yet: the rules read before still hold.
        assert_eq!(
            ignored(&mut files, &["a.md", "b.md", "docs/c.md"]),
            vec!["a.md"]
        );
        files.changed(&root.join(".gitignore"));
        files.changed(&root.join("docs"));
        files.changed(&root.join(".git/info/exclude"));
        assert_eq!(
            ignored(&mut files, &["a.md", "b.md", "docs/c.md", "e.md"]),
            vec!["b.md", "docs/c.md", "e.md"]
        );
        Ok(())
    }

    #[test]
    fn a_worktree_reads_its_main_repository_s_exclude() -> std::io::Result<()> {
        let dir = tree(
            false,
            &[
                ("main/.git/info/exclude", "local.md\n"),
                ("main/.git/worktrees/wt/commondir", "../..\n"),
                ("wt/x.md", ""),
            ],
        )?;
        let root = canonical(&dir);
        std::fs::write(
            root.join("wt/.git"),
            format!(
                "gitdir: {}\n",
                root.join("main/.git/worktrees/wt").display()
            ),
        )?;
        let mut files = IgnoreFiles::without_global(&root.join("wt"));
        assert_eq!(ignored(&mut files, &["local.md", "x.md"]), vec!["local.md"]);
        Ok(())
    }
}
