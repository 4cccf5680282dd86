//! `queuectl cancel ID`: a waiting job is cancelled at once; a running one
//! is flagged, and the worker running it stops its process group.

use crate::clock::now_ms;
use crate::context::Context;
use crate::error::{EXIT_OK, Result};
use crate::job::JobState;
use crate::output::{print_json, print_out};

/// `cancel ID|NAME`.
pub fn run(context: &Context, arg: &str) -> Result<u8> {
    let mut store = context.engine()?;
    let id = &store.resolve_job(arg)?;
    let was = store.cancel(id, now_ms())?;
    let running = was == JobState::Processing;
    if context.json {
        print_json(&serde_json::json!({"id": id, "was": was, "stopping": running}))?;
    } else if !context.quiet {
        let text = if running {
            format!("stopping {id}: its worker stops it and marks it cancelled\n")
        } else {
            format!("cancelled {id}\n")
        };
        print_out(&text)?;
    }
    Ok(EXIT_OK)
}
