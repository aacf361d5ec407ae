//! C2SP transparency log witnesses (<https://c2sp.org/tlog-witness>): the
//! `add-checkpoint` wire formats and the witness's decision, sans I/O.
//!
//! A log submits each new checkpoint with a consistency proof from the size
//! the witness last cosigned:
//!
//! ```text
//! old 20852014
//! PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
//! jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
//!
//! example.com/behind-the-sofa
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//!
//! — example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+…
//! ```
//!
//! and the witness answers with its cosignature lines (200), its own size
//! (409, `text/x.tlog.size`) or a refusal (400, 403, 404, 422). The caller
//! owns the socket, the stored state and the clock: [`decide`] takes the
//! parsed request, the state the witness holds for that origin and the time,
//! and returns a [`Verdict`] whose new state the caller persists *before*
//! sending the answer, holding that origin's lock from reading the state to
//! persisting it (the race in c2sp.org/tlog-witness, "add-checkpoint").

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::cosignature::{self, Cosignature, CosignatureError, Cosigner, CosignerKey};
use crate::merkle::{self, Hash, ProofError};
use crate::note::{self, NoteError, VerifierKey};

/// The most consistency proof lines a request may carry
/// (c2sp.org/tlog-witness, "add-checkpoint").
pub const MAX_PROOF_LINES: usize = 63;

/// The content type of a 409 answer's body, the witness's tree size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The path of the call under the witness's submission prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";

/// Why an `add-checkpoint` body could not be read (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body does not start with an `old SIZE` line")]
    NoOldLine,
    #[error("the old size is not a decimal number without leading zeros")]
    BadOldSize,
    #[error("proof line {line} is not the standard base64 of a 32-byte hash")]
    BadProofLine { line: usize },
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    #[error("no empty line before the checkpoint")]
    NoBlankLine,
    #[error("the checkpoint is not a signed note: {0}")]
    Note(#[from] NoteError),
    #[error("the checkpoint's text: {0}")]
    Checkpoint(#[from] CheckpointError),
}

/// A parsed `add-checkpoint` request. The checkpoint's body is parsed but
/// no signature is checked yet: [`AddCheckpoint::origin`] names the state
/// the caller must lock before calling [`decide`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AddCheckpoint {
    /// The size of the previous checkpoint the witness is believed to hold.
    pub old_size: u64,
    /// RFC 6962 §2.1.2 consistency proof from `old_size` to the new size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, as sent.
    pub note: String,
    /// Its body (signatures not checked).
    pub checkpoint: Checkpoint,
}

/// ASCII digits, no sign, no leading zero unless the number is 0.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

impl AddCheckpoint {
    /// Builds a request for a signed checkpoint note.
    pub fn new(old_size: u64, proof: Vec<Hash>, note: &str) -> Result<AddCheckpoint, RequestError> {
        if proof.len() > MAX_PROOF_LINES {
            return Err(RequestError::TooManyProofLines);
        }
        let parsed = note::parse(note.as_bytes())?;
        let checkpoint = Checkpoint::parse(&parsed.text)?;
        Ok(AddCheckpoint {
            old_size,
            proof,
            note: note.to_owned(),
            checkpoint,
        })
    }

    /// Parses a request body: `old N`, up to 63 base64 hash lines, an empty
    /// line, the signed checkpoint; every line ends in a newline.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, RequestError> {
        let mut rest = body;
        let next_line = |rest: &mut &[u8]| -> Option<Vec<u8>> {
            let end = rest.iter().position(|&b| b == b'\n')?;
            let line = rest[..end].to_vec();
            *rest = &rest[end + 1..];
            Some(line)
        };
        let old_line = next_line(&mut rest).ok_or(RequestError::NoOldLine)?;
        let old_line = std::str::from_utf8(&old_line).map_err(|_| RequestError::NoOldLine)?;
        let old_size = old_line
            .strip_prefix("old ")
            .ok_or(RequestError::NoOldLine)
            .and_then(|n| parse_decimal(n).ok_or(RequestError::BadOldSize))?;
        let mut proof = Vec::new();
        loop {
            let line = next_line(&mut rest).ok_or(RequestError::NoBlankLine)?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            let hash = std::str::from_utf8(&line)
                .ok()
                .and_then(|s| s.parse::<Hash>().ok())
                .ok_or(RequestError::BadProofLine {
                    line: proof.len() + 1,
                })?;
            proof.push(hash);
        }
        let parsed = note::parse(rest)?;
        let checkpoint = Checkpoint::parse(&parsed.text)?;
        // `note::parse` checked UTF-8.
        let note = String::from_utf8_lossy(rest).into_owned();
        Ok(AddCheckpoint {
            old_size,
            proof,
            note,
            checkpoint,
        })
    }

    /// The request body.
    pub fn to_body(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{hash}");
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// The checkpoint's origin line: which log's state to lock.
    pub fn origin(&self) -> &str {
        &self.checkpoint.origin
    }
}

