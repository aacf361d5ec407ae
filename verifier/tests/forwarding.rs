//! Key forwarding between replicas through the real binary: replica A
//! (genesis 3 custodians, K = 2, restarted and unsealed by two of them), a
//! replica B of the same measurements that joins A (no custodian involved)
//! and releases the same secret, and the replicas A refuses or that refuse
//! A: other measurements, debug mode, a sealed peer, a replayed request, and
//! anonymous clients with forged documents.
//!
//! Until the stores are shared (PostgreSQL, issue 13) each replica has its
//! own embedded store: B starts from a copy of A's data directory, as a
//! restored or cloned replica would. A fresh data directory that joins
//! takes A's genesis record and deployment.
#![cfg(feature = "test-roots")]

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use common::custody::{
    bin, custodians, describe, get, unseal, wait_unsealed, walk, with_custodians,
};
use common::{
    create_owned, good_pcrs, policy_toml, sha256_hex, spawn, terminate, value_change, Enclave,
    Server,
};
use hermetic_approval::Signer;
use hermetic_attestation::{TrustedRoot, UnixTime};
use hermetic_custody::{AttestationPolicy, ForwardedKey, JoinOffer, JoinRequest, Joiner};
use hermetic_verifier::client::{AdminClient, HttpClient};

const NAME: &str = "db-password";
const SECRET: &[u8] = b"forwarded-replica-value-51c2";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn os(args: &[OsString]) -> Vec<&std::ffi::OsStr> {
    args.iter().map(|s| s.as_os_str()).collect()
}

