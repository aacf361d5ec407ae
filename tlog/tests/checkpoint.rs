//! Checkpoints and cosignatures through the public API: the C2SP examples,
//! every malformed case, and a whole witnessed-log flow with its attacks.

use hermetic_tlog::checkpoint::{self, Checkpoint, CheckpointError};
use hermetic_tlog::cosignature::{
    self, CosignatureError, Cosigner, CosignerKey, ALG_COSIGNATURE_V1, MAX_TIMESTAMP,
};
use hermetic_tlog::merkle::{self, Hash};
use hermetic_tlog::note::{self, NoteError, Signer};

// c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature, their examples.
const SPEC_TEXT: &str =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
const SPEC_NOTE: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\
— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

#[test]
fn spec_example_checkpoint() {
    let c = Checkpoint::parse(SPEC_TEXT).unwrap();
    assert_eq!(c.origin, "example.com/behind-the-sofa");
    assert_eq!(c.size, 20852163);
    assert_eq!(
        c.root_hash.to_string(),
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    );
    assert!(c.extensions.is_empty());
    assert_eq!(c.to_text().unwrap(), SPEC_TEXT);
}

#[test]
fn spec_example_cosignature_line() {
    // The example witness line carries the timestamp of the spec's example
    // signed message ("time 1679315147").
    let parsed = note::parse(SPEC_NOTE.as_bytes()).unwrap();
    assert_eq!(parsed.text, SPEC_TEXT);
    let w = &parsed.signatures[1];
    assert_eq!(w.name, "witness.example.com/w1");
    assert_eq!(w.key_id, 0x8d66cf3f);
    let (ts, ed) = cosignature::split_signature(&w.sig).unwrap();
    assert_eq!(ts, 1679315147);
    assert_eq!(ed.len(), 64);
    assert_eq!(
        cosignature::signed_message(SPEC_TEXT, ts),
        "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
    // The log's own line is a plain 64-byte Ed25519 signature.
    assert_eq!(
        cosignature::split_signature(&parsed.signatures[0].sig),
        None
    );
    // Verifying against an unrelated witness ignores both lines.
    let other = Cosigner::generate("witness.example.com/w1").unwrap();
    assert_eq!(
        cosignature::verify(SPEC_NOTE.as_bytes(), &[other.cosigner_key()]).unwrap(),
        vec![]
    );
}

#[test]
fn extensions_and_empty_tree() {
    let c = Checkpoint {
        origin: "hermetic.example/log".into(),
        size: 0,
        root_hash: merkle::empty_tree_hash(),
        extensions: vec!["ext one".into(), "— two".into()],
    };
    let text = c.to_text().unwrap();
    assert_eq!(
        text,
        "hermetic.example/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next one\n— two\n"
    );
    assert_eq!(Checkpoint::parse(&text).unwrap(), c);
}

#[test]
fn malformed_checkpoints() {
    let h = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    let cases: Vec<(String, CheckpointError)> = vec![
        (format!("o\n1\n{h}"), CheckpointError::NoFinalNewline),
        ("o\n1\n".into(), CheckpointError::TooFewLines),
        ("".into(), CheckpointError::NoFinalNewline),
        ("\n".into(), CheckpointError::TooFewLines),
        (
            format!("\n1\n{h}\n"),
            CheckpointError::EmptyLine { line: 1 },
        ),
        (
            format!("o\n\n{h}\n"),
            CheckpointError::EmptyLine { line: 2 },
        ),
        ("o\n1\n\n".into(), CheckpointError::EmptyLine { line: 3 }),
        (
            format!("o\n1\n{h}\n\n"),
            CheckpointError::EmptyLine { line: 4 },
        ),
        (
            format!("o\n1\n{h}\nx\n\ny\n"),
            CheckpointError::EmptyLine { line: 5 },
        ),
        (
            format!("o\u{7}\n1\n{h}\n"),
            CheckpointError::ControlCharacter { line: 1 },
        ),
        (
            format!("o\n1\n{h}\nx\ty\n"),
            CheckpointError::ControlCharacter { line: 4 },
        ),
        (format!("o\n01\n{h}\n"), CheckpointError::BadSize),
        (format!("o\n00\n{h}\n"), CheckpointError::BadSize),
        (format!("o\n+1\n{h}\n"), CheckpointError::BadSize),
        (format!("o\n-1\n{h}\n"), CheckpointError::BadSize),
        (format!("o\n 1\n{h}\n"), CheckpointError::BadSize),
        (format!("o\n1 \n{h}\n"), CheckpointError::BadSize),
        (format!("o\n0x10\n{h}\n"), CheckpointError::BadSize),
        (format!("o\n1e3\n{h}\n"), CheckpointError::BadSize),
        (
            format!("o\n18446744073709551616\n{h}\n"),
            CheckpointError::BadSize,
        ),
        (
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2\n".into(),
            CheckpointError::BadRootHash,
        ),
        (
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".into(),
            CheckpointError::BadRootHash,
        ),
        (
            "o\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n".into(),
            CheckpointError::BadRootHash,
        ),
        (format!("o\n1\n{h} \n"), CheckpointError::BadRootHash),
        ("o\n1\nAAAA\n".into(), CheckpointError::BadRootHash),
    ];
    for (text, want) in cases {
        assert_eq!(Checkpoint::parse(&text), Err(want), "{text:?}");
    }
    // The largest size is fine; to_text refuses what parse would refuse.
    let max = format!("o\n18446744073709551615\n{h}\n");
    assert_eq!(Checkpoint::parse(&max).unwrap().size, u64::MAX);
    let mut c = Checkpoint::parse(SPEC_TEXT).unwrap();
    c.origin = "two\nlines".into();
    assert_eq!(
        c.to_text(),
        Err(CheckpointError::ControlCharacter { line: 1 })
    );
    c.origin = String::new();
    assert_eq!(c.to_text(), Err(CheckpointError::EmptyLine { line: 1 }));
    c.origin = "o".into();
    c.extensions = vec!["a".into(), String::new()];
    assert_eq!(c.to_text(), Err(CheckpointError::EmptyLine { line: 5 }));
}

fn leaf(i: u64) -> Vec<u8> {
    format!("release record {i}\n").into_bytes()
}

struct Log {
    signer: Signer,
    stored: Vec<Hash>,
    size: u64,
}

impl Log {
    fn new() -> Log {
        Log {
            signer: Signer::generate("hermetic.example/log").unwrap(),
            stored: Vec::new(),
            size: 0,
        }
    }
    fn append(&mut self, n: u64) {
        for _ in 0..n {
            let new = merkle::stored_hashes(self.size, &leaf(self.size), &self.stored).unwrap();
            self.stored.extend(new);
            self.size += 1;
        }
    }
    fn checkpoint(&self) -> String {
        Checkpoint {
            origin: "hermetic.example/log".into(),
            size: self.size,
            root_hash: merkle::tree_hash(self.size, &self.stored).unwrap(),
            extensions: vec![],
        }
        .sign(&self.signer)
        .unwrap()
    }
}

#[test]
fn witnessed_log_flow() {
    let mut log = Log::new();
    let log_key = log.signer.verifier_key();
    let witnesses: Vec<Cosigner> = (1..=3)
        .map(|i| Cosigner::generate(&format!("witness.example/w{i}")).unwrap())
        .collect();
    let witness_keys: Vec<CosignerKey> = witnesses.iter().map(Cosigner::cosigner_key).collect();

    log.append(10);
    let first = log.checkpoint();
    let old = checkpoint::open(first.as_bytes(), "hermetic.example/log", &log_key).unwrap();
    log.append(7);
    let mut second = log.checkpoint();
    let new = checkpoint::open(second.as_bytes(), "hermetic.example/log", &log_key).unwrap();

    // Each witness checks consistency from what it saw, then cosigns.
    let proof = merkle::prove_tree(new.size, old.size, &log.stored).unwrap();
    for (i, w) in witnesses.iter().enumerate().take(2) {
        merkle::check_tree(&proof, new.size, &new.root_hash, old.size, &old.root_hash).unwrap();
        second = cosignature::cosign(second.as_bytes(), w, 1_700_000_000 + i as u64).unwrap();
    }
    // The log's signature still verifies after cosigning.
    assert_eq!(
        checkpoint::open(second.as_bytes(), "hermetic.example/log", &log_key).unwrap(),
        new
    );
    let cosigs = cosignature::verify(second.as_bytes(), &witness_keys).unwrap();
    assert_eq!(cosigs.len(), 2);
    assert_eq!(cosigs[0].key, witness_keys[0]);
    assert_eq!(cosigs[0].timestamp, 1_700_000_000);
    assert_eq!(cosigs[1].timestamp, 1_700_000_001);

    // A client checks a record's inclusion under the witnessed checkpoint.
    let index = 12;
    let inclusion = merkle::prove_record(new.size, index, &log.stored).unwrap();
    merkle::check_record(
        &inclusion,
        new.size,
        &new.root_hash,
        index,
        &merkle::record_hash(&leaf(index)),
    )
    .unwrap();

    // Cosigning again replaces the witness's line (no double count).
    let again = cosignature::cosign(second.as_bytes(), &witnesses[0], 1_800_000_000).unwrap();
    let cosigs = cosignature::verify(again.as_bytes(), &witness_keys).unwrap();
    assert_eq!(cosigs.len(), 2);
    assert_eq!(cosigs[1].timestamp, 1_800_000_000);
    assert_eq!(note::parse(again.as_bytes()).unwrap().signatures.len(), 3);

    // Attacks. A cosignature moved onto another checkpoint (a split view
    // of the same size) fails.
    let mut forked = Log::new();
    forked.signer = Signer::from_private_key(&log.signer.private_key_string()).unwrap();
    forked.append(16);
    forked
        .stored
        .extend(merkle::stored_hashes(16, b"other", &forked.stored).unwrap());
    forked.size += 1;
    let fork_cp = forked.checkpoint();
    let witness_lines: String = second
        .lines()
        .filter(|l| l.starts_with("— witness"))
        .map(|l| format!("{l}\n"))
        .collect();
    let transplanted = format!("{fork_cp}{witness_lines}");
    assert!(matches!(
        cosignature::verify(transplanted.as_bytes(), &witness_keys),
        Err(CosignatureError::BadCosignature { .. })
    ));
    // A changed timestamp fails.
    let w1 = witness_keys[0].clone();
    let parsed = note::parse(second.as_bytes()).unwrap();
    let line = parsed
        .signatures
        .iter()
        .find(|s| s.name == w1.name())
        .unwrap();
    let mut sig = line.sig.clone();
    sig[7] ^= 1;
    assert_eq!(w1.verify(&parsed.text, &line.sig), Some(1_700_000_000));
    assert_eq!(w1.verify(&parsed.text, &sig), None);
    assert_eq!(w1.verify(&parsed.text, &sig[..71]), None);
    // A plain note signature (type 0x01) by the witness's own Ed25519 key,
    // put under the witness's name and cosigner key id, is not a
    // cosignature: it signs the text without the cosignature/v1 header.
    let same_seed = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let skey = witnesses[2].private_key_string();
        let mut raw = b64.decode(skey.splitn(5, '+').last().unwrap()).unwrap();
        raw[0] = 0x01;
        let name = witnesses[2].name();
        let mut pk = vec![0x01];
        pk.extend_from_slice(witness_keys[2].public_key());
        let id = note::key_id(name, &pk);
        Signer::from_private_key(&format!("PRIVATE+KEY+{name}+{id:08x}+{}", b64.encode(raw)))
            .unwrap()
    };
    let plain = note::parse(note::sign(&parsed.text, &[&same_seed]).unwrap().as_bytes())
        .unwrap()
        .signatures
        .remove(0);
    let disguised = note::Signature {
        name: witnesses[2].name().into(),
        key_id: witnesses[2].key_id(),
        sig: plain.sig,
    };
    let disguised_note = format!("{second}— {} {}\n", disguised.name, {
        use base64::Engine;
        let mut raw = disguised.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&disguised.sig);
        base64::engine::general_purpose::STANDARD.encode(raw)
    });
    assert_eq!(
        cosignature::verify(disguised_note.as_bytes(), &witness_keys),
        Err(CosignatureError::BadCosignature {
            name: witnesses[2].name().into(),
            key_id: witnesses[2].key_id()
        })
    );
    // The log's signature is required and checked; the origin too.
    assert!(matches!(
        checkpoint::open(second.as_bytes(), "hermetic.example/other", &log_key),
        Err(CheckpointError::WrongOrigin { .. })
    ));
    let stranger = Signer::generate("hermetic.example/log").unwrap();
    assert!(matches!(
        checkpoint::open(
            second.as_bytes(),
            "hermetic.example/log",
            &stranger.verifier_key()
        ),
        Err(CheckpointError::Note(NoteError::NoKnownSignature))
    ));
    let tampered = second.replacen("\n17\n", "\n18\n", 1);
    assert!(matches!(
        checkpoint::open(tampered.as_bytes(), "hermetic.example/log", &log_key),
        Err(CheckpointError::Note(NoteError::BadSignature { .. }))
    ));
    assert!(matches!(
        cosignature::verify(tampered.as_bytes(), &witness_keys),
        Err(CosignatureError::BadCosignature { .. })
    ));
}

