//! The seams between queuectl and the operating system: reading files
//! queuectl did not write ([`files`]), who this process is among the
//! workers of a queue ([`host`]), and keeping a job's processes together so
//! none outlives it ([`contain`]).

pub mod contain;
pub mod files;
pub mod host;
