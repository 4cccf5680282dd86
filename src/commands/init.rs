//! `queuectl init`: a commented starter jobfile, and its JSON Schema beside
//! it for editors.

use crate::cli::InitArgs;
use crate::context::Context;
use crate::error::{EXIT_OK, Error, Result};
use crate::jobfile::{self, edit::write_atomically};
use crate::output::print_out;

/// The schema's file name, beside the jobfile.
const SCHEMA_FILE: &str = "queuectl.schema.json";

const STARTER: &str = r##"#:schema ./queuectl.schema.json
# queuectl jobfile: jobs, queues and retry policies as code.
#   queuectl plan     what this file would change in the queue
#   queuectl apply    make it so
#   queuectl run      apply, run the jobs, follow edits of this file
# Every key, with its default, is described in queuectl.schema.json.

[settings]
# db = ".queuectl/queue.db"   # the queue, relative to this file
# keep_finished = "7d"        # completed and cancelled jobs older than this are pruned
# dlq_max_jobs = 10000        # dead jobs kept at most (the oldest go first)…
# dlq_max_age = "30d"         # …and for at most this long
# log_max_bytes = "1MiB"      # output kept per attempt (the tail)

[queues.default]
# workers = 4                 # jobs that run at once (default: the number of CPUs)

[retry.default]
max_retries = 3               # retries after the first attempt
backoff_base = 2              # retry n waits backoff_base ^ n seconds
# max_delay = "10m"
# jitter = false
# no_retry_exit_codes = [2]   # these exit codes go straight to the dead letter queue

[jobs.hello]
command = "echo hello from queuectl"

# [jobs.test]
# command = "cargo test"
# after = ["hello"]           # starts once hello's latest run completed
# timeout = "10m"

# [jobs.nightly]
# command = "./report.sh"
# schedule = "0 2 * * *"      # cron: 5 fields, 6 with seconds, or @daily, @hourly…

# [jobs.docs]
# command = "make docs"
# watch = ["docs/**/*.md"]    # runs when a matching file changes
"##;

pub fn run(context: &Context, args: &InitArgs) -> Result<u8> {
    let path = context.jobfile_path();
    if path.exists() && !args.force {
        return Err(Error::input_with_hint(
            format!("`{}` already exists", path.display()),
            "pass --force to overwrite it",
        ));
    }
    write_atomically(&path, STARTER)?;
    let schema = path.with_file_name(SCHEMA_FILE);
    write_atomically(&schema, &jobfile::schema())?;
    if !context.quiet {
        print_out(&format!(
            "wrote {} and {}\nnext: `queuectl plan`, then `queuectl apply`\n",
            path.display(),
            schema.display()
        ))?;
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_starter_file_is_valid() {
        let parsed = crate::jobfile::parse(super::STARTER, std::path::Path::new("queuectl.toml"));
        assert!(parsed.is_ok(), "{:?}", parsed.err().map(|d| d.to_string()));
        assert!(super::STARTER.starts_with("#:schema "));
    }
}
