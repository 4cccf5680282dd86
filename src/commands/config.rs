//! `queuectl config get|set|list|reset`: the jobfile's settings, read with
//! their defaults and edited in place with comments kept (see
//! [`crate::jobfile::edit`]).

use crate::cli::ConfigCommand;
use crate::context::Context;
use crate::error::{EXIT_OK, Error, Result};
use crate::jobfile::{Jobfile, edit, parse};
use crate::output::{Painter, cell, confirm, print_items, print_json, print_out, table};
use crate::sys::files::{DirLock, MAX_JOBFILE_BYTES, check_file_kind, read_regular};

pub fn run(context: &Context, command: ConfigCommand) -> Result<u8> {
    let path = context.jobfile_path();
    // Edits read, change and replace the file: one at a time, or two
    // concurrent `config set`s would each write the file without the
    // other's change.
    let _lock = match &command {
        ConfigCommand::Set(_) | ConfigCommand::Reset(_) => Some(DirLock::acquire(&path)?),
        _ => None,
    };
    let text = if check_file_kind(&path, "the jobfile")? {
        read_regular(&path, MAX_JOBFILE_BYTES, "the jobfile")?
    } else {
        String::new()
    };
    let load = || parse(&text, &path).map_err(Error::Jobfile);
    match command {
        ConfigCommand::Get(args) => {
            let key = edit::resolve_key(&args.key)?;
            let jobfile: Jobfile = load()?;
            let value = match edit::written(&text, &key) {
                Some(value) => value,
                None if edit::is_known(&key) => edit::effective(&jobfile, &key),
                None => {
                    return Err(Error::input_with_hint(
                        format!("`{}` is not set in `{}`", key.join("."), path.display()),
                        "`queuectl config list` shows every setting",
                    ));
                }
            };
            if context.json {
                print_json(&serde_json::json!({"key": key.join("."), "value": typed(&value)}))?;
            } else {
                print_out(&format!("{value}\n"))?;
            }
        }
        ConfigCommand::Set(args) => {
            let key = edit::resolve_key(&args.key)?;
            let edited = edit::set(&text, &path, &key, edit::parse_value(&key, &args.value))?;
            edit::write_atomically(&path, &edited)?;
            if !context.quiet {
                let value = edit::written(&edited, &key).unwrap_or_default();
                print_out(&format!(
                    "{} = {value} in {}\n",
                    key.join("."),
                    path.display()
                ))?;
            }
        }
        ConfigCommand::List => {
            let jobfile = load()?;
            let settings = edit::settings(&jobfile, &text);
            if context.json {
                let typed: Vec<_> = settings
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "key": s.key,
                            "value": typed(&s.value),
                            "source": s.source,
                        })
                    })
                    .collect();
                print_items(&typed, typed.len() as u64)?;
            } else {
                let rows: Vec<_> = settings
                    .iter()
                    .map(|s| vec![cell(&s.key), cell(&s.value), cell(&s.source)])
                    .collect();
                print_out(&table(
                    Painter {
                        enabled: context.color,
                    },
                    &["KEY", "VALUE", "SOURCE"],
                    &rows,
                ))?;
            }
        }
        ConfigCommand::Reset(args) => {
            if !path.exists() {
                return Ok(EXIT_OK);
            }
            let edited = edit::reset(&text, &path)?;
            if !args.yes {
                confirm(
                    &format!(
                        "remove [settings], [queues.default] and [retry.default] from {}?",
                        path.display()
                    ),
                    "refusing to reset the settings without confirmation",
                    "pass --yes",
                )?;
            }
            edit::write_atomically(&path, &edited)?;
            if !context.quiet {
                print_out(&format!("reset the settings in {}\n", path.display()))?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// A setting's value, written as TOML (`5`, `"30s"`, `[2, 3]`), as the
/// JSON value of the same type; `none` (not set, no default) is null;
/// other text that is not a TOML value stays a string.
fn typed(toml_text: &str) -> serde_json::Value {
    if toml_text == "none" {
        return serde_json::Value::Null;
    }
    let parsed = format!("value = {toml_text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("value"))
        .and_then(|value| serde_json::to_value(value).ok());
    parsed.unwrap_or_else(|| serde_json::Value::String(toml_text.to_string()))
}

#[cfg(test)]
#[test]
fn setting_values_keep_their_type_in_json() {
    use serde_json::json;
    assert_eq!(typed("5"), json!(5));
    assert_eq!(typed("2.5"), json!(2.5));
    assert_eq!(typed("true"), json!(true));
    assert_eq!(typed("\"30s\""), json!("30s"));
    assert_eq!(typed("[2, 3]"), json!([2, 3]));
    assert_eq!(typed("{ max_retries = 5 }"), json!({"max_retries": 5}));
    assert_eq!(typed("none"), json!(null));
    assert_eq!(typed("\"none\""), json!("none"));
    assert_eq!(typed("CPUs"), json!("CPUs"));
    assert_eq!(typed(""), json!(""));
}
