//! Secret delivery to the workload, through `workload::run`.

use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{digest, SHA256};
use hermetic_enclave::workload::{
    check_memory_backed, run, DeliverySpec, Secrets, WorkloadCommand, WorkloadError,
};
use hermetic_envelope::Zeroizing;

const DB_PASSWORD: &[u8] = b"correct horse battery staple \xe2\x9c\x93 $(not run) 'q'";
const API_TOKEN: &[u8] = b"tok_9f8e7d6c5b4a";

fn secrets() -> Secrets {
    let mut s = Secrets::new();
    s.insert("db-password", Zeroizing::new(DB_PASSWORD.to_vec()));
    s.insert("api", Zeroizing::new(API_TOKEN.to_vec()));
    s.insert("unlisted", Zeroizing::new(b"never delivered".to_vec()));
    s
}

fn sh(script: &str, args: &[&Path]) -> WorkloadCommand {
    let mut argv = vec!["sh".into(), "-c".into(), script.into(), "sh".into()];
    argv.extend(args.iter().map(|p| p.as_os_str().to_owned()));
    WorkloadCommand::from_argv(argv).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes))
}

/// A fresh directory on /dev/shm, or `None` where /dev/shm is not tmpfs.
fn shm_dir(tag: &str) -> Option<PathBuf> {
    let shm = Path::new("/dev/shm");
    if check_memory_backed(shm).is_err() {
        eprintln!("skipping: /dev/shm is not tmpfs here");
        return None;
    }
    let dir = shm.join(format!("hermetic-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Some(dir)
}

#[test]
fn secrets_arrive_in_environment_variables() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let spec = DeliverySpec::parse(&["db-password", "api=API_TOKEN"], None).unwrap();
    let command = sh(
        r#"{ printf %s "$DB_PASSWORD" | sha256sum; printf %s "$API_TOKEN" | sha256sum; printf '%s\n' "${UNLISTED-unset}"; } > "$1""#,
        &[&out],
    );
    let exit = run(&spec, &secrets(), &command).unwrap();
    assert_eq!(exit.code(), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], format!("{}  -", sha256_hex(DB_PASSWORD)));
    assert_eq!(lines[1], format!("{}  -", sha256_hex(API_TOKEN)));
    assert_eq!(lines[2], "unset");
}

#[test]
fn secrets_arrive_as_0400_files_on_dev_shm_and_are_removed_afterwards() {
    let Some(dir) = shm_dir("files") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let spec = DeliverySpec::parse(&["db-password", "api"], Some(dir.clone())).unwrap();
    let command = sh(
        r#"{ stat -c %a "$1/db-password"; sha256sum < "$1/db-password"; sha256sum < "$1/api"; printf '%s\n' "${DB_PASSWORD-unset}"; ls -A "$1"; } > "$2""#,
        &[&dir, &out],
    );
    let exit = run(&spec, &secrets(), &command).unwrap();
    assert_eq!(exit.code(), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "400".to_string(),
            format!("{}  -", sha256_hex(DB_PASSWORD)),
            format!("{}  -", sha256_hex(API_TOKEN)),
            "unset".to_string(),
            "api".to_string(),
            "db-password".to_string(),
        ],
        "{text}"
    );
    // The files do not outlive the workload.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn a_directory_on_disk_is_refused_before_anything_is_written() {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hermetic-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    if check_memory_backed(&base).is_ok() {
        eprintln!("skipping: the target directory is itself memory-backed here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let spec = DeliverySpec::parse(&["db-password"], Some(base.join("secrets"))).unwrap();
    let err = run(&spec, &secrets(), &sh(r#"touch "$1""#, &[&marker])).unwrap_err();
    assert!(
        matches!(err, WorkloadError::NotMemoryBacked { .. }),
        "{err:?}"
    );
    assert_eq!(err.reason(), "workload_dir_not_memory_backed");
    assert!(err.to_string().contains("not memory-backed"), "{err}");
    assert!(!marker.exists(), "the workload must not start");
    assert_eq!(std::fs::read_dir(base.join("secrets")).unwrap().count(), 0);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn exit_codes_pass_through_and_signals_become_128_plus_n() {
    let spec = DeliverySpec::parse::<&str>(&[], None).unwrap();
    let s = Secrets::new();
    assert_eq!(run(&spec, &s, &sh("exit 3", &[])).unwrap().code(), 3);
    assert_eq!(
        run(&spec, &s, &sh("kill -KILL $$", &[])).unwrap().code(),
        137
    );
    assert_eq!(
        run(&spec, &s, &sh("kill -TERM $$", &[])).unwrap().code(),
        143
    );
}

#[test]
fn error_paths_never_show_a_secret_value() {
    let tmp = tempfile::tempdir().unwrap();
    let mut with_nul = secrets();
    let nul_secret = b"hunter2\0tail-of-the-secret".to_vec();
    with_nul.insert("nul", Zeroizing::new(nul_secret.clone()));
    let disk = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hermetic-disk-errors");
    let cases: Vec<(DeliverySpec, WorkloadCommand, &str)> = vec![
        (
            DeliverySpec::parse(&["missing"], None).unwrap(),
            sh("true", &[]),
            "workload_missing_secret",
        ),
        (
            DeliverySpec::parse(&["nul"], None).unwrap(),
            sh("true", &[]),
            "workload_nul_in_secret",
        ),
        (
            DeliverySpec::parse(&["db-password"], None).unwrap(),
            WorkloadCommand::from_argv([tmp.path().join("no-such-program")]).unwrap(),
            "workload_spawn_failed",
        ),
        (
            DeliverySpec::parse(&["db-password", "api"], Some(disk)).unwrap(),
            sh("true", &[]),
            "workload_dir_not_memory_backed",
        ),
    ];
    let values: [&[u8]; 4] = [DB_PASSWORD, API_TOKEN, &nul_secret, b"hunter2"];
    for (spec, command, reason) in cases {
        let err = run(&spec, &with_nul, &command).unwrap_err();
        assert_eq!(err.reason(), reason);
        let shown = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
        for value in values {
            let value = String::from_utf8_lossy(value);
            assert!(
                !shown.contains(value.as_ref()),
                "{reason} shows a secret: {shown}"
            );
        }
        assert!(!shown.contains("tok_"), "{shown}");
    }
    // Debug of the secrets themselves lists names only.
    let shown = format!("{with_nul:?}");
    assert!(shown.contains("db-password"));
    assert!(
        !shown.contains("hunter2") && !shown.contains("correct horse"),
        "{shown}"
    );
}
