//! A measurement set must pin the enclave image (PCR0, PCR8, or PCR1 and
//! PCR2): `change propose policy` refuses a file whose set does not, and the
//! service refuses an owner-signed statement carrying such a policy, saying
//! why, without replacing the policy in force. The last test serves a
//! simulated enclave (its test root trusted), so it needs the `test-roots`
//! feature; the others run in both builds.
#![cfg_attr(not(feature = "test-roots"), allow(dead_code, unused_imports))]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use common::{
    config, create_owned, good_pcrs, owner_change, policy_change, policy_toml, spawn, Enclave,
    Service, SECRET_NAME, SECRET_VALUE,
};
use hermetic_approval::{Action, Signer, Statement, StatementFile};
use hermetic_tlog::note;
use hermetic_verifier::client::{AdminClient, ClientError};
use hermetic_verifier::clock::SystemClock;
use hermetic_verifier::policy::SecretPolicy;
use hermetic_verifier::store::{MasterKey, Store};

/// A policy whose only set names exactly `indices` (values from `pcrs`).
fn policy_naming(indices: &[u8], pcrs: &BTreeMap<u8, Vec<u8>>) -> String {
    let mut s = format!("[secrets.{SECRET_NAME}]\n[[secrets.{SECRET_NAME}.measurements]]\n");
    for i in indices {
        s.push_str(&format!("pcr{i} = \"{}\"\n", hex::encode(&pcrs[i])));
    }
    s
}

#[test]
fn propose_refuses_a_file_whose_set_names_only_pcr1() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, policy_naming(&[1], &good_pcrs())).unwrap();
    let out = dir.path().join("statement.json");
    let o = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(["change", "propose", "policy", SECRET_NAME, "--file"])
        .arg(&policy)
        .arg("--out")
        .arg(&out)
        .args(["--deployment", "hermetic-x", "--version", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "secrets.{SECRET_NAME}.measurements[0]: names only pcr1, which does not pin the enclave image"
        )),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing to sign was written");
}

/// An owner-signed statement whose policy (canonical text, written without
/// the validating parser) does not pin the image.
async fn submit_unpinned(admin: &AdminClient, owner: &Signer, indices: &[u8]) -> ClientError {
    let set = indices
        .iter()
        .map(|i| (*i, good_pcrs()[i].clone()))
        .collect();
    let content = SecretPolicy::allowing(set).to_toml(SECRET_NAME);
    let deployment = admin.deployment().await.unwrap().deployment;
    let version = admin.secret_info(SECRET_NAME).await.unwrap().version + 1;
    let text = Statement::new(
        deployment,
        SECRET_NAME,
        Action::Policy,
        version,
        content.as_bytes(),
    )
    .to_text();
    let file = StatementFile {
        statement: note::sign(&text, &[owner]).unwrap(),
        content: Some(content),
        sealed_value: None,
    };
    admin.submit_change(&file).await.unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_refuses_a_set_that_does_not_pin_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = spawn(&data, &[]);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let admin = AdminClient::new(&format!("http://{}", server.admin), token.trim());
    let owner = Signer::generate("owner").unwrap();
    create_owned(
        &admin,
        &owner,
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "")),
        SECRET_VALUE,
    )
    .await;

    // The parent's role and instance alone, PCR1 alone, PCR2 alone, and
    // PCR1 with the parent's PCRs: none names the image.
    for (indices, named) in [
        (&[3u8, 4][..], "pcr3, pcr4"),
        (&[1], "pcr1"),
        (&[2], "pcr2"),
        (&[1, 3, 4], "pcr1, pcr3, pcr4"),
    ] {
        match submit_unpinned(&admin, &owner, indices).await {
            ClientError::Refused { status, refusal } => {
                assert_eq!((status, refusal.reason.as_str()), (400, "invalid_policy"));
                assert!(
                    refusal.message.contains(&format!(
                        "measurements[0]: names only {named}, which does not pin the enclave image"
                    )),
                    "{}",
                    refusal.message
                );
            }
            other => panic!("{indices:?}: {other}"),
        }
    }

    // The policy in force is untouched.
    let text = admin.get_policy(SECRET_NAME).await.unwrap();
    assert!(text.contains("pcr0 = "), "{text}");

    // Each image-pinning form is accepted.
    for indices in [&[0u8][..], &[8], &[1, 2], &[8, 3, 4]] {
        owner_change(
            &admin,
            policy_change(SECRET_NAME, policy_naming(indices, &good_pcrs())),
            &[&owner],
        )
        .await
        .unwrap_or_else(|e| panic!("{indices:?}: {e}"));
    }
    drop(server);
}

