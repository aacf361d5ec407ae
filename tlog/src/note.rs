//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys,
//! byte for byte the formats of Go's `golang.org/x/mod/sumdb/note`.
//!
//! A signed note is UTF-8 text ending in a newline, a blank line, then one
//! or more signature lines `— NAME BASE64(key id || signature)`:
//!
//! ```text
//! If you think cryptography is the answer to your problem,
//! then you don't know what your problem is.
//!
//! — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=
//! ```
//!
//! Keys are named; the key id is the first four bytes of
//! SHA-256(name || "\n" || 0x01 || public key). A verifier key is written
//! `NAME+HHHHHHHH+BASE64(0x01 || public key)` and a private key
//! `PRIVATE+KEY+NAME+HHHHHHHH+BASE64(0x01 || seed)` (Go's `note.GenerateKey`).
//!
//! Where this module is stricter than Go's `note.Open` it says so: base64
//! must be canonical (Go ignores non-zero trailing bits, which makes a
//! signature line malleable), a note is capped at [`MAX_NOTE_SIZE`] bytes,
//! and every signature line from a known key is verified, duplicates
//! included (Go verifies only the first line of each key).

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

/// Signature type byte of Ed25519 note signatures (c2sp.org/signed-note,
/// "Signature types").
pub const ALG_ED25519: u8 = 0x01;

/// At most this many signature lines in one note. Go's `note.Open` refuses
/// a note with more than 100 (note.go, "Avoid spending forever parsing a
/// note with many signatures"); C2SP asks verifiers to accept at least 16.
pub const MAX_SIGNATURES: usize = 100;

/// At most this many bytes in one note, signatures included. C2SP lets a
/// verifier bound a note's size instead of, or besides, its signature count;
/// 1 MiB holds any change statement hermetic writes with room to spare.
pub const MAX_NOTE_SIZE: usize = 1 << 20;

/// Ed25519 public key and seed length (RFC 8032 §5.1.5).
const ED25519_KEY_LEN: usize = 32;
/// Ed25519 signature length (RFC 8032 §5.1.6).
const ED25519_SIG_LEN: usize = 64;
/// Em dash (U+2014) and a space open every signature line.
const SIG_PREFIX: &str = "\u{2014} ";
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// What is wrong with a note's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("control character other than newline at byte {offset}")]
    ControlCharacter { offset: usize },
    #[error("the text is empty or does not end in a newline")]
    TextWithoutNewline,
    #[error("no blank line followed by newline-terminated signature lines")]
    MissingSignatures,
    #[error("signature line {line} does not start with an em dash and a space")]
    SignaturePrefix { line: usize },
    #[error("signature line {line} has an invalid key name")]
    SignatureName { line: usize },
    #[error("signature line {line} is not canonical standard base64")]
    SignatureBase64 { line: usize },
    #[error("signature line {line} holds fewer than 5 bytes (a 4-byte key id and a signature)")]
    SignatureTooShort { line: usize },
}

/// What is wrong with a key string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFault {
    #[error("not of the form NAME+HHHHHHHH+BASE64 (or PRIVATE+KEY+NAME+HHHHHHHH+BASE64)")]
    Syntax,
    #[error("a private key was given where a verifier key belongs")]
    PrivateKeyGiven,
    #[error("the key id is not 8 hexadecimal digits")]
    KeyIdHex,
    #[error("the key data is not canonical standard base64")]
    Base64,
    #[error("the key data holds {len} bytes; an Ed25519 key holds 33 (type byte and 32-byte key)")]
    Length { len: usize },
}

