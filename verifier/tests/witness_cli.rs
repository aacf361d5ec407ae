//! `hermetic-verifier witness`: the real binary, spoken to over HTTP on
//! 127.0.0.1 by hermetic-witness's client and pool, with checkpoints and
//! proofs built by hermetic-tlog in the test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hermetic_testkit::log::TestLog;
use hermetic_tlog::cosignature::{self, CosignerKey};
use hermetic_tlog::note::Signer;
use hermetic_witness::client::Exchange;
use hermetic_witness::{PoolWitness, SubmitError, WitnessClient, WitnessPool};

const BIN: &str = env!("CARGO_BIN_EXE_hermetic-verifier");
const ORIGIN: &str = "hermetic.test/audit";

/// `witness keygen`: the key file and the printed public key.
fn keygen(dir: &Path, name: &str) -> (PathBuf, CosignerKey) {
    let path = dir.join(format!("{}.key", name.replace('/', "_")));
    let out = Command::new(BIN)
        .args(["witness", "keygen", "--name", name, "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (path, key)
}

/// A running `witness --listen 127.0.0.1:0`.
struct Running {
    child: Child,
    url: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    fn start(key: &Path, state: &Path, log_key: &Signer) -> Running {
        let mut child = Command::new(BIN)
            .args(["witness", "--listen", "127.0.0.1:0", "--key"])
            .arg(key)
            .arg("--log-key")
            .arg(log_key.verifier_key().to_string())
            .arg("--state-dir")
            .arg(state)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("event=listening") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the witness did not start");
        let start = line.find("witness=").unwrap() + "witness=".len();
        let url = line[start..].split_whitespace().next().unwrap().to_owned();
        Running { child, url, log }
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.wait().unwrap();
        assert!(code.success(), "witness exited with {code}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> WitnessClient {
    WitnessClient::new(Duration::from_secs(10))
}

#[test]
fn keygen_writes_a_private_key_once_and_prints_the_public_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, key) = keygen(tmp.path(), "w.example/1");
    assert_eq!(key.name(), "w.example/1");
    let private = std::fs::read_to_string(&path).unwrap();
    assert!(private.starts_with("PRIVATE+KEY+w.example/1+"));
    let cosigner = hermetic_tlog::cosignature::Cosigner::from_private_key(private.trim()).unwrap();
    assert_eq!(cosigner.cosigner_key(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwritten.
    let out = Command::new(BIN)
        .args(["witness", "keygen", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), private);
    // A name that cannot name a key.
    let out = Command::new(BIN)
        .args(["witness", "keygen", "--name", "a b", "--out"])
        .arg(tmp.path().join("bad"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!tmp.path().join("bad").exists());
}

#[test]
fn bad_arguments_are_refused_before_listening() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, _) = keygen(tmp.path(), "w1.test");
    let log = Signer::generate(ORIGIN).unwrap();
    let run = |extra: &[&str], key: &Path| {
        Command::new(BIN)
            .args(["witness", "--listen", "127.0.0.1:0", "--key"])
            .arg(key)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--log-key", "not-a-key"], &key);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-key"));
    let out = run(&[], &key);
    assert_eq!(out.status.code(), Some(2), "--log-key is required");
    // A witness key readable by others.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let open = tmp.path().join("open.key");
        std::fs::copy(&key, &open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = run(&["--log-key", &log.verifier_key().to_string()], &open);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    }
    // Not a witness key (an owner's note key).
    let owner = tmp.path().join("owner.key");
    std::fs::write(&owner, format!("{}\n", *log.private_key_string())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&owner, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = run(&["--log-key", &log.verifier_key().to_string()], &owner);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a witness private key"), "{stderr}");
    assert!(!stderr.contains("PRIVATE+KEY"), "the key leaked: {stderr}");
    // A second witness on a state directory in use.
    let state = tmp.path().join("state");
    let first = Running::start(&key, &state, &log);
    let out = run(
        &[
            "--log-key",
            &log.verifier_key().to_string(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &key,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    first.stop();
}

#[tokio::test]
async fn the_binary_witnesses_a_log_refuses_forks_and_keeps_its_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (key_path, key) = keygen(tmp.path(), "w1.test");
    let state = tmp.path().join("state");
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let w = Running::start(&key_path, &state, &signer);
    let c = client();

    let mut log = TestLog::new(Arc::clone(&signer), 4, "a");
    let mut held = 0;
    for step in [0u64, 3, 1, 9] {
        log.append(step, "a");
        let s = c
            .submit(&w.url, &key, &log.checkpoint(), held, log.proofs().as_ref())
            .await
            .unwrap();
        // The cosignature is checked by our own cosignature/v1 verifier
        // (Debian's Go sources hold no witness cosignature verifier).
        let checked = cosignature::verify(s.note.as_bytes(), std::slice::from_ref(&key)).unwrap();
        assert_eq!(checked.len(), 1);
        held = log.size;
    }

    // Inconsistent: 422. Unknown key: 403. Fork at the same size: refused.
    let fork = TestLog::new(Arc::clone(&signer), held + 2, "b");
    let err = c
        .add_checkpoint(&w.url, &fork.request(held))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SubmitError::Refused { status: 422, .. }),
        "{err}"
    );
    let impostor = TestLog::new(Arc::new(Signer::generate(ORIGIN).unwrap()), held + 1, "a");
    let err = c
        .add_checkpoint(&w.url, &impostor.request(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SubmitError::Refused { status: 403, .. }),
        "{err}"
    );
    let same_size = TestLog::new(Arc::clone(&signer), held, "evil");
    let err = c
        .submit(
            &w.url,
            &key,
            &same_size.checkpoint(),
            held,
            same_size.proofs().as_ref(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, SubmitError::Fork { size: held });
    // Behind and ahead: 409 with its size.
    let mut next = log.clone();
    next.append(2, "a");
    for old in [held - 3, held + 1] {
        assert_eq!(
            c.add_checkpoint(&w.url, &next.request(old)).await.unwrap(),
            Exchange::Conflict(held)
        );
    }
    // Each decision is on stderr, without key material.
    let events = w.log.lock().unwrap().join("\n");
    assert!(events.contains("cosigned"), "{events}");
    assert!(
        events.contains("422") || events.contains("consistency proof"),
        "{events}"
    );
    assert!(!events.contains("PRIVATE+KEY"), "{events}");

    // Restarted on the same state: an old checkpoint cannot roll it back.
    w.stop();
    let w = Running::start(&key_path, &state, &signer);
    let replay = TestLog::new(Arc::clone(&signer), 4, "a");
    let err = c
        .submit(
            &w.url,
            &key,
            &replay.checkpoint(),
            0,
            replay.proofs().as_ref(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SubmitError::Ahead {
            witness_size: held,
            size: 4
        }
    );
    // And it goes on from where it was.
    c.submit(
        &w.url,
        &key,
        &next.checkpoint(),
        held,
        next.proofs().as_ref(),
    )
    .await
    .unwrap();
    w.stop();
}

#[tokio::test]
async fn two_of_three_binary_witnesses_one_down_goes_on_two_down_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let mut running = Vec::new();
    let mut witnesses = Vec::new();
    for i in 1..=3 {
        let (key_path, key) = keygen(tmp.path(), &format!("w{i}.test"));
        let w = Running::start(&key_path, &tmp.path().join(format!("state{i}")), &signer);
        witnesses.push(PoolWitness {
            url: w.url.clone(),
            key,
        });
        running.push(w);
    }
    let pool = WitnessPool::new(witnesses.clone(), 2, Duration::from_secs(5)).unwrap();
    let mut log = TestLog::new(Arc::clone(&signer), 2, "a");
    pool.cosign(&log.checkpoint(), log.proofs()).await.unwrap();

    running.pop().unwrap().stop();
    for _ in 0..2 {
        log.append(3, "a");
        let cosigned = pool.cosign(&log.checkpoint(), log.proofs()).await.unwrap();
        let verified = cosignature::verify(cosigned.note.as_bytes(), &pool.keys()).unwrap();
        assert_eq!(verified.len(), 2);
    }

    running.pop().unwrap().stop();
    log.append(1, "a");
    let err = pool
        .cosign(&log.checkpoint(), log.proofs())
        .await
        .unwrap_err();
    assert_eq!((err.got, err.needed), (1, 2));
    let msg = err.to_string();
    assert!(msg.contains("w2.test") && msg.contains("w3.test"), "{msg}");
    assert!(msg.contains("unreachable"), "{msg}");
    running.pop().unwrap().stop();
}
