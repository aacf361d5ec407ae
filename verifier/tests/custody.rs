//! Custody of the master key through the real binary: genesis with three
//! custodians (K = 2), restart sealed, refusals of verifiers a custodian must
//! not unseal, unseal by two custodians, and what root on the host can read.
#![cfg(feature = "test-roots")]

mod common;

use common::custody::{
    bin, custodians, describe, get, unseal, wait_unsealed, walk, with_custodians,
};
use common::{create_owned, good_pcrs, policy_toml, spawn, terminate, Enclave, Server};
use hermetic_approval::Signer;
use hermetic_verifier::client::{AdminClient, HttpClient};

const SECRET: &[u8] = b"custody-test-value-7f3a9c";
const NAME: &str = "db-password";

/// A challenge and a release of NAME; the status and body.
async fn release(server: &Server, enclave: &Enclave) -> (u16, Vec<u8>, Vec<u8>) {
    let http = HttpClient::default();
    let base = format!("http://{}", server.public);
    let (s, b) = http
        .send(
            hyper::Method::POST,
            &format!("{base}/v1/challenge"),
            &[],
            vec![],
        )
        .await
        .unwrap();
    if s != 200 {
        return (s.as_u16(), b, vec![]);
    }
    let c: hermetic_envelope::wire::ChallengeResponse = serde_json::from_slice(&b).unwrap();
    let nonce = c.nonce_bytes().unwrap();
    let request = hermetic_envelope::wire::ReleaseRequest::new(
        &enclave.document(&nonce),
        vec![NAME.to_owned()],
    );
    let (s, b) = http
        .send(
            hyper::Method::POST,
            &format!("{base}/v1/release"),
            &[("content-type", "application/json")],
            serde_json::to_vec(&request).unwrap(),
        )
        .await
        .unwrap();
    (s.as_u16(), b, nonce)
}

