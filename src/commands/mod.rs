//! One module per subcommand, named after its verb; [`dispatch`] picks one.

mod cancel;
pub mod completions;
mod config;
mod dlq;
mod enqueue;
mod init;
mod list;
mod logs;
mod man;
mod plan;
mod prune;
mod queue;
mod run;
mod show;
mod status;
mod ui;
mod validate;
mod wait;
mod worker;

use crate::cli::Command;
use crate::context::Context;
use crate::error::Result;

/// Runs a command that needs neither the jobfile nor the queue, before
/// either is looked for (so that a broken one does not stop it); None for
/// every other command.
pub fn standalone(command: &Command, global: &crate::cli::GlobalArgs) -> Option<Result<u8>> {
    match command {
        Command::Completions(args) => Some(completions::run(args.shell)),
        Command::Man(args) => Some(man::run(args, global.quiet)),
        Command::Schema => Some(schema()),
        _ => None,
    }
}

fn schema() -> Result<u8> {
    crate::output::print_out(&crate::jobfile::schema())?;
    Ok(crate::error::EXIT_OK)
}

/// Runs one command; returns the exit code for success paths.
pub fn dispatch(context: &Context, command: Command) -> Result<u8> {
    match command {
        Command::Init(args) => init::run(context, &args),
        Command::Validate => validate::run(context),
        Command::Plan(args) => plan::plan(context, &args),
        Command::Apply(args) => plan::apply(context, &args),
        Command::Schema => schema(),
        Command::Config(command) => config::run(context, command),
        Command::Run(args) => run::run(context, &args),
        Command::Enqueue(args) => enqueue::run(context, args),
        Command::Status(args) => status::run(context, &args),
        Command::List(args) => list::run(context, &args),
        Command::Show(args) => show::run(context, &args.id),
        Command::Logs(args) => logs::run(context, &args),
        Command::Wait(args) => wait::run(context, &args),
        Command::Cancel(args) => cancel::run(context, &args.id),
        Command::Dlq(command) => dlq::run(context, command),
        Command::Prune(args) => prune::run(context, &args),
        Command::Worker(command) => worker::run(context, command),
        Command::Queue(command) => queue::run(context, command),
        Command::Ui(args) => ui::run(context, &args),
        Command::Completions(args) => completions::run(args.shell),
        Command::Man(args) => man::run(&args, context.quiet),
    }
}
