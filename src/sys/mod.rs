//! The seams between queuectl and the operating system: reading files
//! queuectl did not write ([`files`]), who this process is among the
//! workers of a queue ([`host`]), keeping a job's processes together so
//! none outlives it ([`contain`]), and waiting without polling for a write
//! in a directory ([`dirwatch`]) or a child's exit ([`procwait`]), and
//! starting a job's shell without copying the environment each time
//! ([`spawn`]).
//!
//! Linux gets fast paths (inotify, pidfds, cgroups, `/proc`) behind
//! `cfg(target_os = "linux")`; every other Unix gets a portable fallback
//! with the same API, and the fallbacks are compiled and tested on Linux
//! too.

pub mod contain;
pub mod dirwatch;
pub mod files;
pub mod host;
pub mod lock;
pub mod procwait;
pub mod spawn;
