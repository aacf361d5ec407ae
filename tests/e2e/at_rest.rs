//! Everything at rest is sealed and bound to its row: the verifier host's
//! root, with write access to the data directory, stops the verifier,
//! edits, swaps or puts back rows of `hermetic.redb` with the redb crate,
//! and starts it again. Each such row is refused on read, with its reason
//! (`row_tampered`, `row_rolled_back`), and never used: no release, no
//! admin access; an unedited store still serves. A whole older store file
//! put back is caught against the log's change records.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hermetic_e2e::{bin, make_image, policy_for, run, sha256_hex, Deployment, Image, Proc};
use redb::{Database, ReadableTable, TableDefinition};

const DB: &str = "db-password";
const API: &str = "api-key";
const DB_VALUE: &[u8] = b"db value 0d5e8a";
const API_VALUE: &[u8] = b"api value 77c1f0";
const LIMIT: Duration = Duration::from_secs(60);

// The store's tables (verifier/src/store/mod.rs).
const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("v2/policies");
const VALUES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("v2/secret_values");
const TOKENS_V2: TableDefinition<&[u8], &[u8]> = TableDefinition::new("v2/admin_tokens");

fn store(dep: &Deployment) -> PathBuf {
    dep.dir.join("verifier-data").join("hermetic.redb")
}

fn get_policy(path: &Path, name: &str) -> Vec<u8> {
    let db = Database::create(path).unwrap();
    let tx = db.begin_read().unwrap();
    let v = tx
        .open_table(POLICIES)
        .unwrap()
        .get(name)
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    v
}

fn put_policy(path: &Path, name: &str, bytes: &[u8]) {
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(POLICIES)
        .unwrap()
        .insert(name, bytes)
        .unwrap();
    tx.commit().unwrap();
}

fn get_value(path: &Path, name: &str) -> Vec<u8> {
    let db = Database::create(path).unwrap();
    let tx = db.begin_read().unwrap();
    let v = tx
        .open_table(VALUES)
        .unwrap()
        .get((name, 1))
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    v
}

fn put_value(path: &Path, name: &str, bytes: &[u8]) {
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(VALUES)
        .unwrap()
        .insert((name, 1), bytes)
        .unwrap();
    tx.commit().unwrap();
}

/// Starts the verifier again on the same data directory, and a parent
/// allowed to reach its new port.
fn restart(dep: &mut Deployment) {
    dep.restart_verifier();
    dep.parent.kill();
    let _ = std::fs::remove_file(dep.dir.join("parent.sock"));
    let mut cmd = Command::new(bin("hermetic-parent"));
    cmd.args([
        "--listen",
        &dep.parent_endpoint,
        "--allow",
        &dep.verifier_endpoint,
        "--capture",
    ])
    .arg(dep.dir.join("parent-capture-2.bin"));
    dep.parent = Proc::spawn("parent-2", cmd, &dep.dir);
    dep.parent.wait_for("listening", LIMIT);
}

/// Stops the verifier, lets `edit` change the store file, starts it again.
fn offline(dep: &mut Deployment, edit: impl FnOnce(&Path)) {
    dep.stop_verifier();
    edit(&store(dep));
    restart(dep);
}

