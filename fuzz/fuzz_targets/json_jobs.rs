//! The JSON / JSON Lines job parser of `enqueue --file` never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = queuectl::job::input::parse_jobs(text);
    }
});
