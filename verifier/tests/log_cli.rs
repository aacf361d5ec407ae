//! `hermetic-verifier log verify`, `log prove`, `log verify-proof` and
//! `log key` against logs an operator rewrote: every rewrite the old hash
//! chain missed (records dropped and the chain rebuilt, the log emptied and
//! its head deleted, a record edited and every later hash recomputed), a
//! fork shown to two auditors and a restored older data directory are
//! caught, with exit 1 and the kind of break named.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hermetic_envelope::Zeroizing;
use hermetic_tlog::cosignature::{cosign, Cosigner};
use hermetic_tlog::note::Signer;
use hermetic_verifier::log::{
    log_signer, Entry, SecretRef, SharedLog, Who, CHECKPOINT_FILE, HASHES_FILE, LOG_FILE,
};
use hermetic_verifier::store::MasterKey;

fn signer() -> Signer {
    Signer::from_seed("hermetic.log/test-deployment", Zeroizing::new([7; 32])).unwrap()
}

fn key() -> String {
    signer().verifier_key().to_string()
}

fn entry(i: u64) -> Entry {
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
    }
}

/// Appends records `from..to` (opening the log signs a checkpoint too).
fn append(dir: &Path, from: u64, to: u64) {
    let log = SharedLog::open(dir, signer()).unwrap();
    for i in from..to {
        let appended = log
            .append(entry(i), Duration::from_secs(1_800_000_000 + i))
            .unwrap();
        assert_eq!(appended.seq, i);
        assert!(appended.checkpoint.size > i);
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(args)
        .env_remove("HERMETIC_MASTER_KEY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verify(dir: &Path, extra: &[&str]) -> (i32, String) {
    let key = key();
    let mut args = vec![
        "log",
        "verify",
        "--data-dir",
        dir.to_str().unwrap(),
        "--log-key",
        &key,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    (code, format!("{out}{err}"))
}

fn break_kind(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    v["break"]["kind"].as_str().unwrap_or("").to_owned()
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

/// What a careful operator does after editing leaves: the stored hashes
/// are rebuilt from them (the store rebuilds a hashes file that does not
/// match its leaves).
fn rebuild_hashes(dir: &Path) {
    std::fs::remove_file(dir.join(HASHES_FILE)).unwrap();
    hermetic_verifier::log::FileLogStore::open(dir).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in [LOG_FILE, HASHES_FILE, CHECKPOINT_FILE] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

#[test]
fn an_intact_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0, 5);
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["intact"], true);
    assert_eq!(v["records"], 5);
    assert_eq!(v["checkpoint_size"], 5);
    // Text output too.
    let key = key();
    let (code, out, _) = run(&[
        "log",
        "verify",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--log-key",
        &key,
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("intact: 5 records"), "{out}");
}

#[test]
fn records_dropped_and_renumbered_with_hashes_rebuilt_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0, 5);
    let mut l = lines(dir.path());
    l.remove(2);
    // Renumber the later records so every seq is its position again.
    let l: Vec<String> = l
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["seq"] = i.into();
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    write_lines(dir.path(), &l);
    rebuild_hashes(dir.path());
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "truncated", "{out}");
}

#[test]
fn a_dropped_record_is_named_when_the_rest_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0, 5);
    let mut l = lines(dir.path());
    l.remove(3);
    write_lines(dir.path(), &l);
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "deleted", "{out}");
    assert!(out.contains("record 3 is missing"), "{out}");
    // Swapping two records is named as reordering.
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0, 5);
    let mut l = lines(dir.path());
    l.swap(1, 2);
    write_lines(dir.path(), &l);
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "reordered", "{out}");
}

#[test]
fn a_record_edited_with_every_later_hash_recomputed_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0, 5);
    let mut l = lines(dir.path());
    l[2] = l[2].replace("\"name\":\"s2\"", "\"name\":\"sX\"");
    write_lines(dir.path(), &l);
    // Hashes left alone: the edited record is named.
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "edited", "{out}");
    assert!(out.contains("record 2 was edited"), "{out}");
    // Every hash recomputed: the signed root still catches it.
    rebuild_hashes(dir.path());
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "edited", "{out}");
    assert!(
        out.contains("do not hash to the signed checkpoint"),
        "{out}"
    );
    // And the service refuses to sign on over it.
    let err = SharedLog::open(dir.path(), signer()).unwrap_err();
    assert!(
        err.to_string()
            .contains("do not match the stored checkpoint"),
        "{err}"
    );
}

