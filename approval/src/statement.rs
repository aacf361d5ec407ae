//! The change statement: the text that owners sign (the body of a C2SP signed note).
//!
//! ```text
//! hermetic-change/v1
//! deployment <DEPLOYMENT>
//! secret <NAME>
//! action <policy|value|owners|delete>
//! version <N>
//! content-sha256 <64 lower-case hex>
//! ```
//!
//! The parser is strict: these six lines in this order, one space after each key, no other
//! line, no trailing space, `\n` line ends (the last included, as a note's text must end in a
//! newline), decimal versions without leading zeros. A statement has exactly one text, so the
//! bytes that were signed are the bytes that are parsed: nothing can hide in variants.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest::{digest, SHA256};
use hermetic_policy::check_secret_name;

/// The first line of every statement; a new format gets a new header.
pub const HEADER: &str = "hermetic-change/v1";

/// Longest statement text: the header, a 128-byte deployment id and name, the longest
/// action, a 20-digit version, a 64-digit hash and the keys. A size check runs before parsing.
pub const MAX_STATEMENT_LEN: usize = 512;

/// What a change does to its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Replace the release policy (content: one `[secrets.NAME]` TOML stanza).
    Policy,
    /// Store a new value version (content: the value sealed to the verifier's intake key).
    Value,
    /// Replace the owner set (content: the canonical owner-set text).
    Owners,
    /// Delete the secret: every value version, its policy and its owners (content: empty).
    Delete,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [
        Action::Policy,
        Action::Value,
        Action::Owners,
        Action::Delete,
    ];

    /// The word used in the statement.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Policy => "policy",
            Action::Value => "value",
            Action::Owners => "owners",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Action::ALL.into_iter().find(|a| a.as_str() == s).ok_or(())
    }
}

/// A deployment id names one verifier deployment (its store). The same characters as a
/// secret name (`A-Z a-z 0-9 - _ .`, 1 to 128), so it can sit in a statement line, a URL
/// and a log field without quoting.
pub fn check_deployment_id(id: &str) -> Result<(), &'static str> {
    check_secret_name(id)
        .map_err(|_| "a deployment id is 1 to 128 characters of A-Z, a-z, 0-9, '-', '_' and '.'")
}

/// SHA-256 of a statement's content (the bytes submitted beside the note).
pub fn content_sha256(content: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, content).as_ref());
    out
}

/// A parsed statement. [`Statement::to_text`] and [`Statement::parse`] are inverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub deployment: String,
    pub secret: String,
    pub action: Action,
    /// Must be above the secret's current version when applied.
    pub version: u64,
    /// SHA-256 of the content.
    pub content_sha256: [u8; 32],
}

/// What is wrong with a statement's text: the line (1-based) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statement line {line}: {what}")]
pub struct MalformedStatement {
    pub line: usize,
    pub what: &'static str,
}

fn malformed(line: usize, what: &'static str) -> MalformedStatement {
    MalformedStatement { line, what }
}

/// Canonical decimal: digits only, no leading zero (except "0"), fits in u64.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

impl Statement {
    /// A statement whose content hash is computed from `content`.
    pub fn new(
        deployment: impl Into<String>,
        secret: impl Into<String>,
        action: Action,
        version: u64,
        content: &[u8],
    ) -> Statement {
        Statement {
            deployment: deployment.into(),
            secret: secret.into(),
            action,
            version,
            content_sha256: content_sha256(content),
        }
    }

    /// The statement text (the note body owners sign).
    pub fn to_text(&self) -> String {
        format!(
            "{HEADER}\ndeployment {}\nsecret {}\naction {}\nversion {}\ncontent-sha256 {}\n",
            self.deployment,
            self.secret,
            self.action,
            self.version,
            hex::encode(self.content_sha256)
        )
    }

