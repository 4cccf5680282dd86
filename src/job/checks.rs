//! What `execve` would refuse: a command or an environment that no job
//! could ever run with is an error when it is given, not a failed attempt
//! later.

/// The longest command queuectl runs. `sh -c COMMAND` passes it as one
/// argument, and Linux refuses any argument of 128 KiB or more
/// (`MAX_ARG_STRLEN`); the rest is left for queuectl's own prefix.
pub const MAX_COMMAND_BYTES: usize = 128_000;
/// The longest `NAME=VALUE` of a job's environment, for the same reason.
pub const MAX_ENV_ENTRY_BYTES: usize = 128_000;
/// A job's own environment in all: with the runner's, it must fit in what
/// `execve` accepts (a quarter of the stack limit, 2 MiB by default).
pub const MAX_ENV_BYTES: usize = 512 * 1024;

/// Why `command` can never run (`execve` would refuse it), as the end of a
/// sentence whose subject names it: "contains a NUL byte".
pub fn check_command(command: &str) -> std::result::Result<(), String> {
    if command.contains('\0') {
        return Err("contains a NUL byte, which no command can hold".into());
    }
    if command.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "is {} bytes: at most {MAX_COMMAND_BYTES} can be run",
            command.len()
        ));
    }
    Ok(())
}

/// Why an environment can never be passed to a job: the name of the
/// variable at fault (None: the whole) and the end of a sentence.
pub fn check_env(env: &[(String, String)]) -> std::result::Result<(), (Option<String>, String)> {
    let mut total = 0usize;
    for (key, value) in env {
        if key.contains('\0') || value.contains('\0') {
            return Err((Some(key.clone()), "contains a NUL byte".into()));
        }
        let entry = key.len() + 1 + value.len();
        if entry > MAX_ENV_ENTRY_BYTES {
            return Err((
                Some(key.clone()),
                format!("is {entry} bytes: at most {MAX_ENV_ENTRY_BYTES} can be passed"),
            ));
        }
        total += entry + 1;
    }
    if total > MAX_ENV_BYTES {
        return Err((
            None,
            format!("is {total} bytes: at most {MAX_ENV_BYTES} can be passed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_environments_execve_would_refuse() {
        assert_eq!(check_command("echo hi"), Ok(()));
        assert_eq!(
            check_command("a\0b"),
            Err("contains a NUL byte, which no command can hold".into())
        );
        assert_eq!(
            check_command(&"x".repeat(MAX_COMMAND_BYTES + 1)),
            Err("is 128001 bytes: at most 128000 can be run".into())
        );
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(check_env(&env("A", "1")), Ok(()));
        assert_eq!(
            check_env(&env("A", "x\0")),
            Err((Some("A".into()), "contains a NUL byte".into()))
        );
        let many: Vec<_> = (0..10)
            .map(|i| (format!("V{i}"), "x".repeat(100_000)))
            .collect();
        assert_eq!(
            check_env(&many),
            Err((
                None,
                "is 1000040 bytes: at most 524288 can be passed".into()
            ))
        );
    }
}