#[test]
fn an_emptied_log_without_its_checkpoint_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0, 5);
    let kept = dir.path().join("auditor.checkpoint");
    std::fs::copy(dir.path().join(CHECKPOINT_FILE), &kept).unwrap();
    std::fs::write(dir.path().join(LOG_FILE), b"").unwrap();
    std::fs::remove_file(dir.path().join(HASHES_FILE)).unwrap();
    std::fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "no_checkpoint", "{out}");
    // Restarted, the service signs a new empty-ish log: only an auditor's
    // kept checkpoint shows it.
    append(dir.path(), 0, 1);
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify(dir.path(), &["--since", kept.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "rolled_back", "{out}");
}

#[test]
fn a_fork_shown_to_two_auditors_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    append(&a, 0, 3);
    copy_dir(&a, &b);
    append(&a, 3, 5);
    // The other history: different records 3 and 4.
    {
        let log = SharedLog::open(&b, signer()).unwrap();
        for i in 3..5 {
            let mut e = entry(i);
            e.secrets[0].name = format!("forked{i}");
            log.append(e, Duration::from_secs(1_800_000_000)).unwrap();
        }
    }
    let seen_a = dir.path().join("auditor-a");
    let seen_b = dir.path().join("auditor-b");
    std::fs::copy(a.join(CHECKPOINT_FILE), &seen_a).unwrap();
    std::fs::copy(b.join(CHECKPOINT_FILE), &seen_b).unwrap();
    // Each history on its own is intact for its own auditor...
    assert_eq!(verify(&a, &["--since", seen_a.to_str().unwrap()]).0, 0);
    assert_eq!(verify(&b, &["--since", seen_b.to_str().unwrap()]).0, 0);
    // ...but either auditor's checkpoint proves the other history forked.
    let (code, out) = verify(&b, &["--since", seen_a.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "forked", "{out}");
    let (code, out) = verify(
        &a,
        &[
            "--since",
            seen_a.to_str().unwrap(),
            "--since",
            seen_b.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "forked", "{out}");
}

#[test]
fn a_restored_older_data_dir_is_caught_by_an_auditors_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&live).unwrap();
    append(&live, 0, 3);
    copy_dir(&live, &backup);
    append(&live, 3, 6);
    let seen = dir.path().join("auditor");
    std::fs::copy(live.join(CHECKPOINT_FILE), &seen).unwrap();
    // The operator puts the backup back (hiding records 3..6) and restarts.
    std::fs::remove_dir_all(&live).unwrap();
    copy_dir(&backup, &live);
    append(&live, 3, 4);
    // Alone, the restored log is consistent with itself (README: until
    // witnesses land only auditors' --since catch this)...
    assert_eq!(verify(&live, &[]).0, 0);
    // ...an auditor who kept a later checkpoint catches it.
    let (code, out) = verify(&live, &["--since", seen.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "rolled_back", "{out}");
    assert!(
        out.contains("an auditor saw 6 records, the log now has 4"),
        "{out}"
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0, 3);
    // Re-signed by a key of the same name (an operator without the master key).
    let other = Signer::from_seed("hermetic.log/test-deployment", Zeroizing::new([8; 32])).unwrap();
    let note = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let text = hermetic_tlog::note::parse(note.as_bytes()).unwrap().text;
    std::fs::write(
        dir.path().join(CHECKPOINT_FILE),
        hermetic_tlog::note::sign(&text, &[&other]).unwrap(),
    )
    .unwrap();
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "bad_signature", "{out}");
}