#[test]
fn cosign_refuses_non_checkpoints_and_out_of_range_time() {
    let log = Signer::generate("log").unwrap();
    let w = Cosigner::generate("w").unwrap();
    let not_cp = note::sign("just text\n", &[&log]).unwrap();
    assert!(matches!(
        cosignature::cosign(not_cp.as_bytes(), &w, 1),
        Err(CosignatureError::Checkpoint(CheckpointError::TooFewLines))
    ));
    assert!(matches!(
        cosignature::verify(not_cp.as_bytes(), &[w.cosigner_key()]),
        Err(CosignatureError::Checkpoint(_))
    ));
    let cp = Checkpoint::parse(SPEC_TEXT).unwrap().sign(&log).unwrap();
    assert_eq!(
        cosignature::cosign(cp.as_bytes(), &w, MAX_TIMESTAMP + 1),
        Err(CosignatureError::TimestampOutOfRange {
            timestamp: MAX_TIMESTAMP + 1
        })
    );
    let at_max = cosignature::cosign(cp.as_bytes(), &w, MAX_TIMESTAMP).unwrap();
    assert_eq!(
        cosignature::verify(at_max.as_bytes(), &[w.cosigner_key()]).unwrap()[0].timestamp,
        MAX_TIMESTAMP
    );
    assert!(matches!(
        cosignature::cosign(b"not a note", &w, 1),
        Err(CosignatureError::Note(_))
    ));
}

