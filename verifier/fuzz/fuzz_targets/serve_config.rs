//! The `serve --config-file` parser (verifier/src/commands/config.rs,
//! included by path) on hostile text, against a `serve`-like command with
//! every kind of flag the real one has (switches, repeatable flags, typed
//! single values, the flags that are not settings). Properties:
//! - no panic, whatever the text;
//! - a refused key (unknown, a table, a wrong type, the policy flag) is
//!   named with a line inside the text;
//! - flags the file stands for that clap refuses are located on a line
//!   inside the text, when they are the file's;
//! - accepted settings printed as `--print-config` prints them parse back
//!   to the same effective settings (the printed file is a fixed point).
#![no_main]

use std::ffi::OsString;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, Command};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/commands/config.rs"]
mod config;

use config::{effective, parse, ConfigError};

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn serve() -> Command {
    let mut serve = Command::new("serve")
        .arg(
            Arg::new("listen")
                .long("listen")
                .value_parser(value_parser!(std::net::SocketAddr)),
        )
        .arg(
            Arg::new("data_dir")
                .long("data-dir")
                .value_parser(value_parser!(std::path::PathBuf)),
        )
        .arg(
            Arg::new("rate_limit")
                .long("rate-limit")
                .value_parser(value_parser!(f64))
                .default_value("50"),
        )
        .arg(
            Arg::new("max_connections")
                .long("max-connections")
                .value_parser(value_parser!(usize))
                .default_value("1024"),
        )
        .arg(
            Arg::new("challenge_ttl")
                .long("challenge-ttl")
                .value_parser(duration)
                .default_value("60s"),
        )
        .arg(Arg::new("public_endpoint").long("public-endpoint"))
        .arg(
            Arg::new("trust_root")
                .long("trust-root")
                .action(ArgAction::Append)
                .value_parser(value_parser!(std::path::PathBuf)),
        )
        .arg(
            Arg::new("witness")
                .long("witness")
                .action(ArgAction::Append),
        )
        .arg(
            Arg::new("witness_threshold")
                .long("witness-threshold")
                .value_parser(value_parser!(u8)),
        )
        .arg(
            Arg::new("dev_tls")
                .long("dev-tls")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("nsm")
                .long("nsm")
                .value_parser(["real", "simulated"]),
        )
        .arg(Arg::new("config_file").long("config-file"))
        .arg(
            Arg::new("print_config")
                .long("print-config")
                .action(ArgAction::SetTrue),
        )
        .arg(Arg::new("config").long("config"));
    serve.build();
    serve
}

/// The lines of `text` (a line number past the last newline is the last).
fn lines(text: &str) -> usize {
    text.matches('\n').count() + 1
}

fn check_line(line: usize, text: &str) {
    assert!(
        line >= 1 && line <= lines(text),
        "line {line} of {}",
        lines(text)
    );
}

/// Parses `text` and applies it to an empty command line; the effective
/// settings printed, or `None` when refused.
fn apply(serve: &Command, text: &str) -> Option<String> {
    let path = Path::new("serve.toml");
    let settings = match parse(path, text, serve) {
        Ok(s) => s,
        Err(
            ConfigError::UnknownKey { line, .. }
            | ConfigError::Table { line, .. }
            | ConfigError::BadValue { line, .. }
            | ConfigError::PolicyFlag { line, .. }
            | ConfigError::Invalid { line, .. },
        ) => {
            check_line(line, text);
            return None;
        }
        Err(ConfigError::Syntax { .. }) => return None,
        Err(e) => panic!("parse does no I/O: {e}"),
    };
    let argv = || vec![OsString::from("serve")];
    let given = serve.clone().try_get_matches_from(argv()).unwrap();
    let mut merged = argv();
    merged.extend(settings.args_not_given(serve, &given));
    match serve.clone().try_get_matches_from(&merged) {
        Ok(matches) => Some(effective(serve, &matches, None)),
        Err(e) => {
            if let Some(located) = settings.locate(&e) {
                let ConfigError::Invalid { line, .. } = located else {
                    panic!("locate gives Invalid: {located}");
                };
                check_line(line, text);
            }
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Built once: the same command for every input.
    static SERVE: OnceLock<Command> = OnceLock::new();
    let serve = SERVE.get_or_init(serve);
    let Some(printed) = apply(serve, text) else {
        return;
    };
    let again = apply(serve, &printed)
        .unwrap_or_else(|| panic!("the printed settings are refused:\n{printed}"));
    assert_eq!(again, printed, "not a fixed point");
});
