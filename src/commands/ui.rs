//! `queuectl ui`: the web dashboard. Everything it does lives in
//! [`crate::ui`]; this is the verb's entry point.

use crate::cli::UiArgs;
use crate::context::Context;
use crate::error::Result;

/// `ui [--listen ADDR] [--read-only] [--token T] [--open]`.
pub fn run(context: &Context, args: &UiArgs) -> Result<u8> {
    crate::ui::serve(context, args)
}
