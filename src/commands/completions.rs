//! `queuectl completions SHELL`: completion scripts generated from the clap
//! definition, so they never go stale.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{EXIT_OK, Error, Result};
use crate::output::print_out;

pub fn run(shell: clap_complete::Shell) -> Result<u8> {
    // Rendered first, then written like every other output: clap_complete
    // panics when its writer fails, as stdout does on a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "queuectl", &mut script);
    let script = String::from_utf8(script)
        .map_err(|e| Error::Internal(format!("a completion script is not UTF-8: {e}")))?;
    print_out(&script)?;
    Ok(EXIT_OK)
}
