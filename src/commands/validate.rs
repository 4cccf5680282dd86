//! `queuectl validate`: checks the jobfile and reports every problem with
//! file:line:col; exit 2 when there is one.

use crate::context::Context;
use crate::error::{EXIT_OK, EXIT_USAGE, Error, Result};
use crate::jobfile::Trigger;
use crate::output::{print_json, print_out};

pub fn run(context: &Context) -> Result<u8> {
    match context.require_jobfile() {
        Ok(jobfile) => {
            let count =
                |f: fn(&Trigger) -> bool| jobfile.jobs.values().filter(|j| f(&j.trigger)).count();
            let (once, scheduled, watched) = (
                count(|t| matches!(t, Trigger::Once)),
                count(|t| matches!(t, Trigger::Schedule(_))),
                count(|t| matches!(t, Trigger::Watch(_))),
            );
            if context.json {
                print_json(&serde_json::json!({
                    "valid": true,
                    "file": jobfile.path,
                    "jobs": jobfile.jobs.len(),
                    "queues": jobfile.queues.len(),
                }))?;
            } else if !context.quiet {
                print_out(&format!(
                    "{} is valid: {} job(s) ({once} one-shot, {scheduled} scheduled, {watched} watched), {} queue(s)\n",
                    jobfile.path.display(),
                    jobfile.jobs.len(),
                    jobfile.queues.len()
                ))?;
            }
            Ok(EXIT_OK)
        }
        Err(Error::Jobfile(diagnostics)) if context.json => {
            print_json(&serde_json::json!({
                "valid": false,
                "file": diagnostics.file,
                "errors": diagnostics.items.iter().map(|d| serde_json::json!({
                    "line": d.line, "column": d.column, "message": d.message, "hint": d.hint,
                })).collect::<Vec<_>>(),
            }))?;
            Ok(EXIT_USAGE)
        }
        Err(e) => Err(e),
    }
}
