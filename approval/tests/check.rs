//! The K-of-N check through the crate's public API, one test per refusal,
//! with real Ed25519 signatures (hermetic_tlog::note).

use hermetic_approval::{
    check, content_sha256, statement_of, Action, Content, OwnerSet, OwnerSetError, Reason, Refusal,
    Signer, Statement, StatementFile,
};
use hermetic_tlog::note;

const DEPLOYMENT: &str = "hermetic-0123456789abcdef";
const SECRET: &str = "db-password";

/// A canonical policy (as `change propose policy` writes it).
fn policy() -> String {
    policy_for(SECRET)
}

fn policy_for(name: &str) -> String {
    hermetic_policy::stanza(name, [(0u8, vec![0xab; 48])].into_iter().collect()).unwrap()
}

struct Owners {
    a: Signer,
    b: Signer,
    c: Signer,
    set: OwnerSet,
}

fn owners() -> Owners {
    let a = Signer::generate("alice").unwrap();
    let b = Signer::generate("bob").unwrap();
    let c = Signer::generate("carol").unwrap();
    let set = OwnerSet::new(
        vec![a.verifier_key(), b.verifier_key(), c.verifier_key()],
        2,
    )
    .unwrap();
    Owners { a, b, c, set }
}

fn statement(version: u64, content: &[u8]) -> String {
    Statement::new(DEPLOYMENT, SECRET, Action::Policy, version, content).to_text()
}

fn signed(text: &str, signers: &[&Signer]) -> Vec<u8> {
    note::sign(text, signers).unwrap().into_bytes()
}

fn refused(result: Result<hermetic_approval::Approved, Refusal>) -> Reason {
    match result {
        Ok(a) => panic!("approved: {a:?}"),
        Err(r) => r.reason(),
    }
}

#[test]
fn k_distinct_owners_approve_and_fewer_do_not() {
    let o = owners();
    let content = policy();
    let text = statement(1, content.as_bytes());
    let run = |note: &[u8]| check(note, content.as_bytes(), DEPLOYMENT, SECRET, &o.set, 0);

    // Proposed, nobody signed yet.
    assert_eq!(refused(run(text.as_bytes())), Reason::NotEnoughApprovals);
    // One of two.
    assert_eq!(
        refused(run(&signed(&text, &[&o.a]))),
        Reason::NotEnoughApprovals
    );
    // A twice counts once: two identical lines, and A signing again.
    let once = note::sign(&text, &[&o.a]).unwrap();
    let sig_line = once.rsplit_once("\n\n").unwrap().1;
    let twice = format!("{once}{sig_line}");
    assert_eq!(refused(run(twice.as_bytes())), Reason::NotEnoughApprovals);
    let again = note::add_signatures(once.as_bytes(), &[&o.a]).unwrap();
    assert_eq!(refused(run(again.as_bytes())), Reason::NotEnoughApprovals);
    // The same public key under another name is not another owner.
    let private = o.a.private_key_string();
    let parts: Vec<&str> = private.splitn(5, '+').collect(); // PRIVATE KEY NAME ID B64
    let mut encoded = vec![0x01];
    encoded.extend_from_slice(o.a.verifier_key().public_key());
    let alias = Signer::from_private_key(&format!(
        "PRIVATE+KEY+alias+{:08x}+{}",
        note::key_id("alias", &encoded),
        parts[4]
    ))
    .unwrap();
    assert_eq!(
        alias.verifier_key().public_key(),
        o.a.verifier_key().public_key()
    );
    assert!(matches!(
        OwnerSet::new(vec![o.a.verifier_key(), alias.verifier_key()], 2),
        Err(OwnerSetError::Duplicate(_))
    ));
    assert_eq!(
        refused(run(&signed(&text, &[&o.a, &alias]))),
        Reason::UnknownOwner
    );

    // Two distinct owners: approved, approvers in owner-set order.
    let ok = run(&signed(&text, &[&o.c, &o.a])).unwrap();
    assert_eq!(ok.approvers, vec![o.a.verifier_key(), o.c.verifier_key()]);
    assert_eq!(ok.statement.version, 1);
    assert!(matches!(ok.content, Content::Policy { ref toml, .. } if *toml == content));
    // All three, also fine.
    let all = run(&signed(&text, &[&o.a, &o.b, &o.c])).unwrap();
    assert_eq!(all.approvers.len(), 3);
    // Signatures added one at a time (offline, by each owner) are the same.
    let step = note::add_signatures(&signed(&text, &[&o.b]), &[&o.c]).unwrap();
    assert_eq!(run(step.as_bytes()).unwrap().approvers.len(), 2);
}

