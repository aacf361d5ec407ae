//! Owner-approved changes on hostile bytes: the change statement, the
//! owner set text, the statement file (the body of a change submission)
//! and the K-of-N check. Parsers accept only canonical text (parse then
//! write gives the input back), and the check never approves a change
//! without the signatures of K owners over exactly the approved statement.
#![no_main]

use std::sync::OnceLock;

use hermetic_approval::{
    check, statement_of, Action, Content, OwnerSet, Signer, Statement, StatementFile,
};
use hermetic_tlog::note;
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

/// Two owners with fixed keys (seeds 1… and 2…), so that seeds signed by
/// them reach the signature and threshold paths run after run.
fn owners() -> &'static [Signer; 2] {
    static O: OnceLock<[Signer; 2]> = OnceLock::new();
    O.get_or_init(|| {
        [
            Signer::from_seed("alice", Zeroizing::new([1; 32])).unwrap(),
            Signer::from_seed("bob", Zeroizing::new([2; 32])).unwrap(),
        ]
    })
}

/// The owner sets the check runs against: 1 of {alice} and 2 of {alice, bob}.
fn sets() -> &'static [OwnerSet; 2] {
    static S: OnceLock<[OwnerSet; 2]> = OnceLock::new();
    S.get_or_init(|| {
        let [a, b] = owners();
        [
            OwnerSet::new(vec![a.verifier_key()], 1).unwrap(),
            OwnerSet::new(vec![a.verifier_key(), b.verifier_key()], 2).unwrap(),
        ]
    })
}

fn check_note(note: &[u8], content: &[u8]) {
    let Ok(statement) = statement_of(note) else {
        return;
    };
    for set in sets() {
        for current in [0, statement.version.saturating_sub(1)] {
            let Ok(approved) = check(
                note,
                content,
                &statement.deployment,
                &statement.secret,
                set,
                current,
            ) else {
                continue;
            };
            // Approved: K distinct owners, each of whose signature over
            // this very statement text verifies; a newer version; the
            // content's hash as named.
            assert!(approved.approvers.len() >= set.threshold() as usize);
            let opened = note::open(note, &approved.approvers)
                .expect("approved, yet no approver's signature verifies");
            for key in &approved.approvers {
                assert!(set.contains(key));
                assert!(
                    opened.verified.contains(key),
                    "an approver whose signature does not verify"
                );
            }
            assert_eq!(opened.text, approved.statement.to_text());
            assert!(approved.statement.version > current);
            assert_eq!(
                approved.statement.content_sha256,
                hermetic_approval::content_sha256(content)
            );
            // The same statement for another deployment or secret is refused.
            let other = format!("{}x", approved.statement.deployment);
            assert!(check(note, content, &other, &statement.secret, set, current).is_err());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(s) = Statement::parse(text) {
            assert_eq!(s.to_text(), text, "a non-canonical statement parsed");
        }
        if let Ok(set) = OwnerSet::parse(text) {
            assert_eq!(set.to_text(), text, "a non-canonical owner set parsed");
            assert_eq!(OwnerSet::parse(&set.to_text()).unwrap(), set);
        }
        if let Ok(action) = text.parse::<Action>() {
            assert_eq!(action.as_str(), text);
        }
    }
    for action in Action::ALL {
        if let Ok(content) = Content::decode(action, "db-password", data) {
            match content {
                Content::Policy { toml, .. } => assert_eq!(toml.as_bytes(), data),
                Content::Owners(set) => assert_eq!(set.to_text().as_bytes(), data),
                Content::Value { sealed } => assert_eq!(sealed, data),
                Content::Delete => assert!(data.is_empty()),
            }
        }
    }
    // A change submission's body.
    if let Ok(file) = StatementFile::from_json(data) {
        assert_eq!(
            StatementFile::from_json(file.to_json().as_bytes()).unwrap(),
            file
        );
        if let Ok(statement) = statement_of(file.statement.as_bytes()) {
            if let Ok(content) = file.content_bytes(statement.action) {
                check_note(file.statement.as_bytes(), &content);
            }
        }
    }
    // The raw note with the empty content (a delete's).
    check_note(data, &[]);
});