/// Every way reading, signing or opening a note or a key can fail. No
/// variant carries key material; names and key ids are public.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    MalformedNote(#[from] Malformed),
    #[error("note of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("note carries more than {limit} signatures")]
    TooManySignatures { limit: usize },
    #[error("invalid key name: it must be non-empty UTF-8 without spaces or '+'")]
    InvalidName,
    #[error("malformed key: {0}")]
    MalformedKey(KeyFault),
    #[error("unknown signature type 0x{alg:02x}")]
    UnknownAlgorithm { alg: u8 },
    #[error("key id {stated:08x} does not match key {name} (its id is {computed:08x})")]
    KeyIdMismatch {
        name: String,
        stated: u32,
        computed: u32,
    },
    #[error("invalid signature for key {name}+{key_id:08x}")]
    BadSignature { name: String, key_id: u32 },
    #[error("ambiguous key {name}+{key_id:08x}: different keys share this name and key id")]
    AmbiguousKey { name: String, key_id: u32 },
    #[error("no signature on the note is from a known key")]
    NoKnownSignature,
    #[error("no randomness for a new Ed25519 key")]
    Randomness,
}

/// Whether `name` may name a key: non-empty, no Unicode white space, no
/// `+` (c2sp.org/signed-note, "Format"; Go's `isValidName`). Rust's
/// `char::is_whitespace` is Unicode `White_Space`, the set Go's
/// `unicode.IsSpace` tests.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+')
}

/// The key id of a named key: the first four bytes, big-endian, of
/// SHA-256(name || 0x0A || encoded key), where the encoded key is the
/// signature type byte followed by the public key (c2sp.org/signed-note,
/// "Signatures"; Go's `keyHash`).
pub fn key_id(name: &str, encoded_key: &[u8]) -> u32 {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(encoded_key);
    let sum = ctx.finish();
    let b = sum.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Splits `NAME+HHHHHHHH+BASE64` at its first two `+` (the base64 part may
/// itself hold `+`), checks the name and the hex, and decodes the key data.
fn split_key_string(s: &str) -> Result<(&str, u32, &str), NoteError> {
    let (name, rest) = s
        .split_once('+')
        .ok_or(NoteError::MalformedKey(KeyFault::Syntax))?;
    let (hex, b64) = rest
        .split_once('+')
        .ok_or(NoteError::MalformedKey(KeyFault::Syntax))?;
    if !is_valid_name(name) {
        return Err(NoteError::InvalidName);
    }
    // `from_str_radix` would take a leading '+': insist on 8 hex digits.
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::MalformedKey(KeyFault::KeyIdHex));
    }
    let stated =
        u32::from_str_radix(hex, 16).map_err(|_| NoteError::MalformedKey(KeyFault::KeyIdHex))?;
    if b64.is_empty() {
        return Err(NoteError::MalformedKey(KeyFault::Length { len: 0 }));
    }
    Ok((name, stated, b64))
}

/// A public key that verifies note signatures: a name, its key id and an
/// Ed25519 public key. Parsed from and displayed as the verifier key string
/// `NAME+HHHHHHHH+BASE64(0x01 || public key)`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    public_key: [u8; ED25519_KEY_LEN],
}

impl VerifierKey {
    /// The verifier key of an Ed25519 public key under `name` (Go's
    /// `NewEd25519VerifierKey`).
    pub fn new_ed25519(name: &str, public_key: &[u8; 32]) -> Result<VerifierKey, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidName);
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: key_id(name, &encoded(ALG_ED25519, public_key)),
            public_key: *public_key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// Whether `sig` is this key's Ed25519 signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        sig.len() == ED25519_SIG_LEN
            && UnparsedPublicKey::new(&ED25519, &self.public_key)
                .verify(msg, sig)
                .is_ok()
    }

    fn matches(&self, sig: &Signature) -> bool {
        self.key_id == sig.key_id && self.name == sig.name
    }
}

/// The type byte followed by the public key: what key ids and key strings
/// are computed over.
pub(crate) fn encoded(alg: u8, public_key: &[u8; ED25519_KEY_LEN]) -> [u8; 1 + ED25519_KEY_LEN] {
    let mut out = [0u8; 1 + ED25519_KEY_LEN];
    out[0] = alg;
    out[1..].copy_from_slice(public_key);
    out
}

