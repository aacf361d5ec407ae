//! `hermetic-verifier log verify`: exit 0 on an intact chain; exit 1 naming
//! the record when one is modified, deleted or cut off the end.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hermetic_verifier::log::{AuditLog, Entry, SecretRef, Who, HEAD_FILE, LOG_FILE};

fn write_log(dir: &Path, records: u64) {
    let mut log = AuditLog::open(dir).unwrap();
    for i in 1..=records {
        log.append(
            Entry {
                action: "secret_put".into(),
                verdict: "done".into(),
                reason: None,
                secrets: vec![SecretRef {
                    name: format!("s{i}"),
                    version: Some(i),
                }],
                who: Who {
                    admin: Some("0123456789abcdef:bootstrap".into()),
                    ..Who::default()
                },
                ..Entry::default()
            },
            Duration::from_secs(1_800_000_000 + i),
        )
        .unwrap();
    }
}

fn verify(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(["log", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(LOG_FILE))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(dir: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(dir.join(LOG_FILE), text).unwrap();
}

#[test]
fn intact_log_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5);
    let (code, out) = verify(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 5 records"), "{out}");
}

#[test]
fn a_modified_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5);
    let mut l = lines(dir.path());
    assert!(l[2].contains("\"name\":\"s3\""));
    l[2] = l[2].replace("\"name\":\"s3\"", "\"name\":\"s9\"");
    write_lines(dir.path(), &l);
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record 3 (line 3)"), "{out}");
    assert!(out.contains("modified"), "{out}");
}

#[test]
fn a_deleted_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5);
    let mut l = lines(dir.path());
    l.remove(3); // record 4
    write_lines(dir.path(), &l);
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record 4 is missing"), "{out}");
}

#[test]
fn records_cut_off_the_end_are_caught_by_the_head() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5);
    let l = lines(dir.path());
    write_lines(dir.path(), &l[..3]);
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("records 4..=5 are missing"), "{out}");

    // Without the head, the cut would go unnoticed: the head is required.
    std::fs::remove_file(dir.path().join(HEAD_FILE)).unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing"), "{out}");
}

#[test]
fn a_record_rehashed_after_editing_still_breaks_the_chain() {
    // An editor who recomputes the edited record's own hash is still caught
    // by the next record's `prev`.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3);
    let mut l = lines(dir.path());
    let mut line: serde_json::Value = serde_json::from_str(&l[1]).unwrap();
    line["record"]["entry"]["secrets"][0]["name"] = "evil".into();
    let record: hermetic_verifier::log::Record =
        serde_json::from_value(line["record"].clone()).unwrap();
    let json = serde_json::to_vec(&record).unwrap();
    line["hash"] = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json)).into();
    l[1] = serde_json::to_string(&line).unwrap();
    write_lines(dir.path(), &l);
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record 3 (line 3)"), "{out}");
    assert!(out.contains("prev hash"), "{out}");
}

#[test]
fn a_missing_log_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _) = verify(&dir.path().join("nope"));
    assert_eq!(code, 2);
}

#[test]
fn a_chain_rewritten_consistently_is_caught_by_the_head() {
    // Rewrite record 2 and re-chain everything after it: every hash and prev
    // is consistent again, but the head still names the old last hash.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3);
    let mut l = lines(dir.path());
    let mut prev: Option<String> = None;
    for (i, text) in l.iter_mut().enumerate() {
        let mut line: serde_json::Value = serde_json::from_str(text).unwrap();
        if i == 1 {
            line["record"]["entry"]["secrets"][0]["name"] = "evil".into();
        }
        if let Some(p) = &prev {
            line["record"]["prev"] = p.clone().into();
        }
        let record: hermetic_verifier::log::Record =
            serde_json::from_value(line["record"].clone()).unwrap();
        let json = serde_json::to_vec(&record).unwrap();
        let hash = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json));
        line["hash"] = hash.clone().into();
        prev = Some(hash);
        *text = serde_json::to_string(&line).unwrap();
    }
    write_lines(dir.path(), &l);
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record 3 (line 3)"), "{out}");
    assert!(out.contains("does not match audit.head"), "{out}");
}