    /// Parses a statement text strictly (see the module documentation). The deployment id
    /// and the secret name are validated; a text that [`Statement::to_text`] would not
    /// produce byte for byte is refused.
    pub fn parse(text: &str) -> Result<Statement, MalformedStatement> {
        if text.len() > MAX_STATEMENT_LEN {
            return Err(malformed(0, "the statement is too long"));
        }
        let Some(body) = text.strip_suffix('\n') else {
            return Err(malformed(0, "the statement must end with a newline"));
        };
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() != 6 {
            return Err(malformed(
                lines.len().min(7),
                "a statement is exactly six lines: header, deployment, secret, action, version, content-sha256",
            ));
        }
        if lines[0] != HEADER {
            return Err(malformed(1, "the first line must be hermetic-change/v1"));
        }
        let field = |i: usize, key: &str| -> Result<&str, MalformedStatement> {
            lines[i]
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(' '))
                .ok_or(malformed(i + 1, "unexpected key or missing value"))
        };
        let deployment = field(1, "deployment")?;
        check_deployment_id(deployment).map_err(|_| malformed(2, "invalid deployment id"))?;
        let secret = field(2, "secret")?;
        check_secret_name(secret).map_err(|_| malformed(3, "invalid secret name"))?;
        let action = field(3, "action")?
            .parse::<Action>()
            .map_err(|_| malformed(4, "the action is one of policy, value, owners, delete"))?;
        let version = parse_decimal(field(4, "version")?).ok_or(malformed(
            5,
            "the version is a decimal number without leading zeros",
        ))?;
        let hash = field(5, "content-sha256")?;
        let mut content_sha256 = [0u8; 32];
        if hash.len() != 64
            || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            || hex::decode_to_slice(hash, &mut content_sha256).is_err()
        {
            return Err(malformed(6, "content-sha256 is 64 lower-case hex digits"));
        }
        Ok(Statement {
            deployment: deployment.to_owned(),
            secret: secret.to_owned(),
            action,
            version,
            content_sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Statement {
        Statement::new(
            "hermetic-0123",
            "db-password",
            Action::Policy,
            7,
            b"content",
        )
    }

    #[test]
    fn text_round_trip_is_exact() {
        let s = sample();
        let text = s.to_text();
        assert_eq!(
            text,
            format!(
                "hermetic-change/v1\ndeployment hermetic-0123\nsecret db-password\naction policy\nversion 7\ncontent-sha256 {}\n",
                hex::encode(content_sha256(b"content"))
            )
        );
        assert_eq!(Statement::parse(&text).unwrap(), s);
        for action in Action::ALL {
            let s = Statement { action, ..sample() };
            assert_eq!(Statement::parse(&s.to_text()).unwrap(), s);
        }
        let max = Statement {
            deployment: "d".repeat(128),
            secret: "n".repeat(128),
            version: u64::MAX,
            action: Action::Delete,
            ..sample()
        };
        assert!(max.to_text().len() <= MAX_STATEMENT_LEN);
        assert_eq!(Statement::parse(&max.to_text()).unwrap(), max);
    }

    #[test]
    fn every_variant_of_the_text_is_refused() {
        let good = sample().to_text();
        let hash = hex::encode(content_sha256(b"content"));
        let bad: Vec<String> = vec![
            good.trim_end().to_owned(),    // no final newline
            format!("{good}\n"),           // extra blank line
            format!("{good}extra line\n"), // extra line
            good.replace("hermetic-change/v1", "hermetic-change/v2"),
            good.replace("deployment ", "deployment  "), // double space
            good.replace("secret db-password", "secret db password"),
            good.replace("secret db-password", "secret db/password"),
            good.replace("secret db-password", "secret "),
            good.replace("action policy", "action Policy"),
            good.replace("action policy", "action rotate"),
            good.replace("version 7", "version 07"),
            good.replace("version 7", "version +7"),
            good.replace("version 7", "version -1"),
            good.replace("version 7", "version 18446744073709551616"),
            good.replace(&hash, &hash.to_uppercase()),
            good.replace(&hash, &hash[..63]),
            good.replace('\n', "\r\n"),
            good.replace("version 7\n", "version 7 \n"), // trailing space
            {
                // lines swapped
                let l: Vec<&str> = good.lines().collect();
                format!(
                    "{}\n{}\n{}\n{}\n{}\n{}\n",
                    l[0], l[2], l[1], l[3], l[4], l[5]
                )
            },
            format!("{good}{}", "x".repeat(MAX_STATEMENT_LEN)),
            String::new(),
        ];
        for text in bad {
            assert!(Statement::parse(&text).is_err(), "accepted {text:?}");
        }
        assert!(check_deployment_id("hermetic-0a1b").is_ok());
        assert!(check_deployment_id("").is_err());
        assert!(check_deployment_id("a b").is_err());
    }
}