/// Parses `NAME+HHHHHHHH+BASE64(alg || 32-byte Ed25519 public key)`,
/// checking in Go's `NewVerifier` order: syntax, key id against the key
/// data, type byte, key length.
pub(crate) fn parse_public_key(
    s: &str,
    want_alg: u8,
) -> Result<(String, u32, [u8; ED25519_KEY_LEN]), NoteError> {
    if s.starts_with(PRIVATE_PREFIX) {
        return Err(NoteError::MalformedKey(KeyFault::PrivateKeyGiven));
    }
    let (name, stated, b64) = split_key_string(s)?;
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| NoteError::MalformedKey(KeyFault::Base64))?;
    let computed = key_id(name, &raw);
    if computed != stated {
        return Err(NoteError::KeyIdMismatch {
            name: name.to_owned(),
            stated,
            computed,
        });
    }
    match raw.first() {
        Some(&alg) if alg == want_alg => {}
        Some(&alg) => return Err(NoteError::UnknownAlgorithm { alg }),
        None => return Err(NoteError::MalformedKey(KeyFault::Length { len: 0 })),
    }
    let public_key: [u8; ED25519_KEY_LEN] = raw[1..]
        .try_into()
        .map_err(|_| NoteError::MalformedKey(KeyFault::Length { len: raw.len() }))?;
    Ok((name.to_owned(), stated, public_key))
}

pub(crate) fn format_public_key(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    key_id: u32,
    alg: u8,
    public_key: &[u8; ED25519_KEY_LEN],
) -> fmt::Result {
    write!(
        f,
        "{name}+{key_id:08x}+{}",
        STANDARD.encode(encoded(alg, public_key))
    )
}

impl FromStr for VerifierKey {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<VerifierKey, NoteError> {
        let (name, key_id, public_key) = parse_public_key(s, ALG_ED25519)?;
        Ok(VerifierKey {
            name,
            key_id,
            public_key,
        })
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_public_key(f, &self.name, self.key_id, ALG_ED25519, &self.public_key)
    }
}

/// A named Ed25519 private key for one signature type (`alg`): what a note
/// signer and a cosigner share. The seed is wiped on drop (the key pair
/// lives in AWS-LC, whose `OPENSSL_free` cleanses what it frees).
pub(crate) struct Ed25519Key {
    name: String,
    alg: u8,
    key_id: u32,
    seed: Zeroizing<[u8; ED25519_KEY_LEN]>,
    key_pair: Ed25519KeyPair,
    public_key: [u8; ED25519_KEY_LEN],
}

