//! `queuectl man`: the manual page, generated from the clap definition
//! ([`crate::cli::command`]) with clap_mangen, so it never goes stale.
//!
//! `queuectl man` prints `queuectl(1)`, one page with every command, its
//! options and examples (`queuectl man | man -l -`); `--dir DIR` writes
//! it and a page per command (`queuectl-run.1`, `queuectl-dlq-retry.1`,
//! …, as git and cargo have them) for `MANPATH`.

use std::io;

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::{COMMAND_GROUPS, Example, ManArgs, examples};
use crate::error::{EXIT_OK, Error, Result};
use crate::output::print_out;

pub fn run(args: &ManArgs, quiet: bool) -> Result<u8> {
    let Some(dir) = &args.dir else {
        print_out(&page())?;
        return Ok(EXIT_OK);
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let pages = pages();
    for (name, text) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
    }
    if !quiet {
        print_out(&format!(
            "wrote {} man pages to {}: queuectl.1 and one per command (queuectl-run.1, …)\n",
            pages.len(),
            dir.display()
        ))?;
    }
    Ok(EXIT_OK)
}

/// `queuectl.1`: every command, with its options and examples.
pub fn page() -> String {
    let cmd = crate::cli::command();
    let mut built = cmd.clone();
    built.build();
    let man = Man::new(built.clone())
        .title("QUEUECTL")
        .source(source(&built))
        .manual("User Commands");
    let mut text = head(&man);
    text.push_str(&sections(|w| man.render_description_section(w)));
    text.push_str(&roff(|r| {
        for paragraph in DESCRIPTION {
            r.control("PP", []);
            r.text([roman(*paragraph)]);
        }
    }));
    text.push_str(&sections(|w| man.render_options_section(w)));
    text.push_str(&roff(|r| {
        r.control("SH", ["COMMANDS"]);
        r.text([roman(
            "Grouped as in queuectl --help. Each command also takes the global options.",
        )]);
    }));
    for (_, names) in COMMAND_GROUPS {
        for name in *names {
            let (Some(unbuilt), Some(sub)) =
                (cmd.find_subcommand(name), built.find_subcommand(name))
            else {
                continue;
            };
            text.push_str(&command_entry(unbuilt, sub, &[name]));
        }
    }
    text.push_str(&examples_section(examples(&[])));
    text.push_str(&roff(|r| {
        r.control("SH", ["EXIT STATUS"]);
        for (code, meaning) in EXIT_STATUS {
            r.control("TP", []);
            r.text([bold(*code)]);
            r.text([roman(*meaning)]);
        }
        r.control("SH", ["ENVIRONMENT"]);
        for (name, meaning) in ENVIRONMENT {
            r.control("TP", []);
            r.text([bold(*name)]);
            r.text([roman(*meaning)]);
        }
        r.control("SH", ["FILES"]);
        for (name, meaning) in FILES {
            r.control("TP", []);
            r.text([italic(*name)]);
            r.text([roman(*meaning)]);
        }
        r.control("SH", ["SEE ALSO"]);
        r.text([roman(
            "queuectl man --dir DIR writes this page and one per command \
             (queuectl-run(1), queuectl-dlq-retry(1), ...) into DIR.",
        )]);
    }));
    text.push_str(&sections(|w| man.render_version_section(w)));
    text
}

/// Every page `--dir` writes, by file name: `queuectl.1`, then one per
/// command and subcommand.
pub fn pages() -> Vec<(String, String)> {
    let mut built = crate::cli::command();
    built.build();
    let mut out = vec![("queuectl.1".to_string(), page())];
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            path.push(sub.get_name().to_string());
            out.push((
                format!("queuectl-{}.1", path.join("-")),
                command_page(sub, path),
            ));
            walk(sub, path, out);
            path.pop();
        }
    }
    walk(&built, &mut Vec::new(), &mut out);
    out
}

/// The page of one command (`built` is it within the built command).
fn command_page(built: &clap::Command, path: &[String]) -> String {
    let title = format!("QUEUECTL-{}", path.join("-").to_uppercase());
    let man = Man::new(built.clone())
        .title(title)
        .source(source(built))
        .manual("User Commands");
    let mut text = head(&man);
    text.push_str(&sections(|w| man.render_description_section(w)));
    text.push_str(&sections(|w| man.render_options_section(w)));
    if built.get_subcommands().any(|s| s.get_name() != "help") {
        text.push_str(&sections(|w| man.render_subcommands_section(w)));
    }
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    text.push_str(&examples_section(examples(&path)));
    text.push_str(&roff(|r| {
        r.control("SH", ["SEE ALSO"]);
        r.text([bold("queuectl"), roman("(1)")]);
    }));
    text
}