/// Runs `serve` expecting it to stop by itself (a refused join): its exit
/// code and stderr. A server that starts serving instead is killed and the
/// test fails.
fn serve_until_exit(data: &Path, extra: &[OsString]) -> (i32, String) {
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen"])
        .args(["127.0.0.1:0", "--rate-limit", "0", "--data-dir"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve --join did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap(), err)
}

async fn post(url: String, body: Vec<u8>) -> (u16, Vec<u8>) {
    let (s, b) = HttpClient::default()
        .send(
            hyper::Method::POST,
            &url,
            &[("content-type", "application/json")],
            body,
        )
        .await
        .unwrap();
    (s.as_u16(), b)
}

/// Releases NAME to `enclave`; the SHA-256 of the opened value.
async fn released_sha256(server: &Server, enclave: &Enclave) -> String {
    let base = format!("http://{}", server.public);
    let (s, b) = post(format!("{base}/v1/challenge"), vec![]).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let c: hermetic_envelope::wire::ChallengeResponse = serde_json::from_slice(&b).unwrap();
    let nonce = c.nonce_bytes().unwrap();
    let request = hermetic_envelope::wire::ReleaseRequest::new(
        &enclave.document(&nonce),
        vec![NAME.to_owned()],
    );
    let (s, b) = post(
        format!("{base}/v1/release"),
        serde_json::to_vec(&request).unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let r: hermetic_envelope::wire::ReleaseResponse = serde_json::from_slice(&b).unwrap();
    let w = &r.secrets[0];
    let sealed = hermetic_envelope::SealedSecret::try_from(w).unwrap();
    let context = hermetic_envelope::ReleaseContext::new(w.name.clone(), w.version, nonce);
    sha256_hex(&hermetic_envelope::open(&enclave.key, &sealed, &context).unwrap())
}

fn forwarded_records(data: &Path) -> Vec<serde_json::Value> {
    common::log_records(data)
        .into_iter()
        .filter(|r| r["entry"]["action"] == "key_forwarded")
        .collect()
}

/// `log verify` of `data` against the log key `key_of` publishes.
fn log_verify(data: &Path, key_of: &Path) {
    let key = std::fs::read_to_string(key_of.join("log-key.pub")).unwrap();
    let out = bin()
        .args(["log", "verify", "--data-dir"])
        .arg(data)
        .args(["--log-key", key.trim()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct NsmClock;

impl hermetic_nsm::Clock for NsmClock {
    fn now_ms(&self) -> u64 {
        common::now_ms()
    }
}

/// A simulated NSM signing with the PKI under `pki` (A's, which a test
/// replica shares), measuring `describe`, optionally in debug mode.
fn simulated_nsm(pki: &Path, describe: &Path, debug_mode: bool) -> Box<dyn hermetic_nsm::Nsm> {
    hermetic_nsm::open_nsm(
        &hermetic_nsm::NsmSelection {
            backend: hermetic_nsm::Backend::Simulated,
            pki_dir: Some(pki.to_owned()),
            pcrs_from: Some(describe.to_owned()),
            debug_mode,
        },
        Arc::new(NsmClock),
    )
    .unwrap()
    .nsm
}

fn document_for(
    nsm: &dyn hermetic_nsm::Nsm,
    request: &hermetic_custody::AttestationRequest,
) -> Vec<u8> {
    nsm.attestation(&hermetic_nsm::AttestationRequest {
        user_data: Some(request.user_data.clone()),
        nonce: Some(request.nonce.clone()),
        public_key: request.public_key.map(|k| k.to_vec()),
    })
    .unwrap()
}

fn image_pcrs(nsm: &dyn hermetic_nsm::Nsm) -> hermetic_policy::Pcrs {
    hermetic_custody::IMAGE_PCRS
        .into_iter()
        .map(|i| (i, nsm.describe_pcr(u16::from(i)).unwrap().data))
        .collect()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(common::now())
}

/// Asks A for an offer, as anyone may.
async fn offer(base: &str) -> JoinOffer {
    let (s, b) = post(
        format!("{base}/v1/custody/join/offer"),
        serde_json::to_vec(&serde_json::json!({"nonce": hex::encode([7u8; 32])})).unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    serde_json::from_slice(&b).unwrap()
}

/// A join request answering `offer` with a document of `nsm`, sealed to a
/// key the caller does not keep (an attacker's forged replica).
fn forged_request(nsm: &dyn hermetic_nsm::Nsm, offer: &JoinOffer) -> Vec<u8> {
    let key = hermetic_envelope::EnclaveKey::generate(&SystemRandom::new()).unwrap();
    let document = document_for(
        nsm,
        &hermetic_custody::AttestationRequest {
            nonce: offer.challenge.to_vec(),
            public_key: Some(key.public_key_bytes()),
            user_data: sha256(&offer.attestation_document),
        },
    );
    serde_json::to_vec(&JoinRequest {
        challenge: offer.challenge,
        attestation_document: document,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_the_same_measurements_joins_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a_data = dir.path().join("a");
    let enclave = Enclave::new();
    let enclave_root = enclave.write_root(dir.path());
    let pinned = dir.path().join("verifier.json");
    std::fs::write(&pinned, describe("aa")).unwrap();
    let other = dir.path().join("other.json");
    std::fs::write(&other, describe("bb")).unwrap();
    let (keys, pubs) = custodians(dir.path(), 3);
    let base_args = |describe: &Path| -> Vec<OsString> {
        vec![
            "--trust-root".into(),
            enclave_root.clone().into(),
            "--pcrs-from".into(),
            describe.to_owned().into(),
        ]
    };
    let args = base_args(&pinned);

    // A: genesis 2 of 3, a secret, a release.
    let genesis = with_custodians(&args, &pubs, 2);
    let mut a = spawn(&a_data, &os(&genesis));
    let token = std::fs::read_to_string(a_data.join("admin.token")).unwrap();
    let admin_a = AdminClient::new(&format!("http://{}", a.admin), token.trim());
    let owner = Signer::generate("owner").unwrap();
    create_owned(
        &admin_a,
        &owner,
        NAME,
        Some(policy_toml(NAME, &good_pcrs(), "")),
        SECRET,
    )
    .await;
    let expected = sha256_hex(SECRET);
    assert_eq!(released_sha256(&a, &enclave).await, expected);
    terminate(&mut a);

    // Copies of A's data directory (store, log, genesis record, the
    // simulated NSM's PKI standing in for AWS's).
    let copy = |name: &str| {
        let to = dir.path().join(name);
        copy_dir(&a_data, &to);
        to
    };
    let (b_data, c_data, d_data, e_data) = (copy("b"), copy("c"), copy("d"), copy("e"));

    // A restarts sealed; a replica cannot join a sealed verifier.
    let mut a = spawn(&a_data, &os(&args));
    let a_url = format!("http://{}", a.public);
    let join = |mut extra: Vec<OsString>| {
        extra.extend(["--join".into(), a_url.clone().into()]);
        extra
    };
    let (code, err) = serve_until_exit(&e_data, &join(args.clone()));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("join refused (sealed)"), "{err}");

    // Two custodians unseal A.
    let sim_root = a_data.join("sim-pki").join("root.pem");
    let (code, stderr) = unseal(&a, &keys[0], &pinned, &sim_root);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = unseal(&a, &keys[2], &pinned, &sim_root);
    assert_eq!(code, 0, "{stderr}");
    wait_unsealed(&a).await;
    assert_eq!(released_sha256(&a, &enclave).await, expected);
    assert!(forwarded_records(&a_data).is_empty());

    // B joins A: unsealed with no custodian, the same secret.
    let mut b = spawn(&b_data, &os(&join(args.clone())));
    let (s, health) = get(format!("http://{}/healthz", b.public)).await;
    assert_eq!((s, health.trim()), (200, "ok"));
    assert_eq!(released_sha256(&b, &enclave).await, expected);
    let to_b = forwarded_records(&a_data);
    assert_eq!(to_b.len(), 1);
    let from_a = forwarded_records(&b_data);
    assert_eq!(from_a.len(), 1);
    assert_eq!(from_a[0]["entry"]["custody"]["peer"], a_url.as_str());
    assert!(from_a[0]["entry"]["custody"]["received_from"].is_string());
    assert!(to_b[0]["entry"]["custody"]["forwarded_to"].is_string());
    assert!(b
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("event=key_received")));
    assert!(a
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("event=key_forwarded forwarded_to=")));

    // Both advertise the same intake key (derived from the shared master
    // key), and a value sealed to A's is accepted by B.
    let admin_b = AdminClient::new(&format!("http://{}", b.admin), token.trim());
    let (info_a, info_b) = (
        admin_a_at(&a, &token).deployment().await.unwrap(),
        admin_b.deployment().await.unwrap(),
    );
    assert_eq!(info_a.deployment, info_b.deployment);
    assert_eq!(info_a.intake_public_key, info_b.intake_public_key);
    let admin_a = admin_a_at(&a, &token);
    let file = common::propose(&admin_a, &value_change(NAME, b"second value")).await;
    let signed = common::sign_by(&file, &[&owner]);
    let applied = admin_b.submit_change(&signed).await.unwrap();
    assert_eq!(applied.value_version, Some(2));
    assert_eq!(
        released_sha256(&b, &enclave).await,
        sha256_hex(b"second value")
    );

    // C: other measurements; D: debug mode. Each refuses A (A's PCRs are
    // not its own) and exits 1; A forwards nothing.
    let (code, err) = serve_until_exit(&c_data, &join(base_args(&other)));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("join_measurements_mismatch"), "{err}");
    let mut debug = join(args.clone());
    debug.push("--debug-mode".into());
    let (code, err) = serve_until_exit(&d_data, &debug);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("join_debug_mode"), "{err}");
    assert_eq!(forwarded_records(&a_data).len(), 1);

    // A fresh data directory joins (its NSM shares A's PKI), given the
    // custodian set as a Nitro image passes it at every start: it takes
    // A's genesis record and deployment, and advertises the same intake
    // key. With another custodian set it refuses A's genesis.
    let f_data = dir.path().join("f");
    let mut f_args = join(args.clone());
    f_args.extend(["--pki-dir".into(), a_data.join("sim-pki").into()]);
    let wrong_set = with_custodians(&f_args, &pubs[..2], 2);
    let (code, err) = serve_until_exit(&dir.path().join("g"), &wrong_set);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("join_genesis_mismatch"), "{err}");
    let f_args = with_custodians(&f_args, &pubs, 2);
    let mut f = spawn(&f_data, &os(&f_args));
    assert_eq!(
        std::fs::read(f_data.join("genesis.json")).unwrap(),
        std::fs::read(a_data.join("genesis.json")).unwrap()
    );
    let f_token = std::fs::read_to_string(f_data.join("admin.token")).unwrap();
    let info_f = AdminClient::new(&format!("http://{}", f.admin), f_token.trim())
        .deployment()
        .await
        .unwrap();
    assert_eq!(info_f.deployment, info_a.deployment);
    assert_eq!(info_f.intake_public_key, info_a.intake_public_key);
    assert_eq!(forwarded_records(&a_data).len(), 2);
    terminate(&mut f);

    // A replica that does its own side right (here: the test, with A's
    // PKI and measurements) gets the key; its captured request, re-sent,
    // gets nothing.
    let pki = a_data.join("sim-pki");
    let same = simulated_nsm(&pki, &pinned, false);
    let root = TrustedRoot::from_pem(&std::fs::read(&sim_root).unwrap()).unwrap();
    let rng = SystemRandom::new();
    let (mut joiner, hello) = Joiner::start(
        image_pcrs(same.as_ref()),
        AttestationPolicy::new(vec![root], Duration::from_secs(120)),
        &rng,
    )
    .unwrap();
    let (s, b_offer) = post(
        format!("{a_url}/v1/custody/join/offer"),
        serde_json::to_vec(&hello).unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let offered: JoinOffer = serde_json::from_slice(&b_offer).unwrap();
    let request = joiner.check_offer(&offered, now()).unwrap();
    let request = joiner
        .request(document_for(same.as_ref(), &request))
        .unwrap();
    let captured = serde_json::to_vec(&request).unwrap();
    let (s, body) = post(format!("{a_url}/v1/custody/join/key"), captured.clone()).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let forwarded: ForwardedKey = serde_json::from_slice(&body).unwrap();
    let (key, record) = joiner.finish(&forwarded).unwrap();
    assert_eq!(
        record.to_json().trim(),
        std::fs::read_to_string(a_data.join("genesis.json"))
            .unwrap()
            .trim()
    );
    assert_eq!(forwarded_records(&a_data).len(), 3);
    let (s, body) = post(format!("{a_url}/v1/custody/join/key"), captured).await;
    assert_eq!(
        (s, common::reason(&body)),
        (403, "join_replayed".to_owned())
    );

    // The attacker: an anonymous client gets only public things from the
    // offer (A's genesis record, a signed document, a challenge) and is
    // refused, with a reason, whatever document it sends.
    let offered = offer(&a_url).await;
    assert_eq!(
        offered.genesis.to_json().trim(),
        std::fs::read_to_string(a_data.join("genesis.json"))
            .unwrap()
            .trim()
    );
    let debug_nsm = simulated_nsm(&pki, &pinned, true);
    let other_nsm = simulated_nsm(&pki, &other, false);
    let foreign_nsm = simulated_nsm(&dir.path().join("foreign-pki"), &pinned, false);
    let cases: [(&dyn hermetic_nsm::Nsm, &str); 3] = [
        (debug_nsm.as_ref(), "join_debug_mode"),
        (other_nsm.as_ref(), "join_measurements_mismatch"),
        (foreign_nsm.as_ref(), "join_untrusted_root"),
    ];
    for (nsm, reason) in cases {
        let offered = offer(&a_url).await;
        let (s, body) = post(
            format!("{a_url}/v1/custody/join/key"),
            forged_request(nsm, &offered),
        )
        .await;
        assert_eq!((s, common::reason(&body)), (403, reason.to_owned()));
    }
    // A stale document: made for an earlier challenge, sent with a new one.
    let first = offer(&a_url).await;
    let second = offer(&a_url).await;
    let mut stale: serde_json::Value =
        serde_json::from_slice(&forged_request(same.as_ref(), &first)).unwrap();
    stale["challenge"] = hex::encode(second.challenge).into();
    let (s, body) = post(
        format!("{a_url}/v1/custody/join/key"),
        serde_json::to_vec(&stale).unwrap(),
    )
    .await;
    assert_eq!(
        (s, common::reason(&body)),
        (403, "join_replayed".to_owned())
    );
    // No document at all, and garbage.
    let (s, _) = post(
        format!("{a_url}/v1/custody/join/key"),
        b"{\"challenge\": \"00\"}".to_vec(),
    )
    .await;
    assert_eq!(s, 400);
    let garbage = serde_json::to_vec(&JoinRequest {
        challenge: offer(&a_url).await.challenge,
        attestation_document: b"not a document".to_vec(),
    })
    .unwrap();
    let (s, body) = post(format!("{a_url}/v1/custody/join/key"), garbage).await;
    assert_eq!(
        (s, common::reason(&body)),
        (403, "join_attestation_invalid".to_owned())
    );
    assert_eq!(forwarded_records(&a_data).len(), 3);

    // The key itself (as the test's replica received it) is in no file
    // and no log line of either replica; both logs verify.
    let master = key.expose_secret().to_vec();
    let master_hex = hex::encode(&master).into_bytes();
    let mut seen: Vec<(String, Vec<u8>)> = vec![
        (
            "a stderr".into(),
            a.log.lock().unwrap().join("\n").into_bytes(),
        ),
        (
            "b stderr".into(),
            b.log.lock().unwrap().join("\n").into_bytes(),
        ),
    ];
    terminate(&mut b);
    terminate(&mut a);
    for data in [&a_data, &b_data] {
        for file in walk(data) {
            seen.push((file.display().to_string(), std::fs::read(&file).unwrap()));
        }
    }
    for (what, bytes) in &seen {
        for needle in [&master, &master_hex] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{what} holds the master key"
            );
        }
    }
    // The same master key and deployment: the same log key (A's verifies
    // B's log).
    log_verify(&a_data, &a_data);
    log_verify(&b_data, &a_data);
    assert_eq!(
        std::fs::read(a_data.join("log-key.pub")).unwrap(),
        std::fs::read(b_data.join("log-key.pub")).unwrap()
    );
}

fn admin_a_at(a: &Server, token: &str) -> AdminClient {
    AdminClient::new(&format!("http://{}", a.admin), token.trim())
}

/// What `hermetic-parent --forward-to unix://PATH` does for a verifier
/// enclave: relays each TCP connection to the enclave's endpoint.
async fn relay_to(path: PathBuf) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let path = path.clone();
            tokio::spawn(async move {
                if let Ok(mut unix) = tokio::net::UnixStream::connect(&path).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    addr
}

/// In a Nitro enclave only the `--public-endpoint` (vsock) is reachable:
/// a sealed verifier serves its custody routes there too, custodians unseal
/// it through the parent's relay, and a replica joins it the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_routes_and_join_are_served_on_the_public_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let a_data = dir.path().join("a");
    let enclave = Enclave::new();
    let enclave_root = enclave.write_root(dir.path());
    let pinned = dir.path().join("verifier.json");
    std::fs::write(&pinned, describe("aa")).unwrap();
    let (keys, pubs) = custodians(dir.path(), 2);
    let args: Vec<OsString> = vec![
        "--trust-root".into(),
        enclave_root.clone().into(),
        "--pcrs-from".into(),
        pinned.clone().into(),
    ];
    let genesis = with_custodians(&args, &pubs, 2);
    let mut a = spawn(&a_data, &os(&genesis));
    let token = std::fs::read_to_string(a_data.join("admin.token")).unwrap();
    let owner = Signer::generate("owner").unwrap();
    create_owned(
        &admin_a_at(&a, &token),
        &owner,
        NAME,
        Some(policy_toml(NAME, &good_pcrs(), "")),
        SECRET,
    )
    .await;
    terminate(&mut a);
    let b_data = dir.path().join("b");
    copy_dir(&a_data, &b_data);

    // Sealed, with a Unix endpoint standing for the enclave's vsock port.
    let socket = dir.path().join("a.sock");
    let mut sealed_args = args.clone();
    sealed_args.extend([
        "--public-endpoint".into(),
        format!("unix://{}", socket.display()).into(),
    ]);
    let mut a = spawn(&a_data, &os(&sealed_args));
    let parent = format!("http://{}", relay_to(socket.clone()).await);
    let (s, health) = get(format!("{parent}/healthz")).await;
    assert_eq!(s, 200);
    assert!(health.contains("\"state\":\"sealed\""), "{health}");

    // The custodians reach it only through the relay.
    let sim_root = a_data.join("sim-pki").join("root.pem");
    for key in &keys {
        let (key, pinned, sim_root, parent) = (
            key.clone(),
            pinned.clone(),
            sim_root.clone(),
            parent.clone(),
        );
        let out = tokio::task::spawn_blocking(move || {
            bin()
                .args(["custodian", "unseal", "--verifier", &parent, "--key"])
                .arg(&key)
                .arg("--verifier-measurements")
                .arg(&pinned)
                .arg("--trust-root")
                .arg(&sim_root)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_unsealed(&a).await;
    // The full service took the endpoint over.
    let mut unsealed = false;
    for _ in 0..200 {
        if let Ok((s, body)) = HttpClient::new(Duration::from_secs(2))
            .send(
                hyper::Method::GET,
                &format!("{parent}/healthz"),
                &[],
                vec![],
            )
            .await
        {
            if s == 200 && body == b"ok\n" {
                unsealed = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(unsealed, "the endpoint did not come back unsealed");

    // A replica joins through the relay too.
    let mut join = args.clone();
    join.extend(["--join".into(), parent.clone().into()]);
    let mut b = spawn(&b_data, &os(&join));
    assert_eq!(
        released_sha256(&b, &enclave).await,
        released_sha256(&a, &enclave).await
    );
    assert_eq!(forwarded_records(&a_data).len(), 1);
    terminate(&mut b);
    terminate(&mut a);
}
