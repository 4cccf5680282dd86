//! Human and JSON output shared by the commands: aligned tables, colours
//! (decided once per stream, [`Colors`], at the start), JSON printing.

use std::ffi::{OsStr, OsString};
use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};
use clap::ValueEnum;
use serde::Serialize;

use crate::cli::ColorChoice;
use crate::error::{Error, Result};
use crate::job::JobState;

/// The colour decision of one invocation, one per stream: stdout can be
/// a terminal while stderr goes to a file, or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colors {
    pub stdout: bool,
    pub stderr: bool,
}

impl Colors {
    /// Decides both streams from `--color`, the environment and whether
    /// each stream is a terminal ([`use_color`]).
    pub fn resolve(choice: ColorChoice) -> Colors {
        let env = ColorEnv::read();
        Colors {
            stdout: use_color(choice, &env, std::io::stdout().is_terminal()),
            stderr: use_color(choice, &env, std::io::stderr().is_terminal()),
        }
    }

    /// Gives console (which draws indicatif's bars) the same decisions,
    /// in place of its own detection.
    pub fn apply_to_console(self) {
        console::set_colors_enabled(self.stdout);
        console::set_colors_enabled_stderr(self.stderr);
    }
}

/// The environment variables that speak to colour, as read at the start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColorEnv {
    pub no_color: Option<OsString>,
    pub clicolor: Option<OsString>,
    pub clicolor_force: Option<OsString>,
    pub term: Option<OsString>,
}

impl ColorEnv {
    pub fn read() -> ColorEnv {
        ColorEnv {
            no_color: std::env::var_os("NO_COLOR"),
            clicolor: std::env::var_os("CLICOLOR"),
            clicolor_force: std::env::var_os("CLICOLOR_FORCE"),
            term: std::env::var_os("TERM"),
        }
    }
}

/// Whether a stream gets colour, first rule that applies:
///
/// 1. `--color always` or `never`;
/// 2. `NO_COLOR` set to anything but the empty string (`NO_COLOR=0`
///    too, as no-color.org says): no colour;
/// 3. `CLICOLOR_FORCE` set to anything but the empty string or `0`:
///    colour;
/// 4. `CLICOLOR=0` or `TERM=dumb`: no colour;
/// 5. colour when the stream is a terminal.
///
/// `NO_COLOR` before `CLICOLOR_FORCE` is anstream's order (the terminal
/// library of clap and cargo); `CLICOLOR_FORCE=0` does not force, as the
/// CLICOLOR convention says (anstream would force it). Not anstream's own
/// decision: this one is a function of its inputs, to be tested as one.
pub fn use_color(choice: ColorChoice, env: &ColorEnv, terminal: bool) -> bool {
    let given = |var: &Option<OsString>| var.as_deref().is_some_and(|v| !v.is_empty());
    let is = |var: &Option<OsString>, value: &str| var.as_deref() == Some(OsStr::new(value));
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if given(&env.no_color) {
                false
            } else if given(&env.clicolor_force) && !is(&env.clicolor_force, "0") {
                true
            } else if is(&env.clicolor, "0") || is(&env.term, "dumb") {
                false
            } else {
                terminal
            }
        }
    }
}

/// `--color` as written in `args` (the program name first), read before
/// clap parses them, for clap's own messages (a usage error, `--help`):
/// the last one before `--` counts; none, or a value clap will refuse,
/// is `auto`.
pub fn color_flag(args: &[OsString]) -> ColorChoice {
    let mut choice = ColorChoice::Auto;
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        let word = word.to_str().unwrap_or_default();
        if word == "--" {
            break;
        }
        let value = if word == "--color" {
            words.next().and_then(|v| v.to_str())
        } else {
            word.strip_prefix("--color=")
        };
        if let Some(value) = value {
            choice = ColorChoice::from_str(value, false).unwrap_or(ColorChoice::Auto);
        }
    }
    choice
}

/// Paints text when colour is on.
#[derive(Debug, Clone, Copy)]
pub struct Painter {
    pub enabled: bool,
}

impl Painter {
    pub fn paint(&self, text: &str, style: Style) -> String {
        if self.enabled && style != Style::new() {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }
}

pub const BOLD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();
pub const RED: Style = AnsiColor::Red.on_default();
pub const GREEN: Style = AnsiColor::Green.on_default();
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
pub const CYAN: Style = AnsiColor::Cyan.on_default();

/// The colour of a state.
pub fn state_style(state: JobState) -> Style {
    match state {
        JobState::Pending => Style::new(),
        JobState::Processing => CYAN,
        JobState::Completed => GREEN,
        JobState::Failed => YELLOW,
        JobState::Dead => RED.bold(),
        JobState::Cancelled => DIM,
    }
}

/// A table cell: text and its style.
pub type Cell = (String, Style);

/// A plain cell.
pub fn cell(text: impl Into<String>) -> Cell {
    (text.into(), Style::new())
}

/// Renders rows under a header, columns separated by two spaces, widths
/// measured before colouring; the last column is not padded.
pub fn table(painter: Painter, headers: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, (text, _)) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(text.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<Cell> = headers.iter().map(|h| (h.to_string(), BOLD)).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (text, style)) in row.iter().enumerate() {
            let last = i + 1 == row.len();
            line.push_str(&painter.paint(text, *style));
            if !last {
                let pad = widths[i].saturating_sub(text.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Shortens `text` to `max` characters with an ellipsis, on one line.
pub fn truncate(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Asks `question` on the terminal and wants a yes; off a terminal it
/// refuses with `refusal` (a destructive default needs an explicit flag).
pub fn confirm(question: &str, refusal: &str, hint: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::input_with_hint(refusal, hint));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::io("read", "stdin", e))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::input("not changed"))
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))?;
    print_out(&format!("{text}\n"))
}

