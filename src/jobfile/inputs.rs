//! The inputs of one-shot jobs (`sources`): the files their globs match
//! under the jobfile's directory, and a digest of each one's content. The
//! digests are part of a job's spec, so a changed, added or removed input
//! runs the job again.
//!
//! One walk of the directory serves every job. Directories that are never
//! inputs are not entered: `.git/`, `target/`, `.queuectl/` (as for
//! watches), and links to directories (a link may loop).

use std::io::Read;
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};

use super::Inputs;
use crate::error::{Error, Result};

/// Directories never walked for inputs nor watched: their own writes
/// (builds, the queue, git) would count as changes.
pub const ALWAYS_IGNORED: [&str; 3] = [".git", "target", ".queuectl"];

/// The inputs of each set of globs in `wanted`, in the same order.
pub fn read(dir: &Path, wanted: &[Vec<String>]) -> Result<Vec<Inputs>> {
    let sets: Vec<GlobSet> = wanted.iter().map(|globs| glob_set(globs)).collect();
    let mut found: Vec<Inputs> = vec![Inputs::new(); sets.len()];
    let root = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut files = Vec::new();
    walk(root, "", &mut files);
    for relative in files {
        let matching: Vec<usize> = (0..sets.len())
            .filter(|&i| sets[i].is_match(&relative))
            .collect();
        if matching.is_empty() {
            continue;
        }
        let digest = digest(&root.join(&relative))?;
        for i in matching {
            found[i].insert(relative.clone(), digest.clone());
        }
    }
    Ok(found)
}

/// Globs as validated by the jobfile (invalid ones cannot reach here).
pub fn glob_set(globs: &[String]) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        if let Ok(glob) = Glob::new(glob) {
            builder.add(glob);
        }
    }
    builder.build().unwrap_or_else(|_| GlobSet::empty())
}

/// The regular files under `dir` (`prefix` is its path relative to the
/// root), skipping the directories that are never inputs.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !ALWAYS_IGNORED.contains(&name.as_str()) {
                walk(&entry.path(), &relative, out);
            }
        } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
            out.push(relative);
        }
    }
}

/// A short digest of a file's content.
fn digest(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("read the input", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("read the input", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// How two sets of inputs differ, for `plan`: "input `a` changed", or "3
/// inputs changed (`a`, `b`, `c`)".
pub fn difference(before: &Inputs, now: &Inputs) -> Option<String> {
    let mut changed: Vec<(&str, &str)> = Vec::new();
    for (path, digest) in now {
        match before.get(path) {
            None => changed.push((path, "added")),
            Some(old) if old != digest => changed.push((path, "changed")),
            Some(_) => {}
        }
    }
    for path in before.keys().filter(|p| !now.contains_key(*p)) {
        changed.push((path, "removed"));
    }
    changed.sort();
    match changed.as_slice() {
        [] => None,
        [(path, how)] => Some(format!("input `{path}` {how}")),
        many => {
            let names: Vec<String> = many.iter().take(3).map(|(p, _)| format!("`{p}`")).collect();
            let more = if many.len() > 3 { ", …" } else { "" };
            Some(format!(
                "{} inputs changed ({}{more})",
                many.len(),
                names.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_found_and_told_apart() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("src/deep"))?;
        std::fs::create_dir_all(dir.path().join("target"))?;
        std::fs::write(dir.path().join("src/a.rs"), "a")?;
        std::fs::write(dir.path().join("src/deep/b.rs"), "b")?;
        std::fs::write(dir.path().join("target/c.rs"), "c")?;
        std::fs::write(dir.path().join("Cargo.lock"), "lock")?;
        let wanted = vec![
            vec!["src/**/*.rs".to_string()],
            vec!["Cargo.lock".to_string(), "**/*.rs".to_string()],
        ];
        let found = read(dir.path(), &wanted).map_err(std::io::Error::other)?;
        let keys = |i: usize| found[i].keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(0), vec!["src/a.rs", "src/deep/b.rs"]);
        assert_eq!(keys(1), vec!["Cargo.lock", "src/a.rs", "src/deep/b.rs"]);
        let mut later = found[0].clone();
        later.insert("src/a.rs".into(), "other".into());
        assert_eq!(
            difference(&found[0], &later).as_deref(),
            Some("input `src/a.rs` changed")
        );
        later.insert("src/new.rs".into(), "x".into());
        later.remove("src/deep/b.rs");
        assert_eq!(
            difference(&found[0], &later).as_deref(),
            Some("3 inputs changed (`src/a.rs`, `src/deep/b.rs`, `src/new.rs`)")
        );
        assert_eq!(difference(&found[0], &found[0]), None);
        Ok(())
    }
}