impl Ed25519Key {
    /// A new key from aws-lc-rs randomness (a 32-byte seed, as Go's
    /// `ed25519.GenerateKey` reads).
    pub(crate) fn generate(name: &str, alg: u8) -> Result<Ed25519Key, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidName);
        }
        let mut seed = Zeroizing::new([0u8; ED25519_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut seed[..]).map_err(|_| NoteError::Randomness)?;
        Ed25519Key::from_seed(name, alg, seed)
    }

    /// Parses `PRIVATE+KEY+NAME+HHHHHHHH+BASE64(alg || seed)`, checking in
    /// Go's `NewSigner` order: syntax, type byte, seed length, then the key
    /// id against the public key derived from the seed.
    pub(crate) fn from_private_key(s: &str, want_alg: u8) -> Result<Ed25519Key, NoteError> {
        let rest = s
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or(NoteError::MalformedKey(KeyFault::Syntax))?;
        let (name, stated, b64) = split_key_string(rest)?;
        let raw = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| NoteError::MalformedKey(KeyFault::Base64))?,
        );
        match raw.first() {
            Some(&alg) if alg == want_alg => {}
            Some(&alg) => return Err(NoteError::UnknownAlgorithm { alg }),
            None => return Err(NoteError::MalformedKey(KeyFault::Length { len: 0 })),
        }
        if raw.len() != 1 + ED25519_KEY_LEN {
            return Err(NoteError::MalformedKey(KeyFault::Length { len: raw.len() }));
        }
        let mut seed = Zeroizing::new([0u8; ED25519_KEY_LEN]);
        seed.copy_from_slice(&raw[1..]);
        let key = Ed25519Key::from_seed(name, want_alg, seed)?;
        if key.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                stated,
                computed: key.key_id,
            });
        }
        Ok(key)
    }

    fn from_seed(
        name: &str,
        alg: u8,
        seed: Zeroizing<[u8; ED25519_KEY_LEN]>,
    ) -> Result<Ed25519Key, NoteError> {
        // Any 32 bytes are an Ed25519 seed (RFC 8032 §5.1.5); a refusal here
        // would be AWS-LC failing, reported as no key.
        let key_pair =
            Ed25519KeyPair::from_seed_unchecked(&seed[..]).map_err(|_| NoteError::Randomness)?;
        let public_key: [u8; ED25519_KEY_LEN] = key_pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| NoteError::Randomness)?;
        Ok(Ed25519Key {
            name: name.to_owned(),
            alg,
            key_id: key_id(name, &encoded(alg, &public_key)),
            seed,
            key_pair,
            public_key,
        })
    }

    /// `PRIVATE+KEY+NAME+HHHHHHHH+BASE64(alg || seed)`, in memory that is
    /// wiped when dropped.
    pub(crate) fn private_key_string(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; 1 + ED25519_KEY_LEN]);
        raw[0] = self.alg;
        raw[1..].copy_from_slice(&self.seed[..]);
        // 33 bytes are 44 base64 characters, no padding.
        let mut b64 = Zeroizing::new([0u8; 44]);
        let n = STANDARD
            .encode_slice(&raw[..], &mut b64[..])
            .expect("44 bytes hold the base64 of 33");
        // Sized up front so the string never reallocates (a reallocation
        // would leave an unwiped copy behind).
        let mut out = Zeroizing::new(String::with_capacity(
            PRIVATE_PREFIX.len() + self.name.len() + 1 + 8 + 1 + n,
        ));
        out.push_str(PRIVATE_PREFIX);
        out.push_str(&self.name);
        out.push('+');
        out.push_str(&format!("{:08x}", self.key_id));
        out.push('+');
        out.push_str(std::str::from_utf8(&b64[..n]).expect("base64 is ASCII"));
        out
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn key_id(&self) -> u32 {
        self.key_id
    }

    pub(crate) fn public_key(&self) -> &[u8; ED25519_KEY_LEN] {
        &self.public_key
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key_pair.sign(msg).as_ref().to_vec()
    }

    pub(crate) fn same_key(&self, other: &Ed25519Key) -> bool {
        self.alg == other.alg && self.public_key == other.public_key && self.name == other.name
    }

    pub(crate) fn debug(&self, f: &mut fmt::Formatter<'_>, kind: &str) -> fmt::Result {
        f.debug_struct(kind)
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("private_key", &format_args!("<redacted>"))
            .finish()
    }
}

/// A named Ed25519 note signing key (signature type 0x01). Its `Debug`
/// shows the name and key id only; the seed is wiped when it is dropped.
pub struct Signer {
    key: Ed25519Key,
}

impl Signer {
    /// A new key named `name`, from aws-lc-rs randomness.
    pub fn generate(name: &str) -> Result<Signer, NoteError> {
        Ed25519Key::generate(name, ALG_ED25519).map(|key| Signer { key })
    }

    /// Parses `PRIVATE+KEY+NAME+HHHHHHHH+BASE64(0x01 || seed)` (Go's
    /// `note.NewSigner`).
    pub fn from_private_key(s: &str) -> Result<Signer, NoteError> {
        Ed25519Key::from_private_key(s, ALG_ED25519).map(|key| Signer { key })
    }

    /// The key named `name` whose Ed25519 seed is `seed` (RFC 8032 §5.1.5:
    /// any 32 bytes are a seed), for keys derived from another secret.
    pub fn from_seed(name: &str, seed: Zeroizing<[u8; 32]>) -> Result<Signer, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidName);
        }
        Ed25519Key::from_seed(name, ALG_ED25519, seed).map(|key| Signer { key })
    }

    /// `PRIVATE+KEY+NAME+HHHHHHHH+BASE64(0x01 || seed)`, in memory that is
    /// wiped when dropped. Whoever holds it can sign as this key.
    pub fn private_key_string(&self) -> Zeroizing<String> {
        self.key.private_key_string()
    }

    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.key.name().to_owned(),
            key_id: self.key.key_id(),
            public_key: *self.key.public_key(),
        }
    }

    pub fn name(&self) -> &str {
        self.key.name()
    }

    pub fn key_id(&self) -> u32 {
        self.key.key_id()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key.debug(f, "Signer")
    }
}

