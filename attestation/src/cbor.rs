//! Strict CBOR (RFC 8949) decoding into items that borrow from the input:
//! one item, nothing after it, bounded nesting; plus encoding (ciborium),
//! which only the simulator and `encode` methods use.
//!
//! Decoding is written here rather than through ciborium's `Value` because
//! it is on every verification's path, warm ones included, where a document
//! costs one ECDSA verification: building a `Value` tree copied every byte
//! string and allocated every item twice (COSE_Sign1, then the payload).
//! These items borrow byte and text strings from the input instead.
//!
//! It reads what ciborium's `Value` read, and refuses what it refused: any
//! well-formed item (RFC 8949 §3) of major types 0–7; definite or
//! indefinite lengths for strings, arrays and maps (the chunks of an
//! indefinite string are definite strings of its own type, §3.2.3);
//! integers in any width; text that is valid UTF-8 (§3.1, major type 3);
//! half, single and double floats; `false`, `true`, `null`, and
//! `undefined` read as `null`; tags 2 and 3 over at most 16 bytes read as
//! the integer they denote (§3.4.3); other simple values, reserved
//! additional information (28–30), a misplaced break, indefinite integers
//! or tags, and nesting deeper than [`RECURSION_LIMIT`] are refused. A map's
//! keys are compared by value when the caller checks for duplicates.

use std::borrow::Cow;

use ciborium::value::Value;

use crate::Error;

/// Nesting deeper than this is refused; a Nitro document nests 4 levels.
const RECURSION_LIMIT: usize = 16;