/// The logs a witness cosigns for: each origin and the keys it trusts for
/// it. A checkpoint's signature must be by a key whose name is the origin
/// (c2sp.org/tlog-checkpoint, "Signatures").
#[derive(Clone, Debug, Default)]
pub struct KnownLogs {
    logs: BTreeMap<String, Vec<VerifierKey>>,
}

impl KnownLogs {
    /// One log per key name.
    pub fn new(keys: impl IntoIterator<Item = VerifierKey>) -> KnownLogs {
        let mut logs: BTreeMap<String, Vec<VerifierKey>> = BTreeMap::new();
        for key in keys {
            let entry = logs.entry(key.name().to_owned()).or_default();
            if !entry.contains(&key) {
                entry.push(key);
            }
        }
        KnownLogs { logs }
    }

    pub fn keys(&self, origin: &str) -> Option<&[VerifierKey]> {
        self.logs.get(origin).map(Vec::as_slice)
    }

    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }
}

/// What a witness holds for one log: the latest checkpoint it cosigned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LogState {
    pub size: u64,
    pub root_hash: Hash,
}

/// A 409 answer: the body is the witness's size either way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The request's old size is not the size the witness holds.
    #[error("the witness holds size {witness_size}, not the request's old size {old_size}")]
    OldSize { old_size: u64, witness_size: u64 },
    /// Same size as the witness holds, another root hash: a fork.
    #[error("the witness holds size {size} with root {held}, not {offered}: a fork")]
    RootMismatch {
        size: u64,
        held: Hash,
        offered: Hash,
    },
}

impl Conflict {
    pub fn witness_size(&self) -> u64 {
        match self {
            Conflict::OldSize { witness_size, .. } => *witness_size,
            Conflict::RootMismatch { size, .. } => *size,
        }
    }
}

/// Why a witness refused to cosign, each with the status
/// c2sp.org/tlog-witness ("add-checkpoint") gives it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 404: the witness has no key for this origin.
    #[error("unknown log origin {origin:?}")]
    UnknownOrigin { origin: String },
    /// 403: no signature by a trusted key of the log verifies.
    #[error("the checkpoint carries no valid signature by the log's key: {0}")]
    NotSignedByLog(NoteError),
    /// 400: the old size exceeds the checkpoint's size.
    #[error("old size {old_size} exceeds the checkpoint's size {size}")]
    OldSizeTooLarge { old_size: u64, size: u64 },
    /// 422: the consistency proof does not verify (or is not empty with
    /// old size 0).
    #[error("the consistency proof from size {old_size} to {size} does not verify: {error}")]
    BadProof {
        old_size: u64,
        size: u64,
        error: ProofError,
    },
    /// 500: the witness could not cosign (its clock is out of range).
    #[error("cannot cosign: {0}")]
    Cosign(CosignatureError),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::UnknownOrigin { .. } => 404,
            Refusal::NotSignedByLog(_) => 403,
            Refusal::OldSizeTooLarge { .. } => 400,
            Refusal::BadProof { .. } => 422,
            Refusal::Cosign(_) => 500,
        }
    }
}

