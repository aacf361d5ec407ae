//! Auditors receive documents as raw CBOR, base64 (e.g. from a JSON API or
//! a log) or hex (e.g. pasted from a debugger). The encoding is detected.

use base64::Engine;

/// The most an input may hold, whatever its encoding: base64 of the
/// largest accepted document plus generous whitespace.
pub const MAX_INPUT_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Cbor,
    Base64,
    Hex,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Cbor => "cbor",
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("input is empty")]
    Empty,
    #[error("input is larger than {MAX_INPUT_LEN} bytes")]
    TooLarge,
}

/// Returns the document bytes and how they were encoded.
///
/// Raw CBOR is recognised by its first byte: a COSE_Sign1 starts with an
/// array of four (0x84) or tag 18 (0xd2). Otherwise text that is all hex
/// digits is hex, and text that decodes as base64 (standard or URL-safe,
/// padded or not) is base64. Anything else is passed on as CBOR, for the
/// verifier to refuse with a precise reason.
pub fn decode_input(bytes: &[u8]) -> Result<(Vec<u8>, Encoding), InputError> {
    if bytes.len() > MAX_INPUT_LEN {
        return Err(InputError::TooLarge);
    }
    if matches!(bytes.first(), Some(0x84 | 0xd2)) {
        return Ok((bytes.to_vec(), Encoding::Cbor));
    }
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return Err(InputError::Empty);
    }
    if text.len().is_multiple_of(2) && text.iter().all(u8::is_ascii_hexdigit) {
        if let Ok(raw) = hex::decode(&text) {
            return Ok((raw, Encoding::Hex));
        }
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(raw) = engine.decode(&text) {
            return Ok((raw, Encoding::Base64));
        }
    }
    Ok((bytes.to_vec(), Encoding::Cbor))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &[u8] = &[0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0];

    #[test]
    fn detects_each_encoding() {
        assert_eq!(decode_input(DOC).unwrap(), (DOC.to_vec(), Encoding::Cbor));
        let hex = format!("{}\n", hex::encode(DOC));
        assert_eq!(
            decode_input(hex.as_bytes()).unwrap(),
            (DOC.to_vec(), Encoding::Hex)
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(DOC);
        assert_eq!(
            decode_input(b64.as_bytes()).unwrap(),
            (DOC.to_vec(), Encoding::Base64)
        );
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 30]);
        assert_eq!(
            decode_input(url.as_bytes()).unwrap(),
            (vec![0xfb; 30], Encoding::Base64)
        );
    }

    #[test]
    fn refuses_empty_and_oversize_input() {
        assert_eq!(decode_input(b" \n").unwrap_err(), InputError::Empty);
        assert_eq!(
            decode_input(&vec![b'A'; MAX_INPUT_LEN + 1]).unwrap_err(),
            InputError::TooLarge
        );
    }

    #[test]
    fn passes_garbage_on_as_cbor() {
        assert_eq!(decode_input(b"not a document!").unwrap().1, Encoding::Cbor);
    }
}