/// A decoded data item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item<'a> {
    Unsigned(u64),
    /// The integer `-1 - n` (major type 1).
    Negative(u64),
    Bytes(Cow<'a, [u8]>),
    Text(Cow<'a, str>),
    Array(Vec<Item<'a>>),
    Map(Vec<(Item<'a>, Item<'a>)>),
    Tag(u64, Box<Item<'a>>),
    Bool(bool),
    /// `null`, or `undefined`.
    Null,
    Float(f64),
}

impl Item<'_> {
    /// The integer value, for integers.
    pub fn as_i128(&self) -> Option<i128> {
        match self {
            Item::Unsigned(n) => Some(i128::from(*n)),
            Item::Negative(n) => Some(-1 - i128::from(*n)),
            _ => None,
        }
    }
}

/// Decodes exactly one CBOR item from `bytes`; anything after it is an error.
pub(crate) fn decode_one<'a>(bytes: &'a [u8], context: &'static str) -> Result<Item<'a>, Error> {
    let mut reader = Reader {
        input: bytes,
        pos: 0,
    };
    let item = reader
        .item(RECURSION_LIMIT)
        .map_err(|fault| Error::MalformedCbor {
            context,
            detail: fault.describe(),
        })?;
    if reader.pos != bytes.len() {
        return Err(Error::TrailingBytes {
            context,
            count: bytes.len() - reader.pos,
        });
    }
    Ok(item)
}

/// Why the input is not one well-formed item.
enum Fault {
    End,
    /// Not well-formed at this offset.
    Syntax(usize),
    Utf8(usize),
    Depth,
    /// A bignum beyond 64 bits, at this offset.
    TooLarge(usize),
}

impl Fault {
    fn describe(&self) -> String {
        match self {
            Fault::End => "unexpected end of input".into(),
            Fault::Syntax(at) => format!("syntax error at offset {at}"),
            Fault::Utf8(at) => format!("invalid UTF-8 in the text string at offset {at}"),
            Fault::Depth => "nesting too deep".into(),
            Fault::TooLarge(at) => format!("integer too large at offset {at}"),
        }
    }
}

/// An item's head: major type, additional information and argument
/// (`None` for an indefinite length), RFC 8949 §3.
struct Head {
    major: u8,
    info: u8,
    arg: Option<u64>,
    at: usize,
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: u64) -> Result<&'a [u8], Fault> {
        let rest = self.input.len() - self.pos;
        let len = usize::try_from(len).map_err(|_| Fault::End)?;
        if len > rest {
            return Err(Fault::End);
        }
        let out = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    fn be(&mut self, len: u64) -> Result<u64, Fault> {
        Ok(self
            .take(len)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn head(&mut self) -> Result<Head, Fault> {
        let at = self.pos;
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(self.be(1)?),
            25 => Some(self.be(2)?),
            26 => Some(self.be(4)?),
            27 => Some(self.be(8)?),
            28..=30 => return Err(Fault::Syntax(at)),
            _ => None,
        };
        Ok(Head {
            major,
            info,
            arg,
            at,
        })
    }

    /// At most as many items as bytes are left: a count is checked before
    /// anything is reserved for it.
    fn count(&self, n: u64, per_item: u64) -> Result<usize, Fault> {
        let rest = (self.input.len() - self.pos) as u64;
        if n.checked_mul(per_item).is_none_or(|need| need > rest) {
            return Err(Fault::End);
        }
        Ok(n as usize)
    }

    fn at_break(&mut self) -> Result<bool, Fault> {
        match self.input.get(self.pos) {
            None => Err(Fault::End),
            Some(0xff) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    /// The chunks of an indefinite-length string of `major` type, joined.
    fn chunks(&mut self, major: u8) -> Result<Vec<u8>, Fault> {
        let mut out = Vec::new();
        while !self.at_break()? {
            let head = self.head()?;
            let (true, Some(len)) = (head.major == major, head.arg) else {
                return Err(Fault::Syntax(head.at));
            };
            let chunk = self.take(len)?;
            if major == 3 && std::str::from_utf8(chunk).is_err() {
                return Err(Fault::Utf8(head.at));
            }
            out.extend_from_slice(chunk);
        }
        Ok(out)
    }

    fn item(&mut self, depth: usize) -> Result<Item<'a>, Fault> {
        let head = self.head()?;
        let nest = || depth.checked_sub(1).ok_or(Fault::Depth);
        Ok(match (head.major, head.arg) {
            (0, Some(n)) => Item::Unsigned(n),
            (1, Some(n)) => Item::Negative(n),
            (2, Some(len)) => Item::Bytes(Cow::Borrowed(self.take(len)?)),
            (2, None) => Item::Bytes(Cow::Owned(self.chunks(2)?)),
            (3, Some(len)) => {
                let bytes = self.take(len)?;
                let text = std::str::from_utf8(bytes).map_err(|_| Fault::Utf8(head.at))?;
                Item::Text(Cow::Borrowed(text))
            }
            (3, None) => {
                let joined =
                    String::from_utf8(self.chunks(3)?).map_err(|_| Fault::Utf8(head.at))?;
                Item::Text(Cow::Owned(joined))
            }
            (4, Some(n)) => {
                let depth = nest()?;
                let n = self.count(n, 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth)?);
                }
                Item::Array(items)
            }
            (4, None) => {
                let depth = nest()?;
                let mut items = Vec::new();
                while !self.at_break()? {
                    items.push(self.item(depth)?);
                }
                Item::Array(items)
            }
            (5, Some(n)) => {
                let depth = nest()?;
                let n = self.count(n, 2)?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push((self.item(depth)?, self.item(depth)?));
                }
                Item::Map(pairs)
            }
            (5, None) => {
                let depth = nest()?;
                let mut pairs = Vec::new();
                while !self.at_break()? {
                    pairs.push((self.item(depth)?, self.item(depth)?));
                }
                Item::Map(pairs)
            }
            (6, Some(tag)) => {
                let depth = nest()?;
                let inner = self.item(depth)?;
                bignum(tag, inner, head.at)?
            }
            (7, Some(arg)) => match head.info {
                20 => Item::Bool(false),
                21 => Item::Bool(true),
                22 | 23 => Item::Null,
                25 => Item::Float(f16_to_f64(arg as u16)),
                26 => Item::Float(f64::from(f32::from_bits(arg as u32))),
                27 => Item::Float(f64::from_bits(arg)),
                // Unassigned simple values (0–19, and any in the 1-byte form).
                _ => return Err(Fault::Syntax(head.at)),
            },
            // Indefinite integers or tags, and a break outside a container.
            _ => return Err(Fault::Syntax(head.at)),
        })
    }
}