/// A successful `add-checkpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The state to persist before answering.
    pub state: LogState,
    /// The checkpoint note with this witness's cosignature added (what the
    /// witness keeps as evidence).
    pub note: String,
    /// The answer body: the cosignature line(s).
    pub signatures: String,
    pub timestamp: u64,
}

/// The witness's decision on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Cosign(Cosigned),
    Conflict(Conflict),
    Refuse(Refusal),
}

impl Verdict {
    /// HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Verdict::Cosign(_) => 200,
            Verdict::Conflict(_) => 409,
            Verdict::Refuse(r) => r.status(),
        }
    }
}

/// The body of a 409 answer: the size and a newline.
pub fn format_size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Reads a 409 answer's body.
pub fn parse_size_body(body: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(body).ok()?;
    parse_decimal(s.strip_suffix('\n')?)
}

/// Decides on `req` for a witness that holds `state` for its origin (`None`:
/// never cosigned it, size 0), at `now` (unix seconds), checking in the
/// order of c2sp.org/tlog-witness, "add-checkpoint": origin known (404),
/// signed by the log (403), old size not above the new size (400), old size
/// equal to the held size (409), consistency proof (422), same size with
/// the same root (409). The caller persists [`Cosigned::state`] before it
/// answers.
pub fn decide(
    logs: &KnownLogs,
    state: Option<&LogState>,
    req: &AddCheckpoint,
    now: u64,
    cosigner: &Cosigner,
) -> Verdict {
    let origin = req.origin();
    let Some(keys) = logs.keys(origin) else {
        return Verdict::Refuse(Refusal::UnknownOrigin {
            origin: origin.to_owned(),
        });
    };
    // Any one trusted key signing is enough; signatures by other keys
    // (other witnesses' cosignatures) are ignored.
    if let Err(e) = note::open(req.note.as_bytes(), keys) {
        return Verdict::Refuse(Refusal::NotSignedByLog(e));
    }
    let checkpoint = &req.checkpoint;
    let (old, new) = (req.old_size, checkpoint.size);
    if old > new {
        return Verdict::Refuse(Refusal::OldSizeTooLarge {
            old_size: old,
            size: new,
        });
    }
    let held = state.map_or(0, |s| s.size);
    if old != held {
        return Verdict::Conflict(Conflict::OldSize {
            old_size: old,
            witness_size: held,
        });
    }
    let bad_proof = |error| {
        Verdict::Refuse(Refusal::BadProof {
            old_size: old,
            size: new,
            error,
        })
    };
    match state {
        // Nothing held (or the empty tree): nothing to be consistent with,
        // and the proof must be empty.
        None => {
            if !req.proof.is_empty() {
                return bad_proof(ProofError::WrongLength);
            }
        }
        Some(held) if held.size == 0 => {
            if !req.proof.is_empty() {
                return bad_proof(ProofError::WrongLength);
            }
            if new == 0 && held.root_hash != checkpoint.root_hash {
                return Verdict::Conflict(Conflict::RootMismatch {
                    size: 0,
                    held: held.root_hash,
                    offered: checkpoint.root_hash,
                });
            }
        }
        Some(held) if held.size == new => {
            if !req.proof.is_empty() {
                return bad_proof(ProofError::WrongLength);
            }
            if held.root_hash != checkpoint.root_hash {
                return Verdict::Conflict(Conflict::RootMismatch {
                    size: new,
                    held: held.root_hash,
                    offered: checkpoint.root_hash,
                });
            }
        }
        Some(held) => {
            if let Err(error) =
                merkle::check_tree(&req.proof, new, &checkpoint.root_hash, old, &held.root_hash)
            {
                return bad_proof(error);
            }
        }
    }
    let cosigned = match cosignature::cosign(req.note.as_bytes(), cosigner, now) {
        Ok(n) => n,
        Err(e) => return Verdict::Refuse(Refusal::Cosign(e)),
    };
    let signatures = match note::parse(cosigned.as_bytes()) {
        Ok(parsed) => parsed
            .signatures
            .iter()
            .filter(|s| s.name == cosigner.name() && s.key_id == cosigner.key_id())
            .map(note::Signature::line)
            .collect::<String>(),
        Err(e) => return Verdict::Refuse(Refusal::Cosign(e.into())),
    };
    Verdict::Cosign(Cosigned {
        state: LogState {
            size: new,
            root_hash: checkpoint.root_hash,
        },
        note: cosigned,
        signatures,
        timestamp: now,
    })
}

