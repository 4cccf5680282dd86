//! `queuectl completions SHELL`: completion scripts generated from the clap
//! definition, so they never go stale.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{EXIT_OK, Result};

pub fn run(shell: clap_complete::Shell) -> Result<u8> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "queuectl",
        &mut std::io::stdout(),
    );
    Ok(EXIT_OK)
}
