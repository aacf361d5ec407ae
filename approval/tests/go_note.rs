//! A real change statement, signed by several owners as `change sign` signs
//! it, opens with Go's `golang.org/x/mod/sumdb/note.Open` (the reference the
//! C2SP signed-note format comes from), and Go sees exactly the owners our
//! check counts. Reuses hermetic-tlog's Go program (`tlog/tests/go/main.go`),
//! built offline from Debian's golang-golang-x-mod-dev source. Without `go`
//! or that source: `skipping: go reference not found` (a failure under
//! `CI=true`).

use hermetic_approval::{check, Action, OwnerSet, Signer, Statement};
use hermetic_testkit::go::GoRef;
use hermetic_tlog::note;
use serde_json::{json, Value};

fn go_ref() -> Option<&'static GoRef> {
    GoRef::get(env!("CARGO_TARGET_TMPDIR"), "tlogref-approval")
}

fn go(bin: &GoRef, requests: Value) -> Vec<Value> {
    bin.run(&requests)
}

#[test]
fn a_signed_statement_opens_with_go_note_open() {
    let Some(bin) = go_ref() else { return };
    let owners: Vec<Signer> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| Signer::generate(n).unwrap())
        .collect();
    let set = OwnerSet::new(owners.iter().map(Signer::verifier_key).collect(), 2).unwrap();
    let content = set.to_text();
    let text = Statement::new(
        "hermetic-0123456789abcdef",
        "db-password",
        Action::Owners,
        7,
        content.as_bytes(),
    )
    .to_text();
    // Signed offline, one owner at a time, as `change sign` does.
    let signed = note::sign(&text, &[&owners[0]]).unwrap();
    let signed = note::add_signatures(signed.as_bytes(), &[&owners[2]]).unwrap();
    let ours = check(
        signed.as_bytes(),
        content.as_bytes(),
        "hermetic-0123456789abcdef",
        "db-password",
        &set,
        6,
    )
    .unwrap();

    let vkeys: Vec<String> = set.owners().iter().map(ToString::to_string).collect();
    let answers = go(
        bin,
        json!([
            {"op": "open", "note": signed, "vkeys": vkeys},
            {"op": "open", "note": signed.replacen("version 7", "version 8", 1), "vkeys": vkeys},
        ]),
    );
    let opened = &answers[0];
    assert!(opened.get("error").is_none(), "{opened}");
    assert_eq!(opened["text"], text.as_str());
    let go_verified: Vec<(String, u64)> = opened["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["hash"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut ours: Vec<(String, u64)> = ours
        .approvers
        .iter()
        .map(|k| (k.name().to_owned(), u64::from(k.key_id())))
        .collect();
    ours.sort();
    let mut theirs = go_verified.clone();
    theirs.sort();
    assert_eq!(theirs, ours);
    // A statement altered after signing fails in Go too.
    assert!(answers[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid signature"));
}
