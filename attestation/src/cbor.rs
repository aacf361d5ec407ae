//! Strict CBOR decoding on top of ciborium: one item, nothing after it,
//! no duplicate map keys.

use ciborium::value::Value;

use crate::Error;

/// Nesting deeper than this is refused; a Nitro document nests 4 levels.
const RECURSION_LIMIT: usize = 16;

/// Decodes exactly one CBOR item from `bytes`; anything after it is an error.
pub(crate) fn decode_one(bytes: &[u8], context: &'static str) -> Result<Value, Error> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, RECURSION_LIMIT)
        .map_err(|e| Error::MalformedCbor {
        context,
        detail: describe(&e),
    })?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes {
            context,
            count: rest.len(),
        });
    }
    Ok(value)
}

fn describe<T: std::fmt::Debug>(e: &ciborium::de::Error<T>) -> String {
    match e {
        ciborium::de::Error::Io(_) => "unexpected end of input".into(),
        ciborium::de::Error::Syntax(off) => format!("syntax error at offset {off}"),
        ciborium::de::Error::Semantic(_, msg) => msg.clone(),
        ciborium::de::Error::RecursionLimitExceeded => "nesting too deep".into(),
    }
}

/// Encodes a value with ciborium (definite lengths, shortest integer forms).
pub(crate) fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every Value is encodable.
    ciborium::ser::into_writer(value, &mut out).expect("CBOR encoding into a Vec is infallible");
    out
}

/// Refuses a map with two equal keys (RFC 8949 §5.6: such a map is not
/// well-formed for our purposes — the signer and we could read different values).
pub(crate) fn check_unique_keys(
    map: &[(Value, Value)],
    context: &'static str,
) -> Result<(), Error> {
    for (i, (k, _)) in map.iter().enumerate() {
        if map[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err(Error::DuplicateKey(key_name(k), context));
        }
    }
    Ok(())
}

pub(crate) fn key_name(k: &Value) -> String {
    match k {
        Value::Text(t) => t.clone(),
        Value::Integer(i) => i128::from(*i).to_string(),
        other => format!("{other:?}"),
    }
}