/// Runs the enclave for `name`; the workload prints its value's SHA-256.
fn release(dep: &Deployment, image: &Image, name: &str) -> (bool, String, String) {
    let env = name.to_uppercase().replace('-', "_");
    let script = format!("printf %s \"${env}\" | sha256sum");
    let out = run(
        dep.enclave(image, &["--secret", name], &["sh", "-c", &script]),
        LIMIT,
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(dep: &Deployment, image: &Image, name: &str, reason: &str) {
    let (ok, stdout, stderr) = release(dep, image, name);
    assert!(!ok, "released despite a bad row: {stdout}");
    assert!(stdout.is_empty(), "the workload ran: {stdout}");
    assert!(stderr.contains(reason), "expected {reason}: {stderr}");
    assert!(
        dep.verifier.log_text().contains(&format!(
            "event=store_row_refused name={name} reason={reason}"
        )),
        "{}",
        dep.verifier.log_text()
    );
}

fn assert_serves(dep: &Deployment, image: &Image, name: &str, value: &[u8]) {
    let (ok, stdout, stderr) = release(dep, image, name);
    assert!(ok, "{stderr}\nverifier:\n{}", dep.verifier.log_text());
    assert!(stdout.starts_with(&sha256_hex(value)), "{stdout}");
}

/// An owner-approved policy change (`policy put --sign`).
fn put_policy_change(dep: &Deployment, toml: &str) {
    let file = dep.dir.join("new-policy.toml");
    std::fs::write(&file, toml).unwrap();
    let mut cmd = Command::new(bin("hermetic-verifier"));
    cmd.args(["policy", "put", "--file"])
        .arg(&file)
        .arg("--sign")
        .arg(&dep.owner_key)
        .args(["--admin-url", &dep.admin_url, "--token-file"])
        .arg(dep.token_file());
    let out = run(cmd, LIMIT);
    assert!(
        out.status.success(),
        "policy put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn admin_list(dep: &Deployment) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin("hermetic-verifier"));
    cmd.args([
        "secret",
        "list",
        "--admin-url",
        &dep.admin_url,
        "--token-file",
    ])
    .arg(dep.token_file());
    let out = run(cmd, LIMIT);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn rows_edited_swapped_or_put_back_on_disk_are_refused_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let old_image = make_image(dir.path(), "app", b"release 1");
    let new_image = make_image(dir.path(), "app2", b"release 2");
    let policies = format!(
        "{}\n{}",
        policy_for(&old_image, DB),
        policy_for(&old_image, API)
    );
    let mut dep = Deployment::start(dir.path(), &policies);
    dep.put_secret(DB, DB_VALUE);
    dep.put_secret(API, API_VALUE);
    assert_serves(&dep, &old_image, DB, DB_VALUE);

    // The owners move db-password to the new image; the host kept the
    // policy row from before.
    dep.stop_verifier();
    let old_policy = get_policy(&store(&dep), DB);
    let old_file = dep.dir.join("hermetic.redb.before");
    std::fs::copy(store(&dep), &old_file).unwrap();
    restart(&mut dep);
    put_policy_change(&dep, &policy_for(&new_image, DB));
    let (ok, _, stderr) = release(&dep, &old_image, DB);
    assert!(!ok && stderr.contains("pcr_mismatch"), "{stderr}");
    assert_serves(&dep, &new_image, DB, DB_VALUE);
    // A later change (api-key's policy, unchanged in effect): it confirms
    // that db-password's change was committed before it.
    put_policy_change(&dep, &policy_for(&old_image, API));
    dep.stop_verifier();
    let path = store(&dep);
    let current_policy = get_policy(&path, DB);
    let (db_value, api_value) = (get_value(&path, DB), get_value(&path, API));
    let api_policy = get_policy(&path, API);
    restart(&mut dep);

    // 1. The old policy row put back: the old image still gets nothing.
    offline(&mut dep, |p| put_policy(p, DB, &old_policy));
    assert_refused(&dep, &old_image, DB, "row_rolled_back");
    assert_refused(&dep, &new_image, DB, "row_rolled_back");
    // The owners' next change is refused too (it would rest on it).
    let (code, text) = admin_list(&dep);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("row_rolled_back"), "{text}");

    // 2. One byte of the current policy row changed.
    offline(&mut dep, |p| {
        let mut edited = current_policy.clone();
        let at = edited.len() - 20;
        edited[at] ^= 0x01;
        put_policy(p, DB, &edited);
    });
    assert_refused(&dep, &new_image, DB, "row_tampered");

    // 3. Two secrets' policies swapped (api-key's names the old image).
    offline(&mut dep, |p| {
        put_policy(p, DB, &api_policy);
        put_policy(p, API, &current_policy);
    });
    assert_refused(&dep, &old_image, DB, "row_tampered");
    assert_refused(&dep, &old_image, API, "row_tampered");

    // 4. Two secrets' values swapped (policies restored).
    offline(&mut dep, |p| {
        put_policy(p, DB, &current_policy);
        put_policy(p, API, &api_policy);
        put_value(p, DB, &api_value);
        put_value(p, API, &db_value);
    });
    assert_refused(&dep, &new_image, DB, "row_tampered");
    assert_refused(&dep, &old_image, API, "row_tampered");

    // 5. Restored: the store serves again.
    offline(&mut dep, |p| {
        put_value(p, DB, &db_value);
        put_value(p, API, &api_value);
    });
    assert_serves(&dep, &new_image, DB, DB_VALUE);
    assert_serves(&dep, &old_image, API, API_VALUE);
    assert_eq!(admin_list(&dep).0, Some(0));

    // 6. The admin token's row replaced by another sealed row, and a row
    //    of the host's own token added as the previous version kept them
    //    (SHA-256 → label): neither opens the admin API.
    let own_token = "f".repeat(64);
    offline(&mut dep, |p| {
        let db = Database::create(p).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut tokens = tx.open_table(TOKENS_V2).unwrap();
            let key = tokens
                .iter()
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .0
                .value()
                .to_vec();
            tokens
                .insert(key.as_slice(), current_policy.as_slice())
                .unwrap();
            let own = sha256_bytes(own_token.as_bytes());
            tokens
                .insert(own.as_slice(), current_policy.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    });
    let (code, text) = admin_list(&dep);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("row_tampered"), "{text}");
    std::fs::write(dep.dir.join("own.token"), &own_token).unwrap();
    let mut cmd = Command::new(bin("hermetic-verifier"));
    cmd.args([
        "secret",
        "list",
        "--admin-url",
        &dep.admin_url,
        "--token-file",
    ])
    .arg(dep.dir.join("own.token"));
    let out = run(cmd, LIMIT);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("unauthorized"), "{text}");
    // Releases do not depend on the token table.
    assert_serves(&dep, &old_image, API, API_VALUE);

    // 7. The whole store file from before the policy changes put back:
    //    every row opens and agrees with its head; the log's change records
    //    do not, so db-password is refused. api-key's change was the last
    //    one logged before a restart, which a killed verifier may not have
    //    committed: reported, not refused (its old policy allowed the same
    //    image).
    offline(&mut dep, |p| {
        std::fs::copy(&old_file, p).unwrap();
    });
    let log = dep.verifier.log_text();
    assert!(
        log.contains(&format!(
            "event=store_row_refused name={DB} reason=row_rolled_back store_version=2 log_version=3"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "event=change_unconfirmed name={API} store_version=2 log_version=3"
        )),
        "{log}"
    );
    assert_refused(&dep, &old_image, DB, "row_rolled_back");
    assert_serves(&dep, &old_image, API, API_VALUE);
}

fn sha256_bytes(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}
