//! The `${NAME}` template of environment values: `${NAME}` is read from
//! the runner's environment when the job starts (so secrets live neither
//! in the jobfile nor in the database), `$$` is a literal `$`.

/// Expands `${NAME}` in an env value from `lookup` (the runner's
/// environment when the job starts); `$$` is a literal `$`. A variable that
/// is not set is an error, so a missing secret fails loudly.
pub fn expand_env(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{value}`"))?;
            let name = &body[..end];
            if name.is_empty() {
                return Err(format!("empty `${{}}` in `{value}`"));
            }
            let resolved =
                lookup(name).ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            out.push_str(&resolved);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn env_expansion() {
        let table: [(&str, Result<&str, &str>); 7] = [
            ("plain", Ok("plain")),
            ("${TOKEN}", Ok("s3cret")),
            ("a-${TOKEN}-b", Ok("a-s3cret-b")),
            ("$$HOME and $PATH", Ok("$HOME and $PATH")),
            (
                "${MISSING}",
                Err("environment variable `MISSING` is not set"),
            ),
            ("${TOKEN", Err("unclosed `${` in `${TOKEN`")),
            ("${}", Err("empty `${}` in `${}`")),
        ];
        for (input, expected) in table {
            let got = expand_env(input, lookup);
            assert_eq!(got.as_deref().map_err(String::as_str), expected, "{input}");
        }
    }
}
