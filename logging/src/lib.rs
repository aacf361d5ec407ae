//! Where hermetic's binaries send their `tracing` events: stderr, one line per event, as
//! `text` (`hermetic-verifier: level=info event=listening public=... admin=...`,
//! the greppable `key=value` lines scripts and tests read) or `json` (one
//! object per line: `time`, `level`, `target`, then the event's fields and
//! those of its spans, such as a request's `request_id`). Filtering is
//! `RUST_LOG`-style (tracing-subscriber's `EnvFilter`), default `info`.
//!
//! The library emits through the `tracing` facade only; a binary installs
//! this sink once ([`init`]). Events carry names, reasons, sizes and
//! digests, never a secret's value or key material (tests check the lines).

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// An event's or span's fields, in the order given.
#[derive(Debug, Default, Clone)]
struct Fields(Vec<(&'static str, String)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%value` fields arrive here too, formatted with Display.
        self.0.push((field.name(), format!("{value:?}")));
    }
}

/// The sink: formats each enabled event as one line on stderr.
pub struct Lines {
    program: &'static str,
    format: LogFormat,
}

impl Lines {
    pub fn new(program: &'static str, format: LogFormat) -> Self {
        Lines { program, format }
    }

    /// One line (with its newline) for an event's fields and level.
    fn line(&self, level: &tracing::Level, target: &str, fields: &[(&str, String)]) -> String {
        let level = level.as_str().to_ascii_lowercase();
        match self.format {
            LogFormat::Text => {
                let mut line = format!("{}: level={level}", self.program);
                for (key, value) in fields {
                    let _ = write!(line, " {key}={}", text_value(value));
                }
                line.push('\n');
                line
            }
            LogFormat::Json => {
                let mut object = serde_json::Map::new();
                object.insert(
                    "time".into(),
                    humantime::format_rfc3339_millis(std::time::SystemTime::now())
                        .to_string()
                        .into(),
                );
                object.insert("level".into(), level.into());
                object.insert("target".into(), target.into());
                for (key, value) in fields {
                    // The event's own fields first; a span's never hide them.
                    object
                        .entry(key.to_string())
                        .or_insert_with(|| value.clone().into());
                }
                let mut line = serde_json::Value::Object(object).to_string();
                line.push('\n');
                line
            }
        }
    }
}

/// A text value as it is, or quoted (with `\` and `"` escaped) when it
/// holds spaces, quotes, `=` or nothing, so lines split on whitespace.
fn text_value(value: &str) -> String {
    if !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
    {
        return value.to_owned();
    }
    let mut quoted = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{{{:x}}}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

impl<S> Layer<S> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(fields) = extensions.get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Then the fields of the spans it happened in, innermost first.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(span_fields) = span.extensions().get::<Fields>() {
                    fields.0.extend(span_fields.0.iter().cloned());
                }
            }
        }
        let metadata = event.metadata();
        let line = self.line(metadata.level(), metadata.target(), &fields.0);
        // One write per line, so concurrent events never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Installs the sink for this process: `RUST_LOG` filtering (default
/// `info`; an unparsable `RUST_LOG` falls back to `info`). A second call
/// does nothing.
pub fn init(program: &'static str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(Lines::new(program, format))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_split_on_whitespace() {
        assert_eq!(text_value("http://127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(text_value("two words"), "\"two words\"");
        assert_eq!(text_value(""), "\"\"");
        assert_eq!(text_value("a\"b\nc"), "\"a\\\"b\\nc\"");
        assert_eq!(text_value("k=v"), "\"k=v\"");
    }

    #[test]
    fn text_and_json_lines() {
        let fields = vec![
            ("event", "listening".to_string()),
            ("public", "http://127.0.0.1:1".to_string()),
            ("note", "not hermetic".to_string()),
            ("request_id", "ab".to_string()),
        ];
        let text = Lines::new("hermetic-verifier", LogFormat::Text).line(
            &tracing::Level::WARN,
            "t",
            &fields,
        );
        assert_eq!(
            text,
            "hermetic-verifier: level=warn event=listening public=http://127.0.0.1:1 note=\"not hermetic\" request_id=ab\n"
        );
        let json = Lines::new("hermetic-verifier", LogFormat::Json).line(
            &tracing::Level::INFO,
            "hermetic_verifier::service",
            &fields,
        );
        assert_eq!(json.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["event"], "listening");
        assert_eq!(v["note"], "not hermetic");
        assert_eq!(v["request_id"], "ab");
        assert_eq!(v["target"], "hermetic_verifier::service");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