/// One signature line: the key's name and id, and the signature bytes
/// after the 4-byte key id.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Signature {
    pub name: String,
    pub key_id: u32,
    pub sig: Vec<u8>,
}

impl Signature {
    /// The line as it appears in a note, newline included.
    pub fn line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.sig.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.sig);
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(raw))
    }
}

/// A note split into its text (final newline included, blank line not) and
/// its signature lines in order, none of them checked against a key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<Signature>,
}

/// An opened note: its text, the known keys whose signatures verified (each
/// once, in the order of their first line) and the signatures from keys not
/// known (identical lines once).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Opened {
    pub text: String,
    pub verified: Vec<VerifierKey>,
    pub unverified: Vec<Signature>,
}

/// Refuses text that could not be the text of a note: it must end in a
/// newline and hold no control character but newline (c2sp.org/signed-note,
/// "Format"). UTF-8 is guaranteed by `&str`.
fn check_text(text: &str) -> Result<(), NoteError> {
    if let Some(offset) = text.bytes().position(|b| b < 0x20 && b != b'\n') {
        return Err(Malformed::ControlCharacter { offset }.into());
    }
    if !text.ends_with('\n') {
        return Err(Malformed::TextWithoutNewline.into());
    }
    Ok(())
}

/// Parses a note's syntax: size, UTF-8, control characters, the blank line
/// before the signatures (the last one in the note), each signature line's
/// prefix, name and base64, and the number of lines. Verifies nothing.
pub fn parse(note: &[u8]) -> Result<Note, NoteError> {
    if note.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge {
            size: note.len(),
            limit: MAX_NOTE_SIZE,
        });
    }
    let s = std::str::from_utf8(note).map_err(|e| Malformed::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    if let Some(offset) = s.bytes().position(|b| b < 0x20 && b != b'\n') {
        return Err(Malformed::ControlCharacter { offset }.into());
    }
    // The text keeps its final newline; the blank line separates it from
    // the signatures, and the last blank line is the separator (the text
    // may hold blank lines of its own).
    let split = s.rfind("\n\n").ok_or(Malformed::MissingSignatures)?;
    let (text, block) = (&s[..split + 1], &s[split + 2..]);
    let block = block
        .strip_suffix('\n')
        .ok_or(Malformed::MissingSignatures)?;
    let mut signatures = Vec::new();
    for (i, line) in block.split('\n').enumerate() {
        let line_no = i + 1;
        if line_no > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                limit: MAX_SIGNATURES,
            });
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(Malformed::SignaturePrefix { line: line_no })?;
        let (name, b64) = rest.split_once(' ').unwrap_or((rest, ""));
        if !is_valid_name(name) {
            return Err(Malformed::SignatureName { line: line_no }.into());
        }
        if b64.is_empty() {
            return Err(Malformed::SignatureBase64 { line: line_no }.into());
        }
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| Malformed::SignatureBase64 { line: line_no })?;
        if raw.len() < 5 {
            return Err(Malformed::SignatureTooShort { line: line_no }.into());
        }
        signatures.push(Signature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            sig: raw[4..].to_vec(),
        });
    }
    Ok(Note {
        text: text.to_owned(),
        signatures,
    })
}

/// Signs `text` with each signer and returns the signed note. The text must
/// end in a newline and hold no control character but newline; a signer
/// given twice signs once. The result always parses.
pub fn sign(text: &str, signers: &[&Signer]) -> Result<String, NoteError> {
    check_text(text)?;
    let keys: Vec<&Ed25519Key> = signers.iter().map(|s| &s.key).collect();
    sign_lines(text, Vec::new(), &keys, &|k| k.sign(text.as_bytes()))
}

