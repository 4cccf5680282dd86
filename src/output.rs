//! Human and JSON output shared by the commands: aligned tables, colours
//! (decided once, in [`Context`](crate::context::Context)), JSON printing.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::job::JobState;

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