#[test]
fn a_timestamp_above_2_63_is_refused_even_if_signed() {
    // Forge-free check: a witness that signs a timestamp >= 2^63 (against
    // the spec) does not get it accepted.
    let w = Cosigner::generate("w").unwrap();
    let log = Signer::generate("log").unwrap();
    let cp = Checkpoint::parse(SPEC_TEXT).unwrap().sign(&log).unwrap();
    let ok = cosignature::cosign(cp.as_bytes(), &w, 5).unwrap();
    let mut sigs = note::parse(ok.as_bytes()).unwrap().signatures;
    let line = sigs.pop().unwrap();
    let (ts, _) = cosignature::split_signature(&line.sig).unwrap();
    assert_eq!(ts, 5);
    let mut high = line.sig.clone();
    high[0] = 0x80;
    assert_eq!(w.cosigner_key().verify(SPEC_TEXT, &high), None);
}

#[test]
fn cosigner_keys() {
    let w = Cosigner::generate("witness.example/w").unwrap();
    let k = w.cosigner_key();
    let s = k.to_string();
    // 0x04 as the first base64 byte makes the key data start with "B".
    assert!(s.starts_with(&format!("witness.example/w+{:08x}+B", k.key_id())));
    assert_eq!(s.parse::<CosignerKey>().unwrap(), k);
    assert_eq!(
        CosignerKey::new_ed25519("witness.example/w", k.public_key()).unwrap(),
        k
    );
    // Key id over type 0x04: a note verifier key for the same Ed25519 key
    // has another id, and neither string parses as the other kind.
    let as_note = note::VerifierKey::new_ed25519("witness.example/w", k.public_key()).unwrap();
    assert_ne!(as_note.key_id(), k.key_id());
    assert_eq!(
        s.parse::<note::VerifierKey>(),
        Err(NoteError::UnknownAlgorithm {
            alg: ALG_COSIGNATURE_V1
        })
    );
    assert_eq!(
        as_note.to_string().parse::<CosignerKey>(),
        Err(NoteError::UnknownAlgorithm { alg: 0x01 })
    );
    // Private key round trip, and the type byte is enforced both ways.
    let again = Cosigner::from_private_key(&w.private_key_string()).unwrap();
    assert_eq!(again.cosigner_key(), k);
    assert!(matches!(
        note::Signer::from_private_key(&w.private_key_string()),
        Err(NoteError::UnknownAlgorithm { alg: 0x04 })
    ));
    let shown = format!("{w:?}");
    assert!(shown.contains("redacted") && !shown.contains(&w.private_key_string()[12..]));
}

