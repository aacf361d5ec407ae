//! `serve --config-file FILE`: the service's settings in a TOML file.
//!
//! Every `serve` flag has a key of the same name (`--rate-limit 20` is
//! `rate-limit = 20`; repeatable flags take an array: `trust-root = ["a.pem"]`).
//! Flags given on the command line override the file; the file overrides
//! the defaults. The file is turned into the flags it stands for and parsed
//! by the same parser as the command line, so a key accepts exactly what
//! its flag accepts. An unknown key, a table or a wrongly typed value is
//! refused with the file's line. The policy file `--config` (refused since
//! policies change only by owner-approved statements) is not a key either:
//! a policy file given as the configuration file is refused by its tables.
//!
//! The file holds paths and public keys only; no serve flag takes key
//! material (TLS and CA keys are paths), so neither can the file.
//! `serve --print-config` prints the effective settings as such a file, with
//! any URL credentials (`scheme://user:pass@host`) redacted.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use toml::{Spanned, Value};

/// Flags that are not settings: they say where the settings are, or what to
/// do with them.
const NOT_SETTINGS: [&str; 4] = ["config-file", "print-config", "help", "config"];

/// Largest configuration file read (a settings file is a few KiB).
const MAX_FILE_LEN: u64 = 256 * 1024;

/// Why a configuration file was refused (exit status 2).
#[derive(Debug)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    TooLarge {
        path: PathBuf,
    },
    Syntax {
        path: PathBuf,
        message: String,
    },
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
    },
    PolicyFlag {
        path: PathBuf,
        line: usize,
    },
    Table {
        path: PathBuf,
        line: usize,
        key: String,
    },
    BadValue {
        path: PathBuf,
        line: usize,
        key: String,
        expected: &'static str,
    },
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => write!(f, "{}: {error}", path.display()),
            ConfigError::TooLarge { path } => write!(
                f,
                "{}: larger than {MAX_FILE_LEN} bytes; not a serve configuration",
                path.display()
            ),
            ConfigError::Syntax { path, message } => {
                write!(f, "{}: not valid TOML: {message}", path.display())
            }
            ConfigError::UnknownKey { path, line, key } => write!(
                f,
                "{}:{line}: unknown key `{key}` (serve has no --{key}; see `serve --help`)",
                path.display()
            ),
            ConfigError::PolicyFlag { path, line } => write!(
                f,
                "{}:{line}: `config` (a policy file loaded at start) is not accepted: policies change only by statements signed by each secret's owners",
                path.display()
            ),
            ConfigError::Table { path, line, key } => write!(
                f,
                "{}:{line}: `{key}` is a table; serve settings are top-level keys (a policy file is not a serve configuration: policies change only by statements signed by each secret's owners)",
                path.display()
            ),
            ConfigError::BadValue { path, line, key, expected } => {
                write!(f, "{}:{line}: `{key}` expects {expected}", path.display())
            }
            ConfigError::Invalid { path, line, key, message } => {
                write!(f, "{}:{line}: `{key}`: {message}", path.display())
            }
        }
    }
}

/// One key of the file, where it is, and the flag arguments it stands for.
struct Entry {
    line: usize,
    args: Vec<OsString>,
}

/// A parsed configuration file: each key's flag arguments, by key.
pub struct Settings {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(x) => Some(x.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Datetime(d) => Some(d.to_string()),
        Value::Array(_) | Value::Table(_) => None,
    }
}

/// Reads and checks `path` against `serve`'s flags (`serve` is the
/// subcommand's `Command`, its arguments built).
pub fn load(path: &Path, serve: &Command) -> Result<Settings, ConfigError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_LEN + 1).read_to_string(&mut text))
        .map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
    if text.len() as u64 > MAX_FILE_LEN {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
        });
    }
    parse(path, &text, serve)
}