/// Prints a list as every command's `--json` prints one: `{"items":
/// [...], "total": N}`, where `total` counts every match (more than the
/// items when a limit cut the list).
pub fn print_items<T: Serialize>(items: &[T], total: u64) -> Result<()> {
    #[derive(Serialize)]
    struct Items<'a, T> {
        items: &'a [T],
        total: u64,
    }
    print_json(&Items { items, total })
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub fn print_out(text: &str) -> Result<()> {
    write_out(text).map(|_| ())
}

/// Writes to stdout; false when the reader has closed the pipe (a loop
/// that prints, as `status --watch`, then ends).
pub fn write_out(text: &str) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::Internal(format!("cannot write to stdout: {e}"))),
        Ok(()) => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_without_trailing_space() {
        let painter = Painter { enabled: false };
        let rows = vec![
            vec![cell("a"), cell("pending"), cell("echo hi")],
            vec![cell("long-id"), cell("dead"), cell("x")],
        ];
        let text = table(painter, &["ID", "STATE", "COMMAND"], &rows);
        assert_eq!(
            text,
            "ID       STATE    COMMAND\na        pending  echo hi\nlong-id  dead     x\n"
        );
    }

    /// Every rule of [`use_color`], and which one wins.
    #[test]
    fn colour_rules_in_order() {
        use ColorChoice::{Always, Auto, Never};
        let env = |pairs: &[(&str, &str)]| {
            let get = |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| OsString::from(v))
            };
            ColorEnv {
                no_color: get("NO_COLOR"),
                clicolor: get("CLICOLOR"),
                clicolor_force: get("CLICOLOR_FORCE"),
                term: get("TERM"),
            }
        };
        const XTERM: &[(&str, &str)] = &[("TERM", "xterm")];
        // --color, the environment, whether the stream is a terminal: colour.
        type Case = (
            ColorChoice,
            &'static [(&'static str, &'static str)],
            bool,
            bool,
        );
        #[rustfmt::skip]
        let table: &[Case] = &[
            (Auto, XTERM, true, true),
            (Auto, XTERM, false, false),
            (Auto, &[], true, true),
            (Always, &[("NO_COLOR", "1"), ("TERM", "dumb")], false, true),
            (Never, &[("CLICOLOR_FORCE", "1")], true, false),
            (Auto, &[("NO_COLOR", "1")], true, false),
            (Auto, &[("NO_COLOR", "0")], true, false),
            (Auto, &[("NO_COLOR", "")], true, true),
            (Auto, &[("CLICOLOR_FORCE", "1")], false, true),
            (Auto, &[("CLICOLOR_FORCE", "yes"), ("TERM", "dumb")], false, true),
            (Auto, &[("CLICOLOR_FORCE", "1"), ("CLICOLOR", "0")], false, true),
            (Auto, &[("CLICOLOR_FORCE", "0")], false, false),
            (Auto, &[("CLICOLOR_FORCE", "")], false, false),
            (Auto, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], false, false),
            (Auto, &[("CLICOLOR", "0")], true, false),
            (Auto, &[("CLICOLOR", "1")], true, true),
            (Auto, &[("CLICOLOR", "1")], false, false),
            (Auto, &[("TERM", "dumb")], true, false),
        ];
        for (choice, pairs, terminal, want) in table {
            assert_eq!(
                use_color(*choice, &env(pairs), *terminal),
                *want,
                "{choice:?} {pairs:?} terminal: {terminal}"
            );
        }
    }

    #[test]
    fn the_color_flag_is_read_before_clap() {
        let args = |line: &str| -> Vec<OsString> {
            std::iter::once("queuectl")
                .chain(line.split_whitespace())
                .map(OsString::from)
                .collect()
        };
        assert_eq!(color_flag(&args("list")), ColorChoice::Auto);
        assert_eq!(color_flag(&args("--color never list")), ColorChoice::Never);
        assert_eq!(
            color_flag(&args("list --color=always")),
            ColorChoice::Always
        );
        assert_eq!(
            color_flag(&args("--color never list --color always")),
            ColorChoice::Always
        );
        assert_eq!(color_flag(&args("--color sometimes")), ColorChoice::Auto);
        assert_eq!(color_flag(&args("--color")), ColorChoice::Auto);
        // After `--`, words are a job's command.
        assert_eq!(
            color_flag(&args("enqueue -- ls --color never")),
            ColorChoice::Auto
        );
        // The program name is not a flag.
        assert_eq!(
            color_flag(&[OsString::from("--color=never")]),
            ColorChoice::Auto
        );
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("abcdefghijkl", 5), "abcd…");
    }
}

/// serde: a number written as a JSON string (an id of 64 random bits,
/// which JavaScript's numbers and jq's would round).
pub fn json_string<S: serde::Serializer, T: std::fmt::Display>(
    value: &T,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// serde: [`json_string`] of a value that may be absent (`null`).
pub fn json_string_option<S: serde::Serializer, T: std::fmt::Display>(
    value: &Option<T>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

/// serde: a time kept as milliseconds since the epoch, written in JSON
/// as RFC 3339 in UTC (`2026-11-23T09:30:00.250Z`).
pub mod json_time {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::clock::rfc3339(*ms))
    }

    /// The same for an optional time (`null` when there is none).
    pub mod option {
        use serde::Serializer;

        pub fn serialize<S: Serializer>(
            ms: &Option<i64>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => super::serialize(ms, serializer),
                None => serializer.serialize_none(),
            }
        }
    }
}
