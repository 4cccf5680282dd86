//! queuectl: a declarative job runner. Shell jobs go into a persistent
//! queue and are run by pools of workers with retries, exponential
//! backoff ([`retry`]) and a dead letter queue.
//!
//! The layers, top down: [`commands`] translate arguments into calls and
//! results into output; the [`runtime`] supervises worker processes and
//! runs attempts ([`exec`]); the [`engine`] makes every decision about
//! jobs (claims and limits, finishes and retries, rescue, dependencies,
//! apply, triggers) over a storage [`driver`] that only stores (SQLite
//! today); the [`job`] model is shared by all. [`jobfile`] reads
//! `queuectl.toml`; [`trigger`] holds cron and watch; [`sys`] the
//! platform seams.
//!
//! [`run`] is the whole program: answer a shell's completion request
//! ([`commands::completions`]), or parse the command line ([`cli`]),
//! resolve the context ([`context`]) unless the command needs none,
//! dispatch to one command ([`commands`]), print a fatal error once and
//! pick the exit code ([`error`]).

pub mod cli;
pub mod clock;
pub mod commands;
pub mod context;
pub mod driver;
pub mod duration;
pub mod engine;
pub mod error;
pub mod events;
pub mod exec;
pub mod job;
pub mod jobfile;
pub mod liveness;
pub mod logs;
pub mod output;
pub mod report;
pub mod retry;
pub mod runtime;
pub mod sys;
pub mod trigger;
pub mod ui;
pub mod view;

use std::ffi::OsString;
use std::process::ExitCode;

use crate::context::Context;
use crate::error::{EXIT_USAGE, Error};
use crate::output::{BOLD, Colors, Painter, RED};

/// Runs queuectl with these arguments (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // A write past RLIMIT_FSIZE raises SIGXFSZ, which kills by default; with
    // a handler the write fails instead (EFBIG), SQLite rolls back, and the
    // user gets an error, not a dead process.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let args: Vec<OsString> = args.into_iter().collect();
    // `COMPLETE=bash queuectl …`: the shell asks for completions (or the
    // script that asks for them); nothing else runs.
    if let Some(code) = commands::completions::complete_env(&args) {
        return code;
    }
    let cli = match cli::parse(&args) {
        Ok(cli) => cli,
        // clap's message (a usage error, --help, --version): coloured by
        // `--color` as written, since it did not parse.
        Err(cli::Refusal::Clap(e)) => {
            return clap_message(&e, Colors::resolve(output::color_flag(&args)));
        }
        Err(cli::Refusal::Usage(e)) => {
            return fail(&e, Colors::resolve(output::color_flag(&args)).stderr);
        }
    };
    // Colour, once: per stream, for queuectl's own output and the bars.
    let colors = Colors::resolve(cli.global.color);
    colors.apply_to_console();
    if let Some(result) = commands::standalone(&cli.command, &cli.global) {
        return match result {
            Ok(code) => ExitCode::from(code),
            Err(e) => fail(&e, colors.stderr),
        };
    }
    let context = match Context::resolve(&cli.global, colors) {
        Ok(context) => context,
        Err(e) => return fail(&e, colors.stderr),
    };
    if context.verbose {
        // Which files a command works on: the first thing to check when
        // it does not do what was expected. On stderr, so --json stays clean.
        let jobfile = context
            .jobfile
            .as_ref()
            .filter(|p| p.exists())
            .map_or_else(|| "none found".to_string(), |p| p.display().to_string());
        eprintln!(
            "jobfile: {jobfile}\ndatabase: {}",
            context.location.describe()
        );
    }
    match commands::dispatch(&context, cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e, context.color_err),
    }
}

/// Prints clap's message on the stream clap chose for it (stderr for a
/// usage error, stdout for `--help` and `--version`), coloured by that
/// stream's decision; returns its exit code. Not `clap::Error::print`:
/// clap takes one colour choice for both streams, and with `auto` it
/// would follow anstream's rules rather than [`output::use_color`].
fn clap_message(error: &clap::Error, colors: Colors) -> ExitCode {
    use std::io::Write;
    let styled = error.render();
    let (color, code) = if error.use_stderr() {
        (colors.stderr, EXIT_USAGE)
    } else {
        (colors.stdout, 0)
    };
    let text = if color {
        styled.ansi().to_string()
    } else {
        styled.to_string()
    };
    if error.use_stderr() {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    } else {
        let _ = output::print_out(&text);
    }
    ExitCode::from(code)
}

/// Prints a fatal error with its causes and hint on stderr, coloured by
/// stderr's decision (`color`); returns its exit code.
fn fail(error: &Error, color: bool) -> ExitCode {
    let painter = Painter { enabled: color };
    let mut text = format!("{} {error}", painter.paint("error:", RED.bold()));
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if let Some(hint) = error.hint() {
        text.push_str(&format!("\n  {} {hint}", painter.paint("hint:", BOLD)));
    }
    eprintln!("{text}");
    ExitCode::from(error.exit_code())
}
