//! Names: the one rule set for job ids, the names of definitions, queues
//! and retry policies, and environment variable names. Ids and names end
//! up in file names (logs), in commands and in URLs, so they keep to a
//! small alphabet: letters, digits, `.`, `_` and `-`.

use crate::error::{Error, Result};

/// The longest id a user may give.
pub const MAX_ID_LEN: usize = 128;
/// The longest name of a definition, queue or retry policy.
pub const MAX_NAME_LEN: usize = 64;

/// The prefix of the variables queuectl gives a job itself (its id, its
/// attempt, a trigger's payload): a jobfile may not set them.
pub const RESERVED_ENV: &str = "QUEUECTL_";

/// Written before an argument, it is a job id, never a definition's name.
pub const ID_PREFIX: &str = "id:";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks a job id: 1–128 characters of `[A-Za-z0-9._-]`, not `.` or
/// `..`. Ids name log files, so this is also what keeps them inside their
/// directory.
pub fn validate_id(id: &str) -> Result<()> {
    let hint = "an id is 1-128 characters of letters, digits, `.`, `_` and `-`";
    if id.is_empty() {
        return Err(Error::input_with_hint("job id is empty", hint));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::input_with_hint(
            format!(
                "job id is {} characters long, the limit is {MAX_ID_LEN}",
                id.len()
            ),
            hint,
        ));
    }
    if let Some(bad) = id.chars().find(|c| !is_name_char(*c)) {
        return Err(Error::input_with_hint(
            format!("invalid job id `{id}`: `{bad}` is not allowed"),
            hint,
        ));
    }
    if id == "." || id == ".." {
        return Err(Error::input_with_hint(
            format!("invalid job id `{id}`"),
            hint,
        ));
    }
    Ok(())
}

/// Why `name` cannot name a definition, a queue or a retry policy, if it
/// cannot: 1–64 characters of `[A-Za-z0-9._-]`.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Some("a name is 1-64 characters");
    }
    if !name.chars().all(is_name_char) {
        return Some("use letters, digits, `.`, `_` and `-`");
    }
    None
}

/// Checks a queue name given on the command line.
pub fn validate_queue(name: &str) -> Result<()> {
    match name_problem(name) {
        None => Ok(()),
        Some(_) => Err(Error::input_with_hint(
            format!("invalid queue name `{name}`"),
            "a queue name is 1-64 characters of letters, digits, `.`, `_` and `-`",
        )),
    }
}

/// Whether `name` can name an environment variable: letters, digits and
/// `_`, not starting with a digit.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks an environment variable name given on the command line or in JSON.
pub fn validate_env_name(key: &str) -> Result<()> {
    if is_env_name(key) {
        Ok(())
    } else {
        Err(Error::input(format!(
            "invalid environment variable name `{key}`: use letters, digits and `_`, not starting with a digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for good in ["a", "job-1", "A.b_c", &"x".repeat(128), "..."] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", "a b", "é", ".", "..", &"x".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_queues_and_env_names() {
        assert_eq!(name_problem("build-docs.v2_x"), None);
        assert_eq!(name_problem(""), Some("a name is 1-64 characters"));
        assert_eq!(
            name_problem(&"q".repeat(65)),
            Some("a name is 1-64 characters")
        );
        assert_eq!(
            name_problem("a b"),
            Some("use letters, digits, `.`, `_` and `-`")
        );
        assert!(validate_queue("deploy").is_ok());
        assert_eq!(
            validate_queue("de ploy").err().map(|e| e.to_string()),
            Some("invalid queue name `de ploy`".into())
        );
        for good in ["A", "_x", "PATH_2"] {
            assert!(is_env_name(good), "{good}");
        }
        for bad in ["", "2X", "A-B", "A=B", "é"] {
            assert!(!is_env_name(bad), "{bad}");
            assert!(validate_env_name(bad).is_err(), "{bad}");
        }
    }
}
