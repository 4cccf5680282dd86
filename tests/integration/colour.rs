//! Colour, decided per stream: `--color`, then `NO_COLOR`, then
//! `CLICOLOR_FORCE`, then `CLICOLOR=0` and `TERM=dumb`, then whether the
//! stream is a terminal; for queuectl's own output, its errors, the
//! progress bars and clap's messages alike. Off a terminal the rules are
//! seen through `--color` and the variables; on one through util-linux
//! `script`, which runs a command line under a pseudo-terminal.

use std::process::Output;

use super::harness::{Env, bin, require};

/// Whether `text` holds an SGR escape (a colour or a weight: `ESC [ … m`);
/// the cursor movements of the bars are not colour.
fn coloured(text: &[u8]) -> bool {
    text.windows(2).enumerate().any(|(i, pair)| {
        pair == b"\x1b[" && {
            let rest = &text[i + 2..];
            rest.iter()
                .find(|b| !(b.is_ascii_digit() || **b == b';'))
                .is_some_and(|b| *b == b'm')
        }
    })
}

/// `queuectl ARGS` off a terminal with only `vars` saying anything
/// about colour (the harness's `NO_COLOR=1` and the caller's own
/// variables removed).
fn colour_run(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Output {
    env.cmd(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm")
        .envs(vars.iter().copied())
        .output()
        .expect("run queuectl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An Env with a job in its queue, so that `list` prints a table (its
/// header is bold).
fn with_a_job() -> Env {
    let env = Env::new();
    env.enqueue(&["true"]);
    env
}

/// Off a terminal nothing is coloured unless forced; `CLICOLOR_FORCE`
/// colours each stream (a table on stdout, an error on stderr, clap's
/// usage error), but not as `0`, and `NO_COLOR` (any value but the empty
/// string, `0` too) wins over it, as anstream decides.
#[test]
fn the_environment_decides_colour_off_a_terminal() {
    let env = with_a_job();
    let list = |vars: &[(&str, &str)]| colour_run(&env, &["list"], vars);
    let error = |vars: &[(&str, &str)]| colour_run(&env, &["show", "nope"], vars);
    let usage = |vars: &[(&str, &str)]| colour_run(&env, &["list", "--bogus"], vars);

    let out = list(&[]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("STATE"), "{}", text(&out.stdout));
    assert!(!coloured(&out.stdout), "{}", text(&out.stdout));
    let out = error(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown job `nope`"));
    assert!(!coloured(&out.stderr), "{}", text(&out.stderr));

    let force = [("CLICOLOR_FORCE", "1")];
    let out = list(&force);
    assert!(coloured(&out.stdout), "{}", text(&out.stdout));
    let out = error(&force);
    assert!(coloured(&out.stderr), "{}", text(&out.stderr));
    assert!(!coloured(&out.stdout));
    let out = usage(&force);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--bogus"),
        "{}",
        text(&out.stderr)
    );
    assert!(coloured(&out.stderr), "{}", text(&out.stderr));

    for vars in [
        &[("CLICOLOR_FORCE", "0")][..],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "0")],
    ] {
        let out = list(vars);
        assert!(!coloured(&out.stdout), "{vars:?}: {}", text(&out.stdout));
        let out = error(vars);
        assert!(!coloured(&out.stderr), "{vars:?}: {}", text(&out.stderr));
        let out = usage(vars);
        assert!(text(&out.stderr).contains("--bogus"));
        assert!(!coloured(&out.stderr), "{vars:?}: {}", text(&out.stderr));
    }
}

/// `--color never` beats the environment on both streams and in clap's
/// messages, before or after the subcommand; `--color always` colours
/// even under `NO_COLOR`, clap's `--help` and usage errors included.
#[test]
fn the_color_flag_beats_the_environment_and_reaches_clap() {
    let env = with_a_job();
    let force = [("CLICOLOR_FORCE", "1")];
    for args in [
        &["--color", "never", "list"][..],
        &["list", "--color=never"],
        &["--color", "never", "--help"],
    ] {
        let out = colour_run(&env, args, &force);
        assert!(out.status.success(), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
        assert!(!coloured(&out.stdout), "{args:?}: {}", text(&out.stdout));
    }
    for args in [
        &["--color", "never", "show", "nope"][..],
        &["--color", "never", "--bogus"],
        &["list", "--color=never", "--bogus"],
    ] {
        let out = colour_run(&env, args, &force);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("error:"), "{args:?}");
        assert!(!coloured(&out.stderr), "{args:?}: {}", text(&out.stderr));
    }

    // Without the flag, the environment reaches clap's messages too.
    let help = colour_run(&env, &["--help"], &force);
    assert!(coloured(&help.stdout), "{}", text(&help.stdout));
    let help = colour_run(&env, &["--help"], &[("NO_COLOR", "1")]);
    assert!(text(&help.stdout).contains("Usage:"));
    assert!(!coloured(&help.stdout), "{}", text(&help.stdout));

    let no_color = [("NO_COLOR", "1")];
    for args in [
        &["--color", "always", "list"][..],
        &["--color=always", "--help"],
    ] {
        let out = colour_run(&env, args, &no_color);
        assert!(out.status.success(), "{args:?}");
        assert!(coloured(&out.stdout), "{args:?}: {}", text(&out.stdout));
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
    for args in [
        &["--color", "always", "show", "nope"][..],
        &["--color", "always", "--bogus"],
        &["list", "--bogus", "--color", "always"],
    ] {
        let out = colour_run(&env, args, &no_color);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(coloured(&out.stderr), "{args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

/// Runs the `sh` command line `line` under a pseudo-terminal (util-linux
/// `script`), `$q` naming queuectl, with only `vars` saying anything
/// about colour (and `TERM=xterm` unless they say otherwise); returns
/// what the terminal showed.
fn on_a_terminal(env: &Env, line: &str, vars: &[(&str, &str)]) -> String {
    let line = format!("q='{}'; {line}", bin().display());
    let out = env
        .command("script")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm")
        .env("SHELL", "/bin/sh")
        .envs(vars.iter().copied())
        .args(["-q", "-c", &line, "/dev/null"])
        .output()
        .expect("run script");
    assert!(out.status.success(), "script: {}", text(&out.stderr));
    text(&out.stdout)
}

/// What the terminal showed between two `echo`ed marks.
fn between<'a>(screen: &'a str, from: &str, to: &str) -> &'a str {
    let start = screen.find(from).map_or(0, |i| i + from.len());
    let end = screen[start..].find(to).map_or(screen.len(), |i| start + i);
    &screen[start..end]
}

/// On a terminal each stream is decided on its own: stderr in a file
/// gets no colour while stdout on the terminal does (the reported `show
/// nope 2>err.txt`), and the other way round; `NO_COLOR=0`, `CLICOLOR=0`
/// and `TERM=dumb` turn both off.
#[test]
fn each_stream_is_decided_on_its_own_on_a_terminal() {
    if !require("script") {
        return;
    }
    let env = with_a_job();
    let screen = on_a_terminal(
        &env,
        r#"echo '[list]'; "$q" list; "$q" show nope 2>err.txt; echo '[error]'; "$q" list >out.txt; "$q" show nope; echo '[end]'"#,
        &[],
    );
    let list = between(&screen, "[list]", "[error]");
    assert!(list.contains("STATE"), "{screen}");
    assert!(coloured(list.as_bytes()), "{screen}");
    let error = between(&screen, "[error]", "[end]");
    assert!(error.contains("unknown job `nope`"), "{screen}");
    assert!(coloured(error.as_bytes()), "{screen}");
    let err = env.read("err.txt");
    assert!(err.contains("unknown job `nope`"), "{err}");
    assert!(!coloured(err.as_bytes()), "{err}");
    let out = env.read("out.txt");
    assert!(out.contains("STATE"), "{out}");
    assert!(!coloured(out.as_bytes()), "{out}");

    for vars in [[("NO_COLOR", "0")], [("CLICOLOR", "0")], [("TERM", "dumb")]] {
        let screen = on_a_terminal(&env, r#""$q" list; "$q" show nope"#, &vars);
        assert!(screen.contains("STATE"), "{vars:?}: {screen}");
        assert!(screen.contains("unknown job `nope`"), "{vars:?}: {screen}");
        assert!(!coloured(screen.as_bytes()), "{vars:?}: {screen}");
    }
}

/// The bars of `run --progress always` are on stderr and coloured by its
/// decision: in a file beside a terminal stdout they have no colour (the
/// terminal still gets its coloured summary); forced, they have.
#[test]
fn forced_progress_bars_follow_stderr() {
    let env = Env::new();
    env.enqueue(&["--max-retries", "0", "sleep 0.5; exit 3"]);
    let out = colour_run(
        &env,
        &["run", "--until-idle", "--progress", "always"],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("done"), "{}", text(&out.stderr));
    assert!(coloured(&out.stderr), "{}", text(&out.stderr));

    if !require("script") {
        return;
    }
    env.enqueue(&["--max-retries", "0", "sleep 0.5; exit 3"]);
    let screen = on_a_terminal(
        &env,
        r#""$q" run --until-idle --progress always 2>err.txt"#,
        &[],
    );
    assert!(screen.contains("1 dead"), "{screen}");
    assert!(coloured(screen.as_bytes()), "{screen}");
    let err = env.read("err.txt");
    assert!(err.contains("done"), "{err}");
    assert!(!coloured(err.as_bytes()), "{err}");
}