/// Tags 2 and 3 over a byte string of at most 16 bytes are the unsigned or
/// negative bignum they denote (RFC 8949 §3.4.3), as ciborium read them;
/// other tags stay tags.
fn bignum(tag: u64, inner: Item<'_>, at: usize) -> Result<Item<'_>, Fault> {
    match (tag, inner) {
        // Definite-length only (borrowed): ciborium left indefinite ones tags.
        (2 | 3, Item::Bytes(Cow::Borrowed(bytes))) if bytes.len() <= 16 => {
            let value = bytes
                .iter()
                .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
            let n = u64::try_from(value).map_err(|_| Fault::TooLarge(at))?;
            Ok(if tag == 2 {
                Item::Unsigned(n)
            } else {
                Item::Negative(n)
            })
        }
        (tag, inner) => Ok(Item::Tag(tag, Box::new(inner))),
    }
}

/// IEEE 754 binary16 to f64 (RFC 8949 Appendix D).
fn f16_to_f64(half: u16) -> f64 {
    let exp = (half >> 10) & 0x1f;
    let mant = f64::from(half & 0x3ff);
    let value = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (mant + 1024.0) * 2f64.powi(i32::from(exp) - 25),
    };
    if half & 0x8000 != 0 {
        -value
    } else {
        value
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
pub(crate) fn check_unique_keys(map: &[(Item, Item)], context: &'static str) -> Result<(), Error> {
    for (i, (k, _)) in map.iter().enumerate() {
        if map[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err(Error::DuplicateKey(key_name(k), context));
        }
    }
    Ok(())
}

pub(crate) fn key_name(k: &Item) -> String {
    match k {
        Item::Text(t) => t.to_string(),
        other => match other.as_i128() {
            Some(i) => i.to_string(),
            None => format!("{other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Item<'_>, Error> {
        decode_one(bytes, "test")
    }

    fn detail(bytes: &[u8]) -> String {
        match decode(bytes) {
            Err(Error::MalformedCbor { detail, .. }) => detail,
            other => panic!("{bytes:02x?}: {other:?}"),
        }
    }

    /// Every item kind reads as ciborium's `Value` reads it.
    #[test]
    fn agrees_with_ciborium_on_well_formed_items() {
        let cases: Vec<Value> = vec![
            Value::Integer(0.into()),
            Value::Integer(23.into()),
            Value::Integer(24.into()),
            Value::Integer(u64::MAX.into()),
            Value::Integer((-1).into()),
            Value::Integer(i64::MIN.into()),
            Value::Bytes(vec![]),
            Value::Bytes(vec![7; 300]),
            Value::Text("ünïcode".into()),
            Value::Float(1.5),
            Value::Float(f64::from(f32::MAX) * 4.0),
            Value::Bool(true),
            Value::Null,
            Value::Array(vec![Value::Null, Value::Array(vec![])]),
            Value::Map(vec![(Value::Text("k".into()), Value::Integer(1.into()))]),
            Value::Tag(18, Box::new(Value::Array(vec![]))),
        ];
        for value in cases {
            let bytes = encode(&value);
            let item = decode(&bytes).unwrap();
            assert_eq!(encode(&to_value(&item)), bytes, "{value:?}");
        }
    }

    fn to_value(item: &Item) -> Value {
        match item {
            Item::Unsigned(n) => Value::Integer((*n).into()),
            Item::Negative(_) => {
                Value::Integer(ciborium::value::Integer::try_from(item.as_i128().unwrap()).unwrap())
            }
            Item::Bytes(b) => Value::Bytes(b.to_vec()),
            Item::Text(t) => Value::Text(t.to_string()),
            Item::Array(a) => Value::Array(a.iter().map(to_value).collect()),
            Item::Map(m) => Value::Map(m.iter().map(|(k, v)| (to_value(k), to_value(v))).collect()),
            Item::Tag(t, i) => Value::Tag(*t, Box::new(to_value(i))),
            Item::Bool(b) => Value::Bool(*b),
            Item::Null => Value::Null,
            Item::Float(f) => Value::Float(*f),
        }
    }

    /// Mutated documents: whatever this reader accepts, ciborium's `Value`
    /// accepted too, and read the same way. (Where ciborium was looser it
    /// may refuse: simple values 20–23 in the two-byte form, which RFC 8949
    /// §3.3 calls not well-formed, and bignums beyond 64 bits.)
    #[test]
    fn never_accepts_what_ciborium_refused_nor_reads_it_differently() {
        let inner = encode(&Value::Map(vec![
            (
                Value::Text("module_id".into()),
                Value::Text("i-0-enc0".into()),
            ),
            (
                Value::Text("timestamp".into()),
                Value::Integer(1_790_000_000_000u64.into()),
            ),
            (
                Value::Text("pcrs".into()),
                Value::Map(
                    (0..3)
                        .map(|i| (Value::Integer(i.into()), Value::Bytes(vec![i as u8; 48])))
                        .collect(),
                ),
            ),
            (
                Value::Text("cabundle".into()),
                Value::Array(vec![Value::Bytes(vec![0x30; 40]); 3]),
            ),
            (Value::Text("nonce".into()), Value::Null),
            (Value::Text("f".into()), Value::Float(0.5)),
            (Value::Integer((-7).into()), Value::Bool(true)),
        ]));
        let doc = encode(&Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(vec![0xa1, 0x01, 0x38, 0x22]),
                Value::Map(vec![]),
                Value::Bytes(inner.clone()),
                Value::Bytes(vec![9; 96]),
            ])),
        ));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut both, mut cases) = (0, 0);
        for base in [&doc, &inner] {
            for _ in 0..20_000 {
                let mut bytes = base.clone();
                for _ in 0..1 + next() % 3 {
                    let i = (next() as usize) % bytes.len();
                    match next() % 4 {
                        0 => bytes[i] ^= 1 << (next() % 8),
                        1 => bytes[i] = next() as u8,
                        2 => bytes.truncate(i.max(1)),
                        _ => bytes.insert(i, next() as u8),
                    }
                }
                cases += 1;
                let theirs: Result<Value, _> = ciborium::de::from_reader_with_recursion_limit(
                    bytes.as_slice(),
                    RECURSION_LIMIT,
                );
                let mine = decode_one(&bytes, "m");
                if let Ok(item) = &mine {
                    let theirs =
                        theirs.unwrap_or_else(|e| panic!("{bytes:02x?}: only we accept ({e:?})"));
                    assert_eq!(
                        format!("{:?}", to_value(item)),
                        format!("{theirs:?}"),
                        "{bytes:02x?}"
                    );
                    both += 1;
                }
            }
        }
        // The mutations reach both outcomes often.
        assert!(
            both > cases / 10 && both < cases * 9 / 10,
            "{both} of {cases}"
        );
    }

    #[test]
    fn strings_borrow_from_the_input() {
        let bytes = encode(&Value::Array(vec![
            Value::Bytes(vec![1, 2, 3]),
            Value::Text("abc".into()),
        ]));
        let Item::Array(items) = decode(&bytes).unwrap() else {
            panic!("not an array")
        };
        assert!(matches!(&items[0], Item::Bytes(Cow::Borrowed(b)) if *b == [1, 2, 3]));
        assert!(matches!(&items[1], Item::Text(Cow::Borrowed("abc"))));
    }

    #[test]
    fn indefinite_lengths_and_their_chunks() {
        // (_ h'0102', h'03'), (_ "a", "b"), [_ 1, 2], {_ "k": 1}
        assert_eq!(
            decode(&[0x5f, 0x42, 1, 2, 0x41, 3, 0xff]).unwrap(),
            Item::Bytes(Cow::Owned(vec![1, 2, 3]))
        );
        assert_eq!(
            decode(&[0x7f, 0x61, b'a', 0x61, b'b', 0xff]).unwrap(),
            Item::Text(Cow::Owned("ab".into()))
        );
        assert_eq!(
            decode(&[0x9f, 1, 2, 0xff]).unwrap(),
            Item::Array(vec![Item::Unsigned(1), Item::Unsigned(2)])
        );
        assert_eq!(
            decode(&[0xbf, 0x61, b'k', 1, 0xff]).unwrap(),
            Item::Map(vec![(Item::Text("k".into()), Item::Unsigned(1))])
        );
        // A chunk of another type, or an indefinite chunk, is refused.
        assert_eq!(
            detail(&[0x5f, 0x61, b'a', 0xff]),
            "syntax error at offset 1"
        );
        assert_eq!(
            detail(&[0x5f, 0x5f, 0xff, 0xff]),
            "syntax error at offset 1"
        );
        // A break where a map value belongs.
        assert_eq!(
            detail(&[0xbf, 0x61, b'k', 0xff]),
            "syntax error at offset 3"
        );
    }

    #[test]
    fn non_shortest_forms_and_bignums_are_the_same_integers() {
        assert_eq!(decode(&[0x18, 0x05]).unwrap(), Item::Unsigned(5));
        assert_eq!(
            decode(&[0x1b, 0, 0, 0, 0, 0, 0, 0, 5]).unwrap(),
            Item::Unsigned(5)
        );
        assert_eq!(decode(&[0xc2, 0x41, 0x05]).unwrap(), Item::Unsigned(5));
        assert_eq!(decode(&[0xc3, 0x41, 0x05]).unwrap(), Item::Negative(5));
        // So a map cannot hide a duplicate key behind another encoding.
        let map = [0xa2, 0x01, 0x00, 0xc2, 0x41, 0x01, 0x00];
        let Item::Map(pairs) = decode(&map).unwrap() else {
            panic!()
        };
        assert_eq!(
            check_unique_keys(&pairs, "m"),
            Err(Error::DuplicateKey("1".into(), "m"))
        );
        // Beyond 64 bits: refused.
        let mut big = vec![0xc2, 0x49, 1];
        big.extend_from_slice(&[0; 8]);
        assert_eq!(detail(&big), "integer too large at offset 0");
        // An indefinite byte string under tag 2 stays a tag, as it did.
        assert_eq!(
            decode(&[0xc2, 0x5f, 0x41, 0x05, 0xff]).unwrap(),
            Item::Tag(2, Box::new(Item::Bytes(Cow::Owned(vec![5]))))
        );
        // Other tags stay tags.
        assert_eq!(
            decode(&[0xc1, 0x05]).unwrap(),
            Item::Tag(1, Box::new(Item::Unsigned(5)))
        );
    }

    #[test]
    fn floats_of_every_width() {
        assert_eq!(decode(&[0xf9, 0x3c, 0x00]).unwrap(), Item::Float(1.0));
        assert_eq!(decode(&[0xf9, 0xc4, 0x00]).unwrap(), Item::Float(-4.0));
        assert_eq!(
            decode(&[0xf9, 0x00, 0x01]).unwrap(),
            Item::Float(2f64.powi(-24))
        );
        assert_eq!(
            decode(&[0xf9, 0x7c, 0x00]).unwrap(),
            Item::Float(f64::INFINITY)
        );
        assert!(matches!(decode(&[0xf9, 0x7e, 0x00]).unwrap(), Item::Float(f) if f.is_nan()));
        assert_eq!(
            decode(&[0xfa, 0x47, 0xc3, 0x50, 0x00]).unwrap(),
            Item::Float(100000.0)
        );
    }

    #[test]
    fn malformed_input_is_refused_with_where() {
        assert_eq!(detail(&[]), "unexpected end of input");
        assert_eq!(detail(&[0x19, 0x01]), "unexpected end of input");
        assert_eq!(detail(&[0x45, 1, 2]), "unexpected end of input");
        // An array claiming more items than there are bytes left.
        assert_eq!(
            detail(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            "unexpected end of input"
        );
        assert_eq!(detail(&[0x1c]), "syntax error at offset 0");
        assert_eq!(detail(&[0x1f]), "syntax error at offset 0");
        assert_eq!(detail(&[0xdf, 0x00]), "syntax error at offset 0");
        assert_eq!(detail(&[0x81, 0xff]), "syntax error at offset 1");
        assert_eq!(detail(&[0xf0]), "syntax error at offset 0");
        assert_eq!(detail(&[0xf8, 0x20]), "syntax error at offset 0");
        assert_eq!(
            detail(&[0x62, 0xc3, 0x28]),
            "invalid UTF-8 in the text string at offset 0"
        );
        assert_eq!(
            detail(&[0x7f, 0x61, 0xc3, 0x61, 0xa9, 0xff]),
            "invalid UTF-8 in the text string at offset 1"
        );
        // undefined reads as null, as it did.
        assert_eq!(decode(&[0xf7]).unwrap(), Item::Null);
        assert_eq!(
            decode(&[0x01, 0x02]).unwrap_err(),
            Error::TrailingBytes {
                context: "test",
                count: 1
            }
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let ok: Vec<u8> = std::iter::repeat_n(0x81, RECURSION_LIMIT)
            .chain([0x00])
            .collect();
        assert!(decode(&ok).is_ok());
        let deep: Vec<u8> = std::iter::repeat_n(0x81, RECURSION_LIMIT + 1)
            .chain([0x00])
            .collect();
        assert_eq!(detail(&deep), "nesting too deep");
        let tags: Vec<u8> = std::iter::repeat_n(0xc6, RECURSION_LIMIT + 1)
            .chain([0x00])
            .collect();
        assert_eq!(detail(&tags), "nesting too deep");
        // Far deeper input costs no stack: refused at the limit.
        let abyss = vec![0x81; 100_000];
        assert_eq!(detail(&abyss), "nesting too deep");
    }
}