#[test]
fn witness_cosignatures_are_checked_against_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0, 3);
    let w1 = Cosigner::generate("witness1.example").unwrap();
    let w2 = Cosigner::generate("witness2.example").unwrap();
    let (k1, k2) = (w1.cosigner_key().to_string(), w2.cosigner_key().to_string());
    let path = dir.path().join(CHECKPOINT_FILE);
    let note = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, cosign(note.as_bytes(), &w1, 1_800_000_000).unwrap()).unwrap();
    let (code, out) = verify(
        dir.path(),
        &[
            "--witness-key",
            &k1,
            "--witness-key",
            &k2,
            "--witness-threshold",
            "1",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"cosignatures\":1"), "{out}");
    let (code, out) = verify(
        dir.path(),
        &[
            "--witness-key",
            &k1,
            "--witness-key",
            &k2,
            "--witness-threshold",
            "2",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(break_kind(&out), "too_few_cosignatures", "{out}");
    // A threshold larger than the keys given is a usage error.
    assert_eq!(verify(dir.path(), &["--witness-threshold", "1"]).0, 2);
}

#[test]
fn unreadable_input_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(verify(&dir.path().join("nope"), &[]).0, 2);
    let (code, _, err) = run(&[
        "log",
        "verify",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--log-key",
        "not-a-key",
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_proof_verifies_offline_and_a_tampered_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0, 7);
    let out = dir.path().join("r3.tlog-proof");
    let (code, _, err) = run(&[
        "log",
        "prove",
        "3",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
    assert!(text.contains("\nindex 3\n"), "{text}");
    // Offline: only the file and the key.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("p");
    std::fs::copy(&out, &copy).unwrap();
    drop(dir);
    let key = key();
    let (code, stdout, err) = run(&[
        "log",
        "verify-proof",
        copy.to_str().unwrap(),
        "--log-key",
        &key,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("\"name\":\"s3\""), "{stdout}");
    // Another index for the same proof hashes.
    std::fs::write(&copy, text.replace("\nindex 3\n", "\nindex 2\n")).unwrap();
    let (code, _, err) = run(&[
        "log",
        "verify-proof",
        copy.to_str().unwrap(),
        "--log-key",
        &key,
    ]);
    assert_eq!(code, 1, "{err}");
    // Another record in the extra data.
    let parsed = hermetic_tlog::proof::TlogProof::parse(&text).unwrap();
    let mut other = parsed.clone();
    other.extra = Some(
        String::from_utf8(parsed.extra.clone().unwrap())
            .unwrap()
            .replace("s3", "s9")
            .into_bytes(),
    );
    std::fs::write(&copy, other.to_text()).unwrap();
    let (code, _, err) = run(&[
        "log",
        "verify-proof",
        copy.to_str().unwrap(),
        "--log-key",
        &key,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("inclusion proof"), "{err}");
    // Another log's key.
    std::fs::write(&copy, &text).unwrap();
    let other_key = Signer::from_seed("hermetic.log/test-deployment", Zeroizing::new([9; 32]))
        .unwrap()
        .verifier_key()
        .to_string();
    let (code, _, err) = run(&[
        "log",
        "verify-proof",
        copy.to_str().unwrap(),
        "--log-key",
        &other_key,
    ]);
    assert_eq!(code, 1, "{err}");
    // Garbage is refused, not a panic.
    std::fs::write(&copy, "c2sp.org/tlog-proof@v1\nindex 01\n\nx\n").unwrap();
    assert_eq!(
        run(&[
            "log",
            "verify-proof",
            copy.to_str().unwrap(),
            "--log-key",
            &key
        ])
        .0,
        1
    );
}

#[test]
fn log_key_prints_the_public_key_the_checkpoint_verifies_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let master = MasterKey::from_bytes([0x11; 32]);
    let deployment = "hermetic-logkeytest";
    let expected = log_signer(&master, deployment).unwrap().verifier_key();
    // What `serve` writes at start: the public half only.
    let pub_file = data.join(hermetic_verifier::log::LOG_KEY_PUB_FILE);
    std::fs::write(&pub_file, format!("{expected}\n")).unwrap();
    let (code, out, err) = run(&["log", "key", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), expected.to_string());
    // After a checkpoint: the same key, checked against its signature.
    {
        let log = SharedLog::open(&data, log_signer(&master, deployment).unwrap()).unwrap();
        log.append(entry(0), Duration::from_secs(1)).unwrap();
    }
    let (code, again, _) = run(&["log", "key", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(again, out);
    // No file in the data directory holds the private key.
    let private = log_signer(&master, deployment)
        .unwrap()
        .private_key_string();
    let seed_b64 = private.rsplit('+').next().unwrap().to_owned();
    for f in std::fs::read_dir(&data).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&seed_b64));
    }
    // A public key the checkpoint does not verify with is refused.
    let other = log_signer(&MasterKey::from_bytes([0x22; 32]), deployment)
        .unwrap()
        .verifier_key();
    std::fs::write(&pub_file, format!("{other}\n")).unwrap();
    let (code, _, err) = run(&["log", "key", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    // No key at all: exit 2.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_eq!(
        run(&["log", "key", "--data-dir", empty.to_str().unwrap()]).0,
        2
    );
}