#[test]
fn a_stranger_or_a_forged_signature_is_refused() {
    let o = owners();
    let content = policy();
    let text = statement(1, content.as_bytes());
    let run = |note: &[u8]| check(note, content.as_bytes(), DEPLOYMENT, SECRET, &o.set, 0);
    let mallory = Signer::generate("mallory").unwrap();
    // Even with K owners, an extra signer outside the set is refused.
    assert_eq!(
        refused(run(&signed(&text, &[&o.a, &o.b, &mallory]))),
        Reason::UnknownOwner
    );
    // Only strangers.
    assert_eq!(
        refused(run(&signed(&text, &[&mallory]))),
        Reason::UnknownOwner
    );
    // A stranger who reuses an owner's name (different key id).
    let fake_alice = Signer::generate("alice").unwrap();
    assert_eq!(
        refused(run(&signed(&text, &[&o.b, &fake_alice]))),
        Reason::UnknownOwner
    );
    // An owner's line whose signature bytes were altered.
    let good = note::sign(&text, &[&o.a, &o.b]).unwrap();
    let mut parsed = note::parse(good.as_bytes()).unwrap();
    parsed.signatures[0].sig[0] ^= 1;
    let forged = reassemble(&parsed);
    assert_eq!(refused(run(forged.as_bytes())), Reason::BadSignature);
    // Owners' signatures over a different text, moved onto this one.
    let other = statement(2, content.as_bytes());
    let theirs = note::parse(&signed(&other, &[&o.a, &o.b])).unwrap();
    let moved = reassemble(&note::Note {
        text: text.clone(),
        signatures: theirs.signatures,
    });
    assert_eq!(refused(run(moved.as_bytes())), Reason::BadSignature);
}

fn reassemble(n: &note::Note) -> String {
    use base64::Engine as _;
    let mut out = format!("{}\n", n.text);
    for s in &n.signatures {
        let mut raw = s.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&s.sig);
        out.push_str(&format!(
            "\u{2014} {} {}\n",
            s.name,
            base64::engine::general_purpose::STANDARD.encode(raw)
        ));
    }
    out
}

#[test]
fn deployment_secret_version_and_content_are_bound() {
    let o = owners();
    let content = policy();
    let both = |text: &str| signed(text, &[&o.a, &o.b]);

    let other_deployment = Statement::new(
        "hermetic-other",
        SECRET,
        Action::Policy,
        1,
        content.as_bytes(),
    )
    .to_text();
    assert_eq!(
        refused(check(
            &both(&other_deployment),
            content.as_bytes(),
            DEPLOYMENT,
            SECRET,
            &o.set,
            0
        )),
        Reason::WrongDeployment
    );
    let other_secret =
        Statement::new(DEPLOYMENT, "other", Action::Policy, 1, content.as_bytes()).to_text();
    assert_eq!(
        refused(check(
            &both(&other_secret),
            content.as_bytes(),
            DEPLOYMENT,
            SECRET,
            &o.set,
            0
        )),
        Reason::WrongSecret
    );
    // Version: must be above the current one (replays and rollbacks).
    let v3 = both(&statement(3, content.as_bytes()));
    assert!(check(&v3, content.as_bytes(), DEPLOYMENT, SECRET, &o.set, 2).is_ok());
    for current in [3, 4] {
        assert_eq!(
            refused(check(
                &v3,
                content.as_bytes(),
                DEPLOYMENT,
                SECRET,
                &o.set,
                current
            )),
            Reason::StaleVersion
        );
    }
    // Content swapped after signing.
    let swapped = content.replace("ab", "cd");
    assert_eq!(
        refused(check(
            &v3,
            swapped.as_bytes(),
            DEPLOYMENT,
            SECRET,
            &o.set,
            0
        )),
        Reason::ContentMismatch
    );
}