/// The title line first (so the page starts with `.TH`), then what
/// makes apostrophes print as such, NAME and SYNOPSIS.
fn head(man: &Man) -> String {
    let mut text = sections(|w| man.render_title(w));
    text.push_str(&preamble());
    text.push_str(&sections(|w| man.render_name_section(w)));
    text.push_str(&sections(|w| man.render_synopsis_section(w)));
    text
}

/// A command in `queuectl(1)`: its usage, what it does, its own options
/// and its examples; a command with subcommands, each of them.
fn command_entry(unbuilt: &clap::Command, built: &clap::Command, path: &[&str]) -> String {
    let leaves: Vec<&clap::Command> = built
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    if !leaves.is_empty() {
        let mut text = String::new();
        for leaf in leaves {
            let name = leaf.get_name();
            if let Some(unbuilt_leaf) = unbuilt.find_subcommand(name) {
                let path: Vec<&str> = path.iter().copied().chain([name]).collect();
                text.push_str(&command_entry(unbuilt_leaf, leaf, &path));
            }
        }
        return text;
    }
    let usage = built.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim().to_string();
    let mut text = roff(|r| {
        r.control("SS", [usage.as_str()]);
        if let Some(about) = built.get_long_about().or_else(|| built.get_about()) {
            r.text([roman(about.to_string())]);
        }
    });
    // Its own options: the unbuilt command has no global ones (they are
    // in GLOBAL OPTIONS above), and no --help.
    let own = Man::new(unbuilt.clone().disable_help_flag(true));
    let options = sections(|w| own.render_options_section(w));
    text.extend(
        options
            .lines()
            .filter(|line| !line.starts_with(".SH "))
            .map(|line| format!("{line}\n")),
    );
    let examples = examples(path);
    if !examples.is_empty() {
        text.push_str(&roff(|r| {
            r.control("PP", []);
            r.text([italic("Examples:")]);
            example_blocks(r, examples);
        }));
    }
    text
}

/// An EXAMPLES section, if there are examples.
fn examples_section(examples: &[Example]) -> String {
    if examples.is_empty() {
        return String::new();
    }
    roff(|r| {
        r.control("SH", ["EXAMPLES"]);
        example_blocks(r, examples);
    })
}

/// Examples as in `--help`: what it does, then the command lines, as
/// written (no filling).
fn example_blocks(r: &mut Roff, examples: &[Example]) {
    let mut open = false;
    for example in examples {
        if !example.what.is_empty() || !open {
            if open {
                r.control("fi", []).control("RE", []);
            }
            r.control("PP", []);
            if !example.what.is_empty() {
                r.text([roman(example.what)]);
            }
            r.control("RS", ["4"]).control("nf", []);
            open = true;
        }
        r.text([bold(example.command)]);
    }
    if open {
        r.control("fi", []).control("RE", []);
    }
}

/// The `.TH` source field: queuectl and its version.
fn source(cmd: &clap::Command) -> String {
    format!("queuectl {}", cmd.get_version().unwrap_or_default())
}

/// Roff text built by `f`, without the preamble the roff crate starts
/// every document with.
fn roff(f: impl FnOnce(&mut Roff)) -> String {
    let mut r = Roff::new();
    f(&mut r);
    strip_preamble(r.render())
}

/// What a clap_mangen section renderer writes, without the preamble.
fn sections(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut buf = Vec::new();
    // Writing to a Vec does not fail.
    let _ = f(&mut buf);
    strip_preamble(String::from_utf8_lossy(&buf).into_owned())
}

/// The preamble of the roff crate: defines the apostrophe string its
/// text uses; once per page, after `.TH`.
fn preamble() -> String {
    Roff::new().render()
}