/// Adds these signers' signatures to a signed note, keeping its existing
/// signature lines (identical lines once) in their order. A line by one of
/// `signers` (same name and key id) is replaced by the fresh signature, so
/// no signer appears twice. Only the note's syntax is checked: existing
/// signatures are not verified.
pub fn add_signatures(note: &[u8], signers: &[&Signer]) -> Result<String, NoteError> {
    let parsed = parse(note)?;
    let keys: Vec<&Ed25519Key> = signers.iter().map(|s| &s.key).collect();
    let text = parsed.text.as_bytes();
    sign_lines(&parsed.text, parsed.signatures, &keys, &|k| k.sign(text))
}

/// Text, blank line, the `existing` lines not by one of `keys` (identical
/// lines once), then one line per distinct key with the signature
/// `sig_for` makes; refuses a result that `parse` would refuse.
pub(crate) fn sign_lines(
    text: &str,
    existing: Vec<Signature>,
    keys: &[&Ed25519Key],
    sig_for: &dyn Fn(&Ed25519Key) -> Vec<u8>,
) -> Result<String, NoteError> {
    let mut distinct: Vec<&Ed25519Key> = Vec::with_capacity(keys.len());
    for &k in keys {
        match distinct
            .iter()
            .find(|d| d.key_id() == k.key_id() && d.name() == k.name())
        {
            None => distinct.push(k),
            Some(d) if d.same_key(k) => {}
            Some(_) => {
                return Err(NoteError::AmbiguousKey {
                    name: k.name().to_owned(),
                    key_id: k.key_id(),
                })
            }
        }
    }
    let mut kept: Vec<Signature> = Vec::with_capacity(existing.len());
    for sig in existing {
        let replaced = distinct
            .iter()
            .any(|k| k.key_id() == sig.key_id && k.name() == sig.name);
        if !replaced && !kept.contains(&sig) {
            kept.push(sig);
        }
    }
    let count = kept.len() + distinct.len();
    if count == 0 {
        return Err(Malformed::MissingSignatures.into());
    }
    if count > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures {
            limit: MAX_SIGNATURES,
        });
    }
    let mut out = String::with_capacity(text.len() + 1 + count * 100);
    out.push_str(text);
    out.push('\n');
    for sig in &kept {
        out.push_str(&sig.line());
    }
    for k in distinct {
        let sig = Signature {
            name: k.name().to_owned(),
            key_id: k.key_id(),
            sig: sig_for(k),
        };
        out.push_str(&sig.line());
    }
    if out.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge {
            size: out.len(),
            limit: MAX_NOTE_SIZE,
        });
    }
    Ok(out)
}

/// Opens a signed note against the keys the caller trusts
/// (c2sp.org/signed-note, "Signatures"): a signature whose name and key id
/// match a known key must verify, or the whole note is refused
/// ([`NoteError::BadSignature`]); signatures from other keys are listed as
/// unverified; a note with no verified signature is refused
/// ([`NoteError::NoKnownSignature`]). Two different known keys with one
/// name and key id make the note's lines by them ambiguous
/// ([`NoteError::AmbiguousKey`]). A key that signed several lines counts
/// once.
pub fn open(note: &[u8], known: &[VerifierKey]) -> Result<Opened, NoteError> {
    let parsed = parse(note)?;
    let mut verified: Vec<VerifierKey> = Vec::new();
    let mut unverified: Vec<Signature> = Vec::new();
    for sig in parsed.signatures {
        let mut matching = known.iter().filter(|k| k.matches(&sig));
        let Some(key) = matching.next() else {
            if !unverified.contains(&sig) {
                unverified.push(sig);
            }
            continue;
        };
        if matching.any(|other| other != key) {
            return Err(NoteError::AmbiguousKey {
                name: sig.name,
                key_id: sig.key_id,
            });
        }
        if !key.verify(parsed.text.as_bytes(), &sig.sig) {
            return Err(NoteError::BadSignature {
                name: sig.name,
                key_id: sig.key_id,
            });
        }
        if !verified.contains(key) {
            verified.push(key.clone());
        }
    }
    if verified.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok(Opened {
        text: parsed.text,
        verified,
        unverified,
    })
}