#[test]
fn content_must_fit_the_action() {
    let o = owners();
    let approve = |action: Action, content: &[u8]| {
        let text = Statement::new(DEPLOYMENT, SECRET, action, 1, content).to_text();
        check(
            &signed(&text, &[&o.a, &o.b]),
            content,
            DEPLOYMENT,
            SECRET,
            &o.set,
            0,
        )
    };
    // Policy: valid, fail closed, exactly this secret's stanza.
    let no_set = format!("[secrets.{SECRET}]\nallow_debug = true\n");
    assert_eq!(
        refused(approve(Action::Policy, no_set.as_bytes())),
        Reason::InvalidPolicy
    );
    let other = policy_for("other");
    assert_eq!(
        refused(approve(Action::Policy, other.as_bytes())),
        Reason::InvalidPolicy
    );
    let two = format!("{}{}", policy(), other);
    assert_eq!(
        refused(approve(Action::Policy, two.as_bytes())),
        Reason::InvalidPolicy
    );
    assert_eq!(
        refused(approve(Action::Policy, b"\xff")),
        Reason::InvalidPolicy
    );
    // Owners: the canonical text only.
    let new = OwnerSet::new(vec![o.a.verifier_key()], 1).unwrap();
    let ok = approve(Action::Owners, new.to_text().as_bytes()).unwrap();
    assert_eq!(ok.content, Content::Owners(new.clone()));
    let unsorted = format!(
        "{}\n{}\nthreshold 1\n",
        o.c.verifier_key(),
        o.a.verifier_key()
    );
    assert_eq!(
        refused(approve(Action::Owners, unsorted.as_bytes())),
        Reason::InvalidOwnerSet
    );
    let k0 = new.to_text().replace("threshold 1", "threshold 0");
    assert_eq!(
        refused(approve(Action::Owners, k0.as_bytes())),
        Reason::InvalidOwnerSet
    );
    // Value: a sealed blob (enc, tag and at least one byte).
    assert!(approve(Action::Value, &[7; 49]).is_ok());
    assert_eq!(
        refused(approve(Action::Value, &[7; 48])),
        Reason::InvalidContent
    );
    // Delete: nothing.
    assert_eq!(
        approve(Action::Delete, b"").unwrap().content,
        Content::Delete
    );
    assert_eq!(
        refused(approve(Action::Delete, b"x")),
        Reason::InvalidContent
    );
}

#[test]
fn malformed_input_is_refused_never_panics() {
    let o = owners();
    let text = statement(1, b"");
    let good = signed(&text, &[&o.a, &o.b]);
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        b"\xff\xfe".to_vec(),
        b"hello\n".to_vec(),
        text.replace("version 1", "version 01").into_bytes(),
        format!("{text}\n").into_bytes(),
        format!("{text}\n\u{2014} alice\n").into_bytes(),
        vec![b'a'; 100_000],
    ];
    for cut in [1, 10, good.len() / 2, good.len() - 1] {
        inputs.push(good[..cut].to_vec());
    }
    for input in inputs {
        let r = check(&input, b"", DEPLOYMENT, SECRET, &o.set, 0);
        assert_eq!(
            refused(r),
            Reason::MalformedStatement,
            "{:?}",
            String::from_utf8_lossy(&input)
        );
        assert!(statement_of(&input).is_err());
    }
}

