//! Durability: the real binary is SIGKILLed while owner-approved value
//! changes are in flight; after a restart every acknowledged secret is listed
//! and still opens to its value.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{good_pcrs, owner_change, policy_change, policy_toml, spawn, value_change, Enclave};
use hermetic_approval::Signer;
use hermetic_verifier::client::{AdminClient, HttpClient};

/// A secret name and the value the service acknowledged for it.
type Acked = (String, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_puts_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());

    let mut server = spawn(&data, &["--trust-root".as_ref(), root.as_os_str()]);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let admin = AdminClient::new(&format!("http://{}", server.admin), token.trim());

    let owner = Arc::new(Signer::generate("owner").unwrap());
    let owner_key = owner.verifier_key().to_string();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(20);
    let mut writers = Vec::new();
    for w in 0..4 {
        let admin = admin.clone();
        let acked = acked.clone();
        let owner = owner.clone();
        let owner_key = owner_key.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                if Instant::now() > stop_at {
                    break;
                }
                let name = format!("w{w}-s{i}");
                let value = format!("value of {name} {}", "x".repeat(i % 64)).into_bytes();
                if admin
                    .create_secret(&name, std::slice::from_ref(&owner_key), 1)
                    .await
                    .is_err()
                {
                    break; // the server is gone
                }
                match owner_change(&admin, value_change(&name, &value), &[&owner]).await {
                    Ok(applied) => {
                        assert_eq!(applied.value_version, Some(1));
                        acked.lock().unwrap().push((name, value));
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    // Kill mid-stream, once a fair number of puts were acknowledged.
    while acked.lock().unwrap().len() < 40 {
        assert!(Instant::now() < stop_at, "puts are not being acknowledged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40);

    // Restart on the same directory.
    let mut server = spawn(&data, &["--trust-root".as_ref(), root.as_os_str()]);
    let admin = AdminClient::new(&format!("http://{}", server.admin), token.trim());
    let listed = admin.list_secrets().await.unwrap();
    let names: std::collections::BTreeSet<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    for (name, _) in &acked {
        assert!(
            names.contains(name.as_str()),
            "acknowledged {name} was lost"
        );
    }
    assert!(listed.len() >= acked.len());
    eprintln!(
        "acknowledged {} puts before SIGKILL; {} listed after restart",
        acked.len(),
        listed.len()
    );

    // The values themselves survived: release a few to the simulated enclave.
    let http = HttpClient::default();
    for (name, value) in [&acked[0], &acked[acked.len() / 2], &acked[acked.len() - 1]] {
        owner_change(
            &admin,
            policy_change(name, policy_toml(name, &good_pcrs(), "")),
            &[&owner],
        )
        .await
        .unwrap();
        let granted = common::release_with(&http, server.public, &[name], |n| enclave.document(n))
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let plain = granted.open_first(&enclave.key);
        assert_eq!(plain.as_slice(), value.as_slice());
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // The audit log is still a valid chain after the crash.
    let key = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(["log", "key", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(["log", "verify", "--data-dir"])
        .arg(&data)
        .arg("--log-key")
        .arg(String::from_utf8_lossy(&key.stdout).trim())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