fn strip_preamble(text: String) -> String {
    let preamble = preamble();
    match text.strip_prefix(&preamble) {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

const DESCRIPTION: &[&str] = &[
    "A repository commits a queuectl.toml that declares its jobs (shell commands), \
     retry policies, queues and their worker counts, cron schedules and file watches. \
     queuectl apply makes the queue (an SQLite file beside the jobfile, or a PostgreSQL \
     database) match it; queuectl run applies it, runs the jobs with pools of workers and \
     follows edits of the file. Imperative commands (enqueue, cancel, dlq retry, config set) \
     work beside it.",
    "The jobfile is found as cargo finds Cargo.toml: -f PATH, given before the command \
     (queuectl -f ci.toml run), else QUEUECTL_FILE, else the nearest queuectl.toml in the \
     current directory or a parent. Outside any repository the queue is the user's own.",
    "Wherever a command takes a job id it also takes a definition's name, meaning its latest \
     run; id:ID always means an id. --json gives machine-readable output on every read \
     command. queuectl completions SHELL prints a completion script that completes job ids, \
     definition names, queues, states and config keys from the jobfile and the queue.",
];

const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "1",
        "Jobs failed: wait saw a job end dead or cancelled; run --until-idle or worker start \
         --until-idle saw a job of the run end dead (or a one-shot job's latest run is dead); \
         plan --exit-code has changes pending.",
    ),
    (
        "2",
        "Usage, configuration or input error (a bad flag, a bad jobfile or JSON, an unknown \
         job, a locked database); nothing was changed.",
    ),
    (
        "3",
        "queuectl itself failed (a bug, or the system refused something).",
    ),
    ("124", "wait --timeout: the jobs had not ended in time."),
    (
        "130, 143",
        "run or a foreground worker was stopped by SIGINT or SIGTERM.",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    ("QUEUECTL_FILE", "The jobfile, as -f."),
    (
        "QUEUECTL_DB",
        "The queue, as --db: a SQLite file or a postgres:// URL.",
    ),
    (
        "NO_COLOR",
        "Set and not empty: no colour unless --color always.",
    ),
    (
        "CLICOLOR_FORCE",
        "Set and not 0: colour even off a terminal (--color auto).",
    ),
    (
        "XDG_DATA_HOME",
        "Where the user's queue lives outside any repository (default ~/.local/share).",
    ),
    (
        "COMPLETE",
        "Set by the completion scripts: COMPLETE=bash queuectl prints the bash script.",
    ),
];

const FILES: &[(&str, &str)] = &[
    ("queuectl.toml", "The jobfile."),
    (
        ".queuectl/queue.db",
        "The queue beside the jobfile (settings.db), with its logs and the background \
         workers' worker.log.",
    ),
    (
        "$XDG_DATA_HOME/queuectl/queue.db",
        "The user's queue, outside any repository.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_starts_with_its_title_and_has_every_command() {
        let page = page();
        assert!(page.starts_with(".TH QUEUECTL 1 "), "{}", &page[..80]);
        // Once, after the title.
        assert_eq!(page.matches(preamble().as_str()).count(), 1);
        let cmd = crate::cli::command();
        for sub in cmd.get_subcommands() {
            assert!(
                page.contains(&format!(".SS \"queuectl {}", sub.get_name())),
                "{} is in the page",
                sub.get_name()
            );
        }
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "\"GLOBAL OPTIONS\"",
            "COMMANDS",
            "EXAMPLES",
            "\"EXIT STATUS\"",
            "ENVIRONMENT",
        ] {
            assert!(page.contains(&format!(".SH {section}\n")), "{section}");
        }
        // A command's own options are under it; the global ones once.
        assert!(page.contains("\\-\\-until\\-idle"), "run's options");
        assert_eq!(page.matches(".SH \"GLOBAL OPTIONS\"").count(), 1);
    }

    #[test]
    fn a_page_per_command() {
        let pages = pages();
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        for name in [
            "queuectl.1",
            "queuectl-run.1",
            "queuectl-dlq.1",
            "queuectl-dlq-retry.1",
            "queuectl-worker-start.1",
            "queuectl-man.1",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let (_, run) = pages
            .iter()
            .find(|(name, _)| name == "queuectl-run.1")
            .expect("queuectl-run.1");
        assert!(run.starts_with(".TH QUEUECTL-RUN 1 "), "{run}");
        assert!(run.contains(".SH EXAMPLES"), "{run}");
        assert!(run.contains(".SH \"GLOBAL OPTIONS\""), "{run}");
    }
}
