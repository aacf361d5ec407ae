//! C2SP tlog-proof files: the spec's shape, round trips, and refusals.

use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::merkle::{prove_record, record_hash, stored_hashes, tree_hash, Hash};
use hermetic_tlog::note::Signer;
use hermetic_tlog::proof::{TlogProof, TlogProofError, HEADER};

fn log(n: u64, signer: &Signer) -> (Vec<Hash>, String) {
    let mut hashes = Vec::new();
    for i in 0..n {
        let new = stored_hashes(i, format!("leaf {i}").as_bytes(), &hashes).unwrap();
        hashes.extend(new);
    }
    let note = Checkpoint {
        origin: signer.name().into(),
        size: n,
        root_hash: tree_hash(n, &hashes).unwrap(),
        extensions: vec![],
    }
    .sign(signer)
    .unwrap();
    (hashes, note)
}

fn proof_of(i: u64, n: u64, signer: &Signer) -> TlogProof {
    let (hashes, note) = log(n, signer);
    TlogProof {
        extra: Some(format!("leaf {i}").into_bytes()),
        index: i,
        proof: prove_record(n, i, &hashes).unwrap(),
        checkpoint: note,
    }
}

#[test]
fn a_proof_round_trips_and_verifies() {
    let signer = Signer::generate("example.com/log").unwrap();
    let p = proof_of(5, 13, &signer);
    let text = p.to_text();
    assert!(text.starts_with(&format!("{HEADER}\nextra ")));
    assert!(text.contains("\nindex 5\n"));
    let parsed = TlogProof::parse(&text).unwrap();
    assert_eq!(parsed, p);
    let (cp, record) = parsed.verify(&signer.verifier_key()).unwrap();
    assert_eq!((cp.size, record), (13, &b"leaf 5"[..]));
    // A one-leaf tree has an empty proof, and no extra line is allowed.
    let p = proof_of(0, 1, &signer);
    assert!(p.proof.is_empty());
    TlogProof::parse(&p.to_text())
        .unwrap()
        .verify(&signer.verifier_key())
        .unwrap();
    let mut no_extra = p.clone();
    no_extra.extra = None;
    let parsed = TlogProof::parse(&no_extra.to_text()).unwrap();
    assert_eq!(parsed.extra, None);
    assert_eq!(
        parsed.verify(&signer.verifier_key()).unwrap_err(),
        TlogProofError::NoRecord
    );
}

#[test]
fn wrong_records_keys_and_syntax_are_refused() {
    let signer = Signer::generate("example.com/log").unwrap();
    let key = signer.verifier_key();
    let p = proof_of(5, 13, &signer);
    let mut other = p.clone();
    other.extra = Some(b"leaf 6".to_vec());
    assert!(matches!(
        other.verify(&key),
        Err(TlogProofError::Inclusion(_))
    ));
    let mut moved = p.clone();
    moved.index = 4;
    assert!(matches!(
        moved.verify(&key),
        Err(TlogProofError::Inclusion(_))
    ));
    let stranger = Signer::generate("example.com/log").unwrap();
    assert!(matches!(
        p.verify(&stranger.verifier_key()),
        Err(TlogProofError::Checkpoint(_))
    ));
    assert_eq!(
        record_hash(b"leaf 5"),
        record_hash(p.extra.as_deref().unwrap())
    );
    let text = p.to_text();
    for bad in [
        text.replacen(HEADER, "c2sp.org/tlog-proof@v2", 1),
        text.replace("\nindex 5\n", "\nindex 05\n"),
        text.replace("\nindex 5\n", "\nindex -5\n"),
        text.replace("\nindex 5\n", "\n"),
        text.replacen("\n\n", "\n", 1),
        text.replacen("\nextra ", "\nextra !", 1),
        text.replace("\nindex 5\n", "\nindex 5\nnot-a-hash\n"),
    ] {
        assert!(
            matches!(TlogProof::parse(&bad), Err(TlogProofError::Malformed(_))),
            "{bad}"
        );
    }
}