/// Checks `text` (the file at `path`) against `serve`'s flags: pure, no I/O
/// (what [`load`] runs after reading the file, and what the fuzz target
/// `verifier/fuzz` runs on hostile text).
pub fn parse(path: &Path, text: &str, serve: &Command) -> Result<Settings, ConfigError> {
    let table: BTreeMap<Spanned<String>, Value> =
        toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
    let mut entries = BTreeMap::new();
    for (key, value) in table {
        let line = line_of(text, key.span().start);
        let key = key.into_inner();
        let bad = |expected| ConfigError::BadValue {
            path: path.to_owned(),
            line,
            key: key.clone(),
            expected,
        };
        if let Value::Table(_) = value {
            return Err(ConfigError::Table {
                path: path.to_owned(),
                line,
                key,
            });
        }
        if key == "config" {
            return Err(ConfigError::PolicyFlag {
                path: path.to_owned(),
                line,
            });
        }
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !NOT_SETTINGS.contains(&key.as_str()))
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.to_owned(),
                line,
                key: key.clone(),
            })?;
        let flag = format!("--{key}");
        let args: Vec<OsString> = match (arg.get_action(), &value) {
            (ArgAction::SetTrue, Value::Boolean(true)) => vec![flag.into()],
            (ArgAction::SetTrue, Value::Boolean(false)) => Vec::new(),
            (ArgAction::SetTrue, _) => return Err(bad("true or false")),
            (ArgAction::Append, Value::Array(items)) => {
                let mut args = Vec::new();
                for item in items {
                    let v = scalar(item).ok_or_else(|| bad("an array of strings or numbers"))?;
                    args.push(format!("{flag}={v}").into());
                }
                args
            }
            (_, Value::Array(_)) => return Err(bad("one value, not an array")),
            (_, v) => {
                let v = scalar(v).ok_or_else(|| bad("a string or a number"))?;
                vec![format!("{flag}={v}").into()]
            }
        };
        entries.insert(key, Entry { line, args });
    }
    Ok(Settings {
        path: path.to_owned(),
        entries,
    })
}

impl Settings {
    /// The flag arguments for every key whose flag was not given on the
    /// command line (`given`: the command line's matches for `serve`).
    pub fn args_not_given(&self, serve: &Command, given: &ArgMatches) -> Vec<OsString> {
        let mut out = Vec::new();
        for (key, entry) in &self.entries {
            let Some(arg) = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()))
            else {
                continue;
            };
            if given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
                continue;
            }
            out.extend(entry.args.iter().cloned());
        }
        out
    }

    /// Names the file's line for a parse error of the merged arguments,
    /// when the error is about a flag that came from the file.
    pub fn locate(&self, error: &clap::Error) -> Option<ConfigError> {
        let clap::error::ContextValue::String(arg) =
            error.get(clap::error::ContextKind::InvalidArg)?
        else {
            return None;
        };
        let key = arg.strip_prefix("--")?.split([' ', '=']).next()?;
        let entry = self.entries.get(key)?;
        let message = error
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        Some(ConfigError::Invalid {
            path: self.path.clone(),
            line: entry.line,
            key: key.to_string(),
            message,
        })
    }
}

/// Removes credentials from a URL (`scheme://user:pass@host/...`); other
/// values are returned as they are.
fn redact(value: &str) -> String {
    if let Some((scheme, rest)) = value.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://REDACTED@{}", &rest[at + 1..]);
        }
    }
    value.to_string()
}

fn typed(raw: &str) -> Value {
    match raw.parse::<i64>() {
        Ok(i) if i.to_string() == raw => Value::Integer(i),
        _ => Value::String(redact(raw)),
    }
}

/// The effective settings of a parsed `serve` command line, as a
/// configuration file (what `serve --print-config` prints).
pub fn effective(serve: &Command, matches: &ArgMatches, file: Option<&Path>) -> String {
    let mut out = String::from("# hermetic-verifier serve: effective settings (flags, then ");
    match file {
        Some(path) => out.push_str(&format!("{}, then defaults)\n", path.display())),
        None => out.push_str("defaults)\n"),
    }
    let mut args: Vec<_> = serve
        .get_arguments()
        .filter(|a| a.get_long().is_some_and(|l| !NOT_SETTINGS.contains(&l)))
        .collect();
    args.sort_by_key(|a| a.get_long());
    for arg in args {
        let key = arg.get_long().unwrap_or_default();
        let raw: Vec<String> = matches
            .get_raw(arg.get_id().as_str())
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = match arg.get_action() {
            ArgAction::SetTrue => Some(Value::Boolean(matches.get_flag(arg.get_id().as_str()))),
            ArgAction::Append => Some(Value::Array(raw.iter().map(|v| typed(v)).collect())),
            _ => raw.first().map(|v| typed(v)),
        };
        match value {
            Some(v) => out.push_str(&format!("{key} = {v}\n")),
            None => out.push_str(&format!("# {key} = (not set)\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_credentials_only() {
        assert_eq!(
            redact("http://user:pw@127.0.0.1:9000/x=hermetic-witness+1+AA"),
            "http://REDACTED@127.0.0.1:9000/x=hermetic-witness+1+AA"
        );
        assert_eq!(redact("/etc/tls/key.pem"), "/etc/tls/key.pem");
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a = 1\nb = 2\n", 6), 2);
        assert_eq!(line_of("a = 1", 0), 1);
    }
}