#[test]
fn ambiguous_and_duplicate_witness_lines() {
    // Two different keys whose ids collide under one name (found by
    // search over 32-bit ids): a line by that name and id is ambiguous.
    let mut seen = std::collections::HashMap::new();
    let (k1, k2) = (0u64..)
        .find_map(|i| {
            let mut pk = [0u8; 32];
            pk[..8].copy_from_slice(&i.to_le_bytes());
            let k = CosignerKey::new_ed25519("w", &pk).unwrap();
            seen.insert(k.key_id(), k.clone()).map(|first| (first, k))
        })
        .unwrap();
    let log0 = Signer::generate("log").unwrap();
    let cp0 = Checkpoint::parse(SPEC_TEXT).unwrap().sign(&log0).unwrap();
    let fake = format!("{cp0}— w {}\n", {
        use base64::Engine;
        let mut raw = k1.key_id().to_be_bytes().to_vec();
        raw.extend_from_slice(&[0u8; 72]);
        base64::engine::general_purpose::STANDARD.encode(raw)
    });
    assert_eq!(
        cosignature::verify(fake.as_bytes(), &[k1.clone(), k2]),
        Err(CosignatureError::Note(NoteError::AmbiguousKey {
            name: "w".into(),
            key_id: k1.key_id()
        }))
    );

    let log = Signer::generate("log").unwrap();
    let w = Cosigner::generate("w").unwrap();
    let cp = Checkpoint::parse(SPEC_TEXT).unwrap().sign(&log).unwrap();
    let one = cosignature::cosign(cp.as_bytes(), &w, 7).unwrap();
    let line = one.lines().last().unwrap();
    // The same line twice counts once.
    let twice = format!("{one}{line}\n");
    assert_eq!(
        cosignature::verify(twice.as_bytes(), &[w.cosigner_key(), w.cosigner_key()])
            .unwrap()
            .len(),
        1
    );
}