/// Why a witness's 200 answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the answer is not signature lines: {0}")]
    Malformed(NoteError),
    #[error("the answer is not signature lines (empty, or a blank or text line in it)")]
    NotSignatureLines,
    #[error("the answer carries no cosignature by {key}")]
    Missing { key: String },
    #[error("the answer's cosignature does not verify: {0}")]
    Invalid(CosignatureError),
}

/// A witness's answer, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The submitted note with this witness's cosignature line (an earlier
    /// line by the same witness replaced).
    pub note: String,
    pub cosignature: Cosignature,
    /// The witness's cosignature line, newline included.
    pub line: String,
}

/// Checks a witness's 200 answer to the submission of `note` against the
/// witness's pinned key and returns the checkpoint with that cosignature
/// added. Lines by other keys are ignored
/// (c2sp.org/tlog-witness: "The client MUST ignore any cosignatures from
/// unknown keys"); a line by the pinned key that does not verify refuses
/// the whole answer.
pub fn accept_response(
    note: &str,
    body: &[u8],
    witness: &CosignerKey,
) -> Result<Accepted, ResponseError> {
    let body = std::str::from_utf8(body).map_err(|_| ResponseError::NotSignatureLines)?;
    // A blank line in the answer would move the note's separator and make
    // the lines sign another text: only signature lines are accepted.
    if body.is_empty() || !body.ends_with('\n') || body.contains("\n\n") || body.starts_with('\n') {
        return Err(ResponseError::NotSignatureLines);
    }
    let sent = note::parse(note.as_bytes()).map_err(ResponseError::Malformed)?;
    let combined = format!("{note}{body}");
    let parsed = note::parse(combined.as_bytes()).map_err(ResponseError::Malformed)?;
    if parsed.text != sent.text {
        return Err(ResponseError::NotSignatureLines);
    }
    let theirs: Vec<&note::Signature> = parsed.signatures[sent.signatures.len()..]
        .iter()
        .filter(|s| s.name == witness.name() && s.key_id == witness.key_id())
        .collect();
    let Some(first) = theirs.first() else {
        return Err(ResponseError::Missing {
            key: witness.to_string(),
        });
    };
    let mut out = sent;
    out.signatures
        .retain(|s| !(s.name == witness.name() && s.key_id == witness.key_id()));
    out.signatures.push((*first).clone());
    let mut with = out.text.clone();
    with.push('\n');
    for s in &out.signatures {
        with.push_str(&s.line());
    }
    let verified = cosignature::verify(with.as_bytes(), std::slice::from_ref(witness))
        .map_err(ResponseError::Invalid)?;
    // Every line by the pinned key in the answer must verify, not only the
    // first: a witness sending a bad line is misbehaving.
    for line in &theirs[1..] {
        if witness.verify(&out.text, &line.sig).is_none() {
            return Err(ResponseError::Invalid(CosignatureError::BadCosignature {
                name: line.name.clone(),
                key_id: line.key_id,
            }));
        }
    }
    match verified.into_iter().next() {
        Some(cosignature) => Ok(Accepted {
            note: with,
            cosignature,
            line: first.line(),
        }),
        None => Err(ResponseError::Missing {
            key: witness.to_string(),
        }),
    }
}

/// A log that has fewer records than a checkpoint its witnesses cosigned
/// (a data directory restored from a backup, or a log rolled back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rollback: the local log has {local_size} records but witness {witness} cosigned a checkpoint of size {witness_size}")]
pub struct Rollback {
    pub local_size: u64,
    pub witness: String,
    pub witness_size: u64,
}

