//! The statement file: what `change propose` writes, `change sign` edits and `change submit`
//! sends (the same JSON is the body of `POST /admin/v1/changes`).
//!
//! ```json
//! {"statement": "<signed note text>",
//!  "content": "<policy TOML or owner-set text>" | null,
//!  "sealed_value": {"enc": "<base64>", "ciphertext": "<base64>"} | null}
//! ```
//!
//! A value only ever appears sealed to the verifier's intake key: there is no field for a
//! plaintext value.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::check::Refusal;
use crate::statement::Action;

/// Largest statement file accepted (a policy with many measurement sets fits easily).
pub const MAX_FILE_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementFile {
    /// The statement text, then (once signed) a blank line and signature lines.
    pub statement: String,
    /// For `policy` and `owners`: the content text.
    pub content: Option<String>,
    /// For `value`: the value sealed to the verifier's intake key.
    pub sealed_value: Option<SealedValueB64>,
}

/// A sealed value in standard padded base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedValueB64 {
    pub enc: String,
    pub ciphertext: String,
}

impl SealedValueB64 {
    pub fn new(enc: &[u8], ciphertext: &[u8]) -> Self {
        SealedValueB64 {
            enc: STANDARD.encode(enc),
            ciphertext: STANDARD.encode(ciphertext),
        }
    }

    /// `enc || ciphertext`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Refusal> {
        let bad = |_| Refusal::MalformedFile("sealed_value is not standard base64");
        let mut out = STANDARD.decode(&self.enc).map_err(bad)?;
        out.extend(STANDARD.decode(&self.ciphertext).map_err(bad)?);
        Ok(out)
    }
}

impl StatementFile {
    /// Parses the JSON (bounded by [`MAX_FILE_LEN`]).
    pub fn from_json(bytes: &[u8]) -> Result<StatementFile, Refusal> {
        if bytes.len() > MAX_FILE_LEN {
            return Err(Refusal::MalformedFile("the statement file is too large"));
        }
        serde_json::from_slice(bytes).map_err(|_| {
            Refusal::MalformedFile("not a statement file (JSON: statement, content, sealed_value)")
        })
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("strings serialize");
        text.push('\n');
        text
    }

    /// The content bytes the statement's `content-sha256` covers, for `action`: the text for
    /// `policy` and `owners`, `enc || ciphertext` for `value`, nothing for `delete`. Content
    /// in the wrong field for the action is refused.
    pub fn content_bytes(&self, action: Action) -> Result<Vec<u8>, Refusal> {
        match (action, &self.content, &self.sealed_value) {
            (Action::Policy | Action::Owners, Some(text), None) => Ok(text.as_bytes().to_vec()),
            (Action::Value, None, Some(sealed)) => sealed.to_bytes(),
            (Action::Delete, None, None) => Ok(Vec::new()),
            (Action::Policy | Action::Owners, _, _) => Err(Refusal::MalformedFile(
                "a policy or owners change carries its text in `content` (and no sealed_value)",
            )),
            (Action::Value, _, _) => Err(Refusal::MalformedFile(
                "a value change carries `sealed_value` (and no content)",
            )),
            (Action::Delete, _, _) => Err(Refusal::MalformedFile(
                "a delete carries neither content nor sealed_value",
            )),
        }
    }
}