#[test]
fn owner_sets_are_validated_and_canonical() {
    let o = owners();
    let keys = vec![o.c.verifier_key(), o.a.verifier_key(), o.b.verifier_key()];
    let set = OwnerSet::new(keys.clone(), 3).unwrap();
    // Sorted, one key per line, then the threshold.
    let text = set.to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0] < lines[1] && lines[1] < lines[2]);
    assert_eq!(lines[3], "threshold 3");
    assert_eq!(OwnerSet::parse(&text).unwrap(), set);
    let strings: Vec<String> = keys.iter().map(ToString::to_string).collect();
    assert_eq!(OwnerSet::from_strings(&strings, 3).unwrap(), set);

    assert_eq!(OwnerSet::new(vec![], 1), Err(OwnerSetError::Count(0)));
    assert!(matches!(
        OwnerSet::new(keys.clone(), 0),
        Err(OwnerSetError::Threshold { .. })
    ));
    assert!(matches!(
        OwnerSet::new(keys.clone(), 4),
        Err(OwnerSetError::Threshold { .. })
    ));
    let dup = vec![o.a.verifier_key(), o.a.verifier_key()];
    assert!(matches!(
        OwnerSet::new(dup, 1),
        Err(OwnerSetError::Duplicate(_))
    ));
    let many: Vec<_> = (0..33)
        .map(|i| Signer::generate(&format!("o{i}")).unwrap().verifier_key())
        .collect();
    assert_eq!(
        OwnerSet::new(many.clone(), 1),
        Err(OwnerSetError::Count(33))
    );
    assert!(OwnerSet::new(many[..32].to_vec(), 32).is_ok());
    for name in [
        "n".repeat(65),
        "a\"b".into(),
        "a\\b".into(),
        "caf\u{e9}".into(),
    ] {
        let key = Signer::generate(&name).unwrap().verifier_key();
        assert_eq!(
            OwnerSet::new(vec![key], 1),
            Err(OwnerSetError::BadName),
            "{name}"
        );
    }
    let longest = Signer::generate(&"~".repeat(64)).unwrap().verifier_key();
    assert!(OwnerSet::new(vec![longest], 1).is_ok());
    assert!(matches!(
        OwnerSet::from_strings(&["not a key"], 1),
        Err(OwnerSetError::BadKey { line: 1 })
    ));
    for bad in [
        text.trim_end().to_owned(),
        text.replace("threshold 3", "threshold 03"),
        text.replace("threshold 3\n", ""),
        format!(
            "{}\n{}",
            lines[1],
            text.replacen(&format!("{}\n", lines[1]), "", 1)
        ),
        format!("{}\n{text}", lines[0]),
        text.replace('\n', "\r\n"),
    ] {
        assert!(OwnerSet::parse(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_statement_file_keeps_content_in_its_field() {
    let content = policy();
    let file = StatementFile {
        statement: statement(1, content.as_bytes()),
        content: Some(content.clone()),
        sealed_value: None,
    };
    let json = file.to_json();
    let back = StatementFile::from_json(json.as_bytes()).unwrap();
    assert_eq!(back, file);
    assert_eq!(
        back.content_bytes(Action::Policy).unwrap(),
        content.as_bytes()
    );
    for action in [Action::Value, Action::Delete] {
        assert_eq!(
            file.content_bytes(action).unwrap_err().reason(),
            Reason::MalformedStatement
        );
    }
    let sealed = StatementFile {
        content: None,
        sealed_value: Some(hermetic_approval::SealedValueB64::new(&[1; 32], &[2; 20])),
        ..file.clone()
    };
    let bytes = sealed.content_bytes(Action::Value).unwrap();
    assert_eq!(bytes.len(), 52);
    assert_eq!(
        content_sha256(&bytes),
        content_sha256(&[[1u8; 32].as_slice(), &[2; 20]].concat())
    );
    assert!(StatementFile::from_json(
        br#"{"statement":"x","content":null,"sealed_value":null,"value":"x"}"#
    )
    .is_err());
    assert!(StatementFile::from_json(&vec![b' '; 70_000]).is_err());
}