fn opened(body: &[u8], enclave: &Enclave, nonce: &[u8]) -> Vec<u8> {
    let r: hermetic_envelope::wire::ReleaseResponse = serde_json::from_slice(body).unwrap();
    let w = &r.secrets[0];
    let sealed = hermetic_envelope::SealedSecret::try_from(w).unwrap();
    let context = hermetic_envelope::ReleaseContext::new(w.name.clone(), w.version, nonce.to_vec());
    hermetic_envelope::open(&enclave.key, &sealed, &context)
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesis_restart_sealed_two_of_three_custodians_unseal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let enclave = Enclave::new();
    let enclave_root = enclave.write_root(dir.path());
    let pinned = dir.path().join("verifier.json");
    std::fs::write(&pinned, describe("aa")).unwrap();
    let other = dir.path().join("other.json");
    std::fs::write(&other, describe("bb")).unwrap();
    let sim_root = data.join("sim-pki").join("root.pem");
    let (keys, pubs) = custodians(dir.path(), 3);
    // keygen never overwrites.
    let again = bin()
        .args(["custodian", "keygen", "--out"])
        .arg(&keys[0])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));

    // Genesis, N = 3, K = 2.
    let mut args: Vec<std::ffi::OsString> =
        vec!["--trust-root".into(), enclave_root.clone().into()];
    args.extend(["--pcrs-from".into(), pinned.clone().into()]);
    let genesis_args = with_custodians(&args, &pubs, 2);

    let g: Vec<&std::ffi::OsStr> = genesis_args.iter().map(|s| s.as_os_str()).collect();
    let mut server = spawn(&data, &g);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let admin = AdminClient::new(&format!("http://{}", server.admin), token.trim());
    let owner = Signer::generate("owner").unwrap();
    create_owned(
        &admin,
        &owner,
        NAME,
        Some(policy_toml(NAME, &good_pcrs(), "")),
        SECRET,
    )
    .await;
    let (s, body, nonce) = release(&server, &enclave).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(opened(&body, &enclave, &nonce), SECRET);
    let genesis = std::fs::read_to_string(data.join("genesis.json")).unwrap();
    assert!(
        genesis.contains("\"threshold\":2") || genesis.contains("\"threshold\": 2"),
        "{genesis}"
    );
    let records = common::log_records(&data);
    assert!(records.iter().any(|r| r["entry"]["action"] == "genesis"
        && r["entry"]["custody"]["threshold"] == 2
        && r["entry"]["custody"]["custodians"]
            .as_array()
            .unwrap()
            .len()
            == 3));
    terminate(&mut server);

    // Restart: sealed. Releases and admin writes answer 503 sealed.
    let a: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_os_str()).collect();
    let mut server = spawn(&data, &a);
    let (s, health) = get(format!("http://{}/healthz", server.public)).await;
    assert_eq!(s, 200);
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(
        health,
        serde_json::json!({"state": "sealed", "have": 0, "need": 2})
    );
    let (s, body, _) = release(&server, &enclave).await;
    assert_eq!((s, common::reason(&body)), (503, "sealed".to_owned()));
    // While sealed, the public listener describes exactly its custody
    // routes; a body over the limit is a documented refusal, not axum's
    // plain-text answer.
    let (s, doc) = get(format!("http://{}/openapi.json", server.public)).await;
    assert_eq!(s, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let described: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    let served: std::collections::BTreeSet<(String, String)> =
        hermetic_verifier::service::SEALED_ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
    assert_eq!(described, served);
    let (s, body) = HttpClient::default()
        .send(
            hyper::Method::POST,
            &format!("http://{}/v1/custody/unseal/share", server.public),
            &[],
            vec![b'x'; 200 * 1024],
        )
        .await
        .unwrap();
    assert_eq!(
        (s.as_u16(), common::reason(&body)),
        (413, "request_too_large".to_owned())
    );
    assert!(
        doc["paths"]["/v1/custody/unseal/share"]["post"]["responses"]
            .get("413")
            .is_some()
    );
    let admin = AdminClient::new(&format!("http://{}", server.admin), token.trim());
    assert!(admin
        .create_secret("x", &[owner.verifier_key().to_string()], 1)
        .await
        .is_err());

    // A custodian refuses a verifier of other measurements, and one whose
    // document chains to a root it does not trust; nothing is accepted.
    let (code, err) = unseal(&server, &keys[0], &other, &sim_root);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("pcr_mismatch"), "{err}");
    let (code, err) = unseal(&server, &keys[0], &pinned, &enclave_root);
    assert_eq!(code, 1, "{err}");
    let (_, health) = get(format!("http://{}/healthz", server.public)).await;
    assert!(health.contains("\"have\":0"), "{health}");

    // One custodian is not enough.
    let (code, err) = unseal(&server, &keys[0], &pinned, &sim_root);
    assert_eq!(code, 0, "{err}");
    let (_, health) = get(format!("http://{}/healthz", server.public)).await;
    assert!(health.contains("\"have\":1"), "{health}");
    let (s, body, _) = release(&server, &enclave).await;
    assert_eq!((s, common::reason(&body)), (503, "sealed".to_owned()));
    // The same custodian twice is still one share.
    let (code, err) = unseal(&server, &keys[0], &pinned, &sim_root);
    assert_eq!(code, 0, "{err}");
    let (_, health) = get(format!("http://{}/healthz", server.public)).await;
    assert!(health.contains("\"have\":1"), "{health}");

    // The second custodian unseals; the secret is released again.
    let (code, err) = unseal(&server, &keys[2], &pinned, &sim_root);
    assert_eq!(code, 0, "{err}");
    wait_unsealed(&server).await;
    let (s, body, nonce) = release(&server, &enclave).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(opened(&body, &enclave, &nonce), SECRET);
    let records = common::log_records(&data);
    assert!(records.iter().any(|r| r["entry"]["action"] == "unsealed"
        && r["entry"]["custody"]["custodians"]
            .as_array()
            .unwrap()
            .len()
            == 2));

    // Root on the host: every file under the data directory, the argv, the
    // environment and the log hold neither the secret's value nor a
    // custodian's private key.
    let pid = server.child.id();
    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in walk(&data) {
        seen.push((entry.display().to_string(), std::fs::read(&entry).unwrap()));
    }
    for f in ["cmdline", "environ"] {
        seen.push((f.into(), std::fs::read(format!("/proc/{pid}/{f}")).unwrap()));
    }
    seen.push((
        "stderr".into(),
        server.log.lock().unwrap().join("\n").into_bytes(),
    ));
    let custodian_keys: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| {
            std::fs::read_to_string(k)
                .unwrap()
                .trim()
                .as_bytes()
                .to_vec()
        })
        .collect();
    for (what, bytes) in &seen {
        assert!(!contains(bytes, SECRET), "{what} holds the secret");
        for k in &custodian_keys {
            assert!(!contains(bytes, k), "{what} holds a custodian key");
        }
    }
    assert!(!data.join("master.key").exists());
    terminate(&mut server);

    // A debug-mode verifier is refused.
    let mut debug_args = args.clone();
    debug_args.push("--debug-mode".into());
    let d: Vec<&std::ffi::OsStr> = debug_args.iter().map(|s| s.as_os_str()).collect();
    let mut server = spawn(&data, &d);
    let (code, err) = unseal(&server, &keys[1], &pinned, &sim_root);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("debug"), "{err}");
    terminate(&mut server);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