/// Whether a local log of `local_size` records is older than a checkpoint
/// one of its witnesses holds (`witness_sizes`: each witness's name and the
/// size it last cosigned). The largest such size is reported. A witness's
/// size comes from its 409 answer, which is not signed: a lying witness can
/// make this refuse (a stop, the safe side), never accept a rollback the
/// others saw.
pub fn check_rollback<'a>(
    local_size: u64,
    witness_sizes: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<(), Rollback> {
    let worst = witness_sizes
        .into_iter()
        .filter(|(_, size)| *size > local_size)
        .max_by_key(|(_, size)| *size);
    match worst {
        Some((witness, witness_size)) => Err(Rollback {
            local_size,
            witness: witness.to_owned(),
            witness_size,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::stored_hashes;
    use crate::note::Signer;

    /// An in-memory log: stored hashes in Go's layout.
    #[derive(Default)]
    struct Log {
        hashes: Vec<Hash>,
        size: u64,
    }

    impl Log {
        fn append(&mut self, data: &[u8]) {
            let new = stored_hashes(self.size, data, &self.hashes).unwrap();
            self.hashes.extend(new);
            self.size += 1;
        }
        fn root(&self) -> Hash {
            merkle::tree_hash(self.size, &self.hashes).unwrap()
        }
        fn proof(&self, old: u64) -> Vec<Hash> {
            if old == 0 || old == self.size {
                return Vec::new();
            }
            merkle::prove_tree(self.size, old, &self.hashes).unwrap()
        }
        fn checkpoint(&self, signer: &Signer) -> String {
            Checkpoint {
                origin: signer.name().to_owned(),
                size: self.size,
                root_hash: self.root(),
                extensions: vec![],
            }
            .sign(signer)
            .unwrap()
        }
    }

    fn log_of(n: u64, tag: &str) -> Log {
        let mut log = Log::default();
        for i in 0..n {
            log.append(format!("{tag} {i}").as_bytes());
        }
        log
    }

    struct Fixture {
        signer: Signer,
        logs: KnownLogs,
        cosigner: Cosigner,
    }

    fn fixture() -> Fixture {
        let signer = Signer::generate("example.com/log").unwrap();
        let logs = KnownLogs::new([signer.verifier_key()]);
        Fixture {
            signer,
            logs,
            cosigner: Cosigner::generate("witness.example/w1").unwrap(),
        }
    }

    fn request(old: u64, log: &Log, signer: &Signer) -> AddCheckpoint {
        AddCheckpoint::new(old, log.proof(old), &log.checkpoint(signer)).unwrap()
    }

    fn cosigned(v: Verdict) -> Cosigned {
        match v {
            Verdict::Cosign(c) => c,
            other => panic!("expected a cosignature, got {other:?}"),
        }
    }

    #[test]
    fn body_round_trips_and_matches_the_spec_shape() {
        let f = fixture();
        let log = log_of(7, "a");
        let req = request(3, &log, &f.signer);
        let body = req.to_body();
        assert!(body.starts_with("old 3\n"));
        let proof_lines: Vec<&str> = body.lines().skip(1).take_while(|l| !l.is_empty()).collect();
        assert_eq!(proof_lines.len(), req.proof.len());
        assert!(body.contains("\n\nexample.com/log\n7\n"));
        assert_eq!(AddCheckpoint::parse(body.as_bytes()).unwrap(), req);
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let f = fixture();
        let log = log_of(2, "a");
        let note = log.checkpoint(&f.signer);
        let cases: Vec<(String, RequestError)> = vec![
            (String::new(), RequestError::NoOldLine),
            (format!("new 1\n\n{note}"), RequestError::NoOldLine),
            (format!("old 01\n\n{note}"), RequestError::BadOldSize),
            (format!("old -1\n\n{note}"), RequestError::BadOldSize),
            (format!("old \n\n{note}"), RequestError::BadOldSize),
            (
                format!("old 1\nnot-a-hash\n\n{note}"),
                RequestError::BadProofLine { line: 1 },
            ),
            ("old 1\n".to_owned(), RequestError::NoBlankLine),
            (
                format!(
                    "old 1\n{}\n{note}",
                    format!("{}\n", Hash::default()).repeat(64)
                ),
                RequestError::TooManyProofLines,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(AddCheckpoint::parse(body.as_bytes()), Err(want), "{body:?}");
        }
        assert!(matches!(
            AddCheckpoint::parse(b"old 1\n\nno signature\n"),
            Err(RequestError::Note(_))
        ));
        let bad_text = note::sign("origin\nnot-a-size\nhash\n", &[&f.signer]).unwrap();
        assert!(matches!(
            AddCheckpoint::parse(format!("old 0\n\n{bad_text}").as_bytes()),
            Err(RequestError::Checkpoint(_))
        ));
        // 63 proof lines are allowed by the syntax.
        let max = format!(
            "old 1\n{}\n{note}",
            format!("{}\n", Hash::default()).repeat(63)
        );
        assert_eq!(
            AddCheckpoint::parse(max.as_bytes()).unwrap().proof.len(),
            63
        );
    }

    #[test]
    fn cosigns_a_consistent_sequence_and_the_cosignature_verifies() {
        let f = fixture();
        let mut log = log_of(5, "a");
        let first = cosigned(decide(
            &f.logs,
            None,
            &request(0, &log, &f.signer),
            100,
            &f.cosigner,
        ));
        assert_eq!(first.state.size, 5);
        assert_eq!(first.timestamp, 100);
        assert!(first.signatures.starts_with("\u{2014} witness.example/w1 "));
        assert_eq!(first.signatures.lines().count(), 1);
        let key = f.cosigner.cosigner_key();
        let checked =
            cosignature::verify(first.note.as_bytes(), std::slice::from_ref(&key)).unwrap();
        assert_eq!(checked[0].timestamp, 100);
        // The answer, appended to the submitted note, is accepted by a client.
        let submitted = log.checkpoint(&f.signer);
        let a = accept_response(&submitted, first.signatures.as_bytes(), &key).unwrap();
        assert_eq!(a.cosignature.timestamp, 100);
        assert_eq!(a.note, format!("{submitted}{}", a.line));
        assert_eq!(a.line, first.signatures);

        let mut state = first.state;
        for n in [6u64, 8, 13, 16, 16] {
            while log.size < n {
                log.append(b"more");
            }
            let req = request(state.size, &log, &f.signer);
            let next = cosigned(decide(&f.logs, Some(&state), &req, 200 + n, &f.cosigner));
            assert_eq!(next.state.size, n);
            assert_eq!(next.state.root_hash, log.root());
            state = next.state;
        }
    }

    #[test]
    fn unknown_origin_is_404_and_a_foreign_signature_is_403() {
        let f = fixture();
        let log = log_of(3, "a");
        let stranger = Signer::generate("other.example/log").unwrap();
        let v = decide(&f.logs, None, &request(0, &log, &stranger), 1, &f.cosigner);
        assert_eq!(v.status(), 404);
        // The right origin, signed by a key the witness does not trust.
        let impostor = Signer::generate("example.com/log").unwrap();
        let v = decide(&f.logs, None, &request(0, &log, &impostor), 1, &f.cosigner);
        assert!(matches!(
            v,
            Verdict::Refuse(Refusal::NotSignedByLog(NoteError::NoKnownSignature))
        ));
        assert_eq!(v.status(), 403);
    }

    #[test]
    fn a_tampered_checkpoint_is_403() {
        let f = fixture();
        let log = log_of(3, "a");
        let note = log.checkpoint(&f.signer).replacen("\n3\n", "\n4\n", 1);
        let req = AddCheckpoint::new(0, vec![], &note).unwrap();
        let v = decide(&f.logs, None, &req, 1, &f.cosigner);
        assert!(matches!(
            v,
            Verdict::Refuse(Refusal::NotSignedByLog(NoteError::BadSignature { .. }))
        ));
    }

    #[test]
    fn several_keys_for_one_origin_any_one_signs() {
        let f = fixture();
        let second = Signer::generate("example.com/log").unwrap();
        let logs = KnownLogs::new([f.signer.verifier_key(), second.verifier_key()]);
        let log = log_of(3, "a");
        let v = decide(&logs, None, &request(0, &log, &second), 1, &f.cosigner);
        assert_eq!(v.status(), 200);
        let stranger = Signer::generate("example.com/log").unwrap();
        let v = decide(&logs, None, &request(0, &log, &stranger), 1, &f.cosigner);
        assert_eq!(v.status(), 403);
    }

    #[test]
    fn old_size_above_the_checkpoint_is_400() {
        let f = fixture();
        let log = log_of(3, "a");
        let req = AddCheckpoint::new(4, vec![], &log.checkpoint(&f.signer)).unwrap();
        let v = decide(&f.logs, None, &req, 1, &f.cosigner);
        assert_eq!(
            v,
            Verdict::Refuse(Refusal::OldSizeTooLarge {
                old_size: 4,
                size: 3
            })
        );
        assert_eq!(v.status(), 400);
    }

    #[test]
    fn old_size_behind_or_ahead_of_the_witness_is_409_with_its_size() {
        let f = fixture();
        let log = log_of(10, "a");
        let state = LogState {
            size: 6,
            root_hash: log_of(6, "a").root(),
        };
        for old in [0u64, 5, 7] {
            let v = decide(
                &f.logs,
                Some(&state),
                &request(old, &log, &f.signer),
                1,
                &f.cosigner,
            );
            assert_eq!(
                v,
                Verdict::Conflict(Conflict::OldSize {
                    old_size: old,
                    witness_size: 6
                })
            );
            assert_eq!(v.status(), 409);
        }
        // A witness that never cosigned holds size 0.
        let v = decide(&f.logs, None, &request(6, &log, &f.signer), 1, &f.cosigner);
        assert_eq!(
            v,
            Verdict::Conflict(Conflict::OldSize {
                old_size: 6,
                witness_size: 0
            })
        );
        assert_eq!(format_size_body(6), "6\n");
        assert_eq!(parse_size_body(b"6\n"), Some(6));
        assert_eq!(parse_size_body(b"06\n"), None);
        assert_eq!(parse_size_body(b"6"), None);
    }

    #[test]
    fn an_inconsistent_checkpoint_is_422() {
        let f = fixture();
        let held = log_of(6, "a");
        let state = LogState {
            size: 6,
            root_hash: held.root(),
        };
        // Another history of 10 records, with its own valid proof from 6.
        let fork = log_of(10, "b");
        let v = decide(
            &f.logs,
            Some(&state),
            &request(6, &fork, &f.signer),
            1,
            &f.cosigner,
        );
        assert!(matches!(
            v,
            Verdict::Refuse(Refusal::BadProof {
                old_size: 6,
                size: 10,
                ..
            })
        ));
        assert_eq!(v.status(), 422);
        // The right history with a truncated proof.
        let mut log = log_of(10, "a");
        log.append(b"x");
        let mut req = request(6, &log, &f.signer);
        req.proof.pop();
        let v = decide(&f.logs, Some(&state), &req, 1, &f.cosigner);
        assert_eq!(v.status(), 422);
        // Old size 0 takes no proof.
        let mut req = request(0, &log, &f.signer);
        req.proof.push(Hash::default());
        assert_eq!(decide(&f.logs, None, &req, 1, &f.cosigner).status(), 422);
    }

    #[test]
    fn a_fork_at_the_held_size_is_409() {
        let f = fixture();
        let held = log_of(6, "a");
        let state = LogState {
            size: 6,
            root_hash: held.root(),
        };
        let fork = log_of(6, "b");
        let v = decide(
            &f.logs,
            Some(&state),
            &request(6, &fork, &f.signer),
            1,
            &f.cosigner,
        );
        assert!(matches!(
            v,
            Verdict::Conflict(Conflict::RootMismatch { size: 6, .. })
        ));
        // The same checkpoint again is cosigned again (a retry).
        let v = decide(
            &f.logs,
            Some(&state),
            &request(6, &held, &f.signer),
            2,
            &f.cosigner,
        );
        assert_eq!(cosigned(v).state, state);
    }

    #[test]
    fn replaying_an_old_checkpoint_does_not_roll_back() {
        let f = fixture();
        let old = log_of(4, "a");
        let state = LogState {
            size: 9,
            root_hash: log_of(9, "a").root(),
        };
        // With its true old size: behind the witness.
        let v = decide(
            &f.logs,
            Some(&state),
            &request(0, &old, &f.signer),
            1,
            &f.cosigner,
        );
        assert_eq!(v.status(), 409);
        // Claiming the witness's size: old above the checkpoint's size.
        let req = AddCheckpoint::new(9, vec![], &old.checkpoint(&f.signer)).unwrap();
        assert_eq!(
            decide(&f.logs, Some(&state), &req, 1, &f.cosigner).status(),
            400
        );
    }

    #[test]
    fn the_clock_out_of_range_is_a_refusal_not_a_panic() {
        let f = fixture();
        let log = log_of(1, "a");
        let v = decide(
            &f.logs,
            None,
            &request(0, &log, &f.signer),
            u64::MAX,
            &f.cosigner,
        );
        assert_eq!(v.status(), 500);
    }

    #[test]
    fn responses_are_checked_against_the_pinned_key() {
        let f = fixture();
        let log = log_of(3, "a");
        let note = log.checkpoint(&f.signer);
        let good = cosigned(decide(
            &f.logs,
            None,
            &request(0, &log, &f.signer),
            5,
            &f.cosigner,
        ));
        let key = f.cosigner.cosigner_key();
        // Another witness's line is ignored; ours is then found.
        let other = Cosigner::generate("witness.example/w2").unwrap();
        let theirs = cosigned(decide(
            &f.logs,
            None,
            &request(0, &log, &f.signer),
            5,
            &other,
        ));
        let both = format!("{}{}", theirs.signatures, good.signatures);
        let a = accept_response(&note, both.as_bytes(), &key).unwrap();
        assert_eq!(a.cosignature.key, key);
        assert_eq!(a.note, format!("{note}{}", good.signatures));
        // Submitting the cosigned note again replaces the earlier line.
        let again = accept_response(&a.note, good.signatures.as_bytes(), &key).unwrap();
        assert_eq!(again.note, a.note);
        // Only the other's line: missing.
        assert!(matches!(
            accept_response(&note, theirs.signatures.as_bytes(), &key),
            Err(ResponseError::Missing { .. })
        ));
        // A cosignature of another checkpoint under our key: invalid.
        let log4 = log_of(4, "a");
        let elsewhere = cosigned(decide(
            &f.logs,
            None,
            &request(0, &log4, &f.signer),
            5,
            &f.cosigner,
        ));
        assert!(matches!(
            accept_response(&note, elsewhere.signatures.as_bytes(), &key),
            Err(ResponseError::Invalid(_))
        ));
        // A blank line smuggling another text is not signature lines.
        let smuggled = format!("\nother\n\n{}", good.signatures);
        assert_eq!(
            accept_response(&note, smuggled.as_bytes(), &key),
            Err(ResponseError::NotSignatureLines)
        );
        assert_eq!(
            accept_response(&note, b"", &key),
            Err(ResponseError::NotSignatureLines)
        );
        assert!(matches!(
            accept_response(&note, b"garbage\n", &key),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn rollback_is_the_largest_witness_size_above_the_local_log() {
        assert_eq!(check_rollback(10, [("w1", 10), ("w2", 3)]), Ok(()));
        assert_eq!(check_rollback(0, []), Ok(()));
        let err = check_rollback(10, [("w1", 12), ("w2", 15), ("w3", 9)]).unwrap_err();
        assert_eq!(
            err,
            Rollback {
                local_size: 10,
                witness: "w2".into(),
                witness_size: 15
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("10") && msg.contains("15") && msg.contains("w2"),
            "{msg}"
        );
    }

    #[test]
    fn known_logs_are_keyed_by_the_key_name() {
        let a = Signer::generate("a.example/log").unwrap();
        let logs = KnownLogs::new([a.verifier_key(), a.verifier_key()]);
        assert_eq!(logs.keys("a.example/log").unwrap().len(), 1);
        assert!(logs.keys("b.example/log").is_none());
        assert_eq!(logs.origins().collect::<Vec<_>>(), ["a.example/log"]);
    }
}