/// A store written before the rule may hold a set naming only PCR1. Such a
/// policy is never used: the service starts (so that the owners can act),
/// its start record names the policy as unusable, a release is refused
/// `no_policy`, and the owners' new policy replaces it.
#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_policy_from_before_the_rule_is_unused_until_its_owners_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let owner = Signer::generate("owner").unwrap();
    // What a development start makes: one development custodian, genesis
    // with K = 1; the service unseals it again at start.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let dev = hermetic_custody::CustodianKey::generate(&rng).unwrap();
    std::fs::write(
        data.join(hermetic_verifier::service::DEV_CUSTODIAN_FILE),
        dev.to_file_text().as_bytes(),
    )
    .unwrap();
    let (master_key, record) = hermetic_custody::genesis(
        &hermetic_custody::GenesisParams {
            deployment: format!("hermetic-{}", "ab".repeat(16)),
            custodians: vec![dev.public_key().clone()],
            threshold: 1,
            allow_single_custodian: true,
        },
        &rng,
    )
    .unwrap();
    std::fs::write(
        data.join(hermetic_verifier::service::GENESIS_FILE),
        record.to_json(),
    )
    .unwrap();
    {
        let key = MasterKey::from_bytes(*master_key.expose_secret());
        let store = Store::open(&data, &key, Some(record.deployment())).unwrap();
        let owners = hermetic_approval::OwnerSet::new(vec![owner.verifier_key()], 1).unwrap();
        store.create_secret(SECRET_NAME, &owners).unwrap();
    }
    {
        // What an older version wrote: the policy table, name → TOML.
        let db = redb::Database::create(data.join(hermetic_verifier::store::STORE_FILE)).unwrap();
        let old = SecretPolicy::allowing([(1u8, good_pcrs()[&1].clone())].into());
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<&str, &str>::new("policies"))
            .unwrap()
            .insert(SECRET_NAME, old.to_toml(SECRET_NAME).as_str())
            .unwrap();
        tx.commit().unwrap();
    }
    let cfg = config(dir.path(), Some(root));
    let svc = Service::start(cfg, Arc::new(SystemClock)).await;
    owner_change(
        &svc.admin,
        common::value_change(SECRET_NAME, SECRET_VALUE),
        &[&owner],
    )
    .await
    .unwrap();
    let n = svc.challenge().await;
    let (status, body) = svc.release(&enclave.document(&n), &[SECRET_NAME]).await;
    assert_eq!((status, common::reason(&body).as_str()), (403, "no_policy"));
    let start = common::log_records(&data)
        .into_iter()
        .find(|r| r["entry"]["action"] == "start")
        .unwrap();
    assert_eq!(
        start["entry"]["start"]["unusable_policies"],
        serde_json::json!([SECRET_NAME])
    );
    assert_eq!(start["entry"]["start"]["policies"], 0);

    owner_change(
        &svc.admin,
        policy_change(SECRET_NAME, policy_toml(SECRET_NAME, &good_pcrs(), "")),
        &[&owner],
    )
    .await
    .unwrap();
    let n = svc.challenge().await;
    let (status, body) = svc.release(&enclave.document(&n), &[SECRET_NAME]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    svc.running.stop().await;
}
