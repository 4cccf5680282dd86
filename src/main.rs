//! The `queuectl` binary: everything lives in the library; this only hands
//! over the arguments and exits with the code the library chose.

fn main() -> std::process::ExitCode {
    queuectl::run(std::env::args_os())
}
