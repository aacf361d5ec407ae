//! Owner-approved changes through the real binary: `owner keygen`, `secret
//! create`, `change propose|sign|submit`, the admin API and releases to
//! simulated enclaves (issue 10). The tests that serve a simulated enclave
//! trust its test root, so they need the `test-roots` feature.
#![cfg_attr(not(feature = "test-roots"), allow(dead_code, unused_imports))]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use common::{good_pcrs, policy_toml, reason, spawn, Enclave, Server};
use hermetic_verifier::client::HttpClient;
use hyper::Method;

const NAME: &str = "db-password";
const VALUE: &[u8] = b"owner-approved-value-51c0ffee";

/// The attacker's own image: PCR0/1/2 differ from the legitimate one.
fn attacker_pcrs() -> BTreeMap<u8, Vec<u8>> {
    let mut p = good_pcrs();
    for i in [0u8, 1, 2] {
        p.insert(i, vec![0xa0 + i; 48]);
    }
    p
}

struct Cli {
    admin: String,
    token: PathBuf,
}

impl Cli {
    fn new(server: &Server, data: &Path) -> Cli {
        Cli {
            admin: format!("http://{}", server.admin),
            token: data.join("admin.token"),
        }
    }

    /// A command that talks to the service (admin URL and token from the
    /// environment, as scripts set them).
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
            .args(args)
            .env("HERMETIC_ADMIN_URL", &self.admin)
            .env("HERMETIC_ADMIN_TOKEN_FILE", &self.token)
            .output()
            .unwrap()
    }
}

/// A command with no service settings at all.
fn offline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(args)
        .env_remove("HERMETIC_ADMIN_URL")
        .env_remove("HERMETIC_ADMIN_TOKEN_FILE")
        .output()
        .unwrap()
}

/// The data directory's log key (`log key`, reading the master key as serve does).
fn log_key_of(data: &Path) -> String {
    let out = offline(&["log", "key", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    stdout(&out).trim().to_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{o:?}");
    stdout(o)
}

/// Exit 1 with `reason` on stderr.
#[track_caller]
fn refused_with(o: &Output, reason: &str) {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(o).contains(reason), "wanted {reason}: {}", stderr(o));
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let out = offline(&[
        "owner",
        "keygen",
        "--name",
        name,
        "--out",
        key.to_str().unwrap(),
    ]);
    let public = ok(&out).trim().to_owned();
    assert!(public.starts_with(&format!("{name}+")), "{public}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key file is private");
    }
    // Never overwritten.
    let again = offline(&[
        "owner",
        "keygen",
        "--name",
        name,
        "--out",
        key.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    (key, public)
}

/// Releases `NAME` to an enclave with `pcrs`: the status and, if granted,
/// the value.
async fn release(
    server: &Server,
    enclave: &Enclave,
    pcrs: BTreeMap<u8, Vec<u8>>,
) -> (u16, Result<Vec<u8>, String>) {
    let granted = common::release_with(&HttpClient::default(), server.public, &[NAME], |n| {
        enclave.document_with(
            pcrs,
            Some(n),
            common::now_ms(),
            Some(enclave.key.public_key_bytes().to_vec()),
        )
    })
    .await;
    match granted {
        Ok(granted) => (200, Ok(granted.open_first(&enclave.key))),
        Err((status, reason)) => (status, Err(reason)),
    }
}

fn records(data: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["entry"].clone())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Issue 10, finding 1: a holder of the admin token adds a measurement set
/// of their own image to a secret's policy, fetches the secret, and puts the
/// old policy back. Before the fix `PUT /admin/v1/policies/NAME` with the
/// token alone returned 200 and the attacker's enclave received the secret.
#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_1_the_admin_token_alone_cannot_change_who_receives_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let mut server = spawn(&data, &["--trust-root".as_ref(), root.as_os_str()]);
    let cli = Cli::new(&server, &data);

    // The owner creates nothing: the admin creates the secret with its
    // owner, and the owner alone sets its policy and value.
    let (owner_key, owner_pub) = keygen(dir.path(), "owner");
    ok(&cli.run(&[
        "secret",
        "create",
        NAME,
        "--owner",
        &owner_pub,
        "--threshold",
        "1",
    ]));
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, policy_toml(NAME, &good_pcrs(), "")).unwrap();
    let value = dir.path().join("value");
    std::fs::write(&value, VALUE).unwrap();
    let key = owner_key.to_str().unwrap();
    ok(&cli.run(&[
        "policy",
        "put",
        "--file",
        policy.to_str().unwrap(),
        "--sign",
        key,
    ]));
    ok(&cli.run(&[
        "secret",
        "put",
        NAME,
        "--value-file",
        value.to_str().unwrap(),
        "--sign",
        key,
    ]));
    assert_eq!(
        release(&server, &enclave, good_pcrs()).await.1,
        Ok(VALUE.to_vec())
    );
    let records_before = records(&data).len();

    // The attack: the admin adds the attacker's measurement set.
    let mut attack = policy_toml(NAME, &good_pcrs(), "");
    attack.push_str(&format!("[[secrets.{NAME}.measurements]]\n"));
    for i in [0u8, 1, 2] {
        attack.push_str(&format!(
            "pcr{i} = \"{}\"\n",
            hex::encode(&attacker_pcrs()[&i])
        ));
    }
    let attack_file = dir.path().join("attack.toml");
    std::fs::write(&attack_file, &attack).unwrap();
    let token = std::fs::read_to_string(&cli.token).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let http = HttpClient::default();
    let url = |p: &str| format!("http://{}{p}", server.admin);
    // 1. The old route.
    let (status, body) = http
        .send(
            Method::PUT,
            &url(&format!("/admin/v1/policies/{NAME}")),
            &[("authorization", &auth)],
            attack.clone().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(
        (status.as_u16(), reason(&body).as_str()),
        (403, "owner_approval_required")
    );
    for (method, path) in [
        (Method::DELETE, format!("/admin/v1/policies/{NAME}")),
        (Method::PUT, format!("/admin/v1/secrets/{NAME}")),
        (Method::POST, format!("/admin/v1/secrets/{NAME}/rotate")),
        (Method::DELETE, format!("/admin/v1/secrets/{NAME}")),
    ] {
        let (status, body) = http
            .send(
                method.clone(),
                &url(&path),
                &[("authorization", &auth)],
                b"x".to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(
            (status.as_u16(), reason(&body).as_str()),
            (403, "owner_approval_required"),
            "{method} {path}"
        );
    }
    // 2. The new route with a statement the admin proposes but no owner signed.
    let statement = dir.path().join("attack.json");
    let s = statement.to_str().unwrap();
    ok(&cli.run(&[
        "change",
        "propose",
        "policy",
        NAME,
        "--file",
        attack_file.to_str().unwrap(),
        "--out",
        s,
    ]));
    refused_with(&cli.run(&["change", "submit", s]), "not_enough_approvals");
    // 3. Signed with a key of the admin's own.
    let (admin_key, _) = keygen(dir.path(), "admin");
    ok(&offline(&[
        "change",
        "sign",
        s,
        "--key",
        admin_key.to_str().unwrap(),
    ]));
    refused_with(&cli.run(&["change", "submit", s]), "unknown_owner");
    // 4. The convenience command with the admin's key.
    refused_with(
        &cli.run(&[
            "policy",
            "put",
            "--file",
            attack_file.to_str().unwrap(),
            "--sign",
            admin_key.to_str().unwrap(),
        ]),
        "unknown_owner",
    );
    // 5. Re-creating the secret with the admin as owner.
    let o = cli.run(&[
        "secret",
        "create",
        NAME,
        "--owner",
        &owner_pub,
        "--threshold",
        "1",
    ]);
    refused_with(&o, "secret_exists");
    // 6. Without --sign, the old command is a usage error that says why.
    let o = cli.run(&["policy", "put", "--file", attack_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--sign"), "{}", stderr(&o));

    // The attacker's enclave is still refused; the legitimate one served.
    assert_eq!(
        release(&server, &enclave, attacker_pcrs()).await,
        (403, Err("pcr_mismatch".into()))
    );
    assert_eq!(
        release(&server, &enclave, good_pcrs()).await.1,
        Ok(VALUE.to_vec())
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // The log shows every attempt refused and no change applied; the policy
    // content it recorded is the owner's, with its PCR values.
    let log = records(&data);
    let after = &log[records_before..];
    assert!(
        after.iter().all(|e| e["action"] != "change_applied"),
        "{after:#?}"
    );
    let refused: Vec<&str> = after
        .iter()
        .filter(|e| e["action"] == "change_refused")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        [
            "owner_approval_required",
            "owner_approval_required",
            "owner_approval_required",
            "owner_approval_required",
            "owner_approval_required",
            "not_enough_approvals",
            "unknown_owner",
            "unknown_owner",
        ]
    );
    let applied: Vec<&serde_json::Value> = log
        .iter()
        .filter(|e| e["action"] == "change_applied")
        .collect();
    assert_eq!(applied.len(), 2);
    let recorded = applied[0]["change"]["policy"].as_str().unwrap();
    assert!(
        recorded.contains(&hex::encode(&good_pcrs()[&0])),
        "{recorded}"
    );
    let attacker_pcr0 = hex::encode(&attacker_pcrs()[&0]);
    assert!(applied
        .iter()
        .all(|e| !e.to_string().contains(&attacker_pcr0)));
    let text = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    assert!(!text.contains(std::str::from_utf8(VALUE).unwrap()));
    let key = log_key_of(&data);
    let verify = offline(&[
        "log",
        "verify",
        "--data-dir",
        data.to_str().unwrap(),
        "--log-key",
        &key,
    ]);
    assert!(verify.status.success(), "{verify:?}");
}

/// Owners A, B, C with K=2 through the CLI: every case of the issue.
#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_of_n_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let mut server = spawn(
        &data,
        &[
            "--trust-root".as_ref(),
            root.as_os_str(),
            "--deployment".as_ref(),
            "test-deployment-1".as_ref(),
        ],
    );
    let cli = Cli::new(&server, &data);
    let (a, a_pub) = keygen(dir.path(), "alice");
    let (b, b_pub) = keygen(dir.path(), "bob");
    let (c, c_pub) = keygen(dir.path(), "carol");
    let (d, _) = keygen(dir.path(), "dave");
    let (a, b, c, d) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
        d.to_str().unwrap(),
    );
    let created = ok(&cli.run(&[
        "secret",
        "create",
        NAME,
        "--owner",
        &a_pub,
        "--owner",
        &b_pub,
        "--owner",
        &c_pub,
        "--threshold",
        "2",
    ]));
    assert_eq!(
        created,
        format!("{NAME} created: 2 of 3 owners, version 0\n")
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, policy_toml(NAME, &good_pcrs(), "")).unwrap();
    let evil = dir.path().join("evil.toml");
    std::fs::write(&evil, policy_toml(NAME, &attacker_pcrs(), "")).unwrap();
    let st = dir.path().join("policy.json");
    let s = st.to_str().unwrap();
    let sign = |key: &str| ok(&offline(&["change", "sign", s, "--key", key]));

    // Version 1: the good policy.
    let proposed = ok(&cli.run(&[
        "change",
        "propose",
        "policy",
        NAME,
        "--file",
        good.to_str().unwrap(),
        "--out",
        s,
    ]));
    assert!(
        proposed.contains("policy db-password version 1 for deployment test-deployment-1"),
        "{proposed}"
    );
    // One signature is refused.
    let shown = sign(a);
    assert!(
        shown.contains("content-sha256") && shown.contains(&hex::encode(&good_pcrs()[&0])),
        "{shown}"
    );
    refused_with(&cli.run(&["change", "submit", s]), "not_enough_approvals");
    // A + A counts once.
    assert!(sign(a).contains("(1 signature line(s))"));
    refused_with(&cli.run(&["change", "submit", s]), "not_enough_approvals");
    // A stranger's signature beside A and B is refused.
    let with_d = dir.path().join("with-d.json");
    std::fs::copy(&st, &with_d).unwrap();
    ok(&offline(&[
        "change",
        "sign",
        with_d.to_str().unwrap(),
        "--key",
        b,
    ]));
    ok(&offline(&[
        "change",
        "sign",
        with_d.to_str().unwrap(),
        "--key",
        d,
    ]));
    refused_with(
        &cli.run(&["change", "submit", with_d.to_str().unwrap()]),
        "unknown_owner",
    );
    // A + B applies.
    sign(b);
    let applied = ok(&cli.run(&["change", "submit", s]));
    assert!(
        applied.starts_with("applied: policy db-password version 1;"),
        "{applied}"
    );
    assert!(
        applied.contains("alice+") && applied.contains("bob+"),
        "{applied}"
    );
    // Replaying the applied statement: stale.
    refused_with(&cli.run(&["change", "submit", s]), "stale_version");
    assert_eq!(
        release(&server, &enclave, good_pcrs()).await.0,
        403,
        "no value yet"
    );

    // An older version (1 again, now that 1 is applied): stale.
    let old = dir.path().join("old.json");
    let o = old.to_str().unwrap();
    ok(&offline(&[
        "change",
        "propose",
        "policy",
        NAME,
        "--file",
        evil.to_str().unwrap(),
        "--out",
        o,
        "--deployment",
        "test-deployment-1",
        "--version",
        "1",
    ]));
    ok(&offline(&["change", "sign", o, "--key", a]));
    ok(&offline(&["change", "sign", o, "--key", c]));
    refused_with(&cli.run(&["change", "submit", o]), "stale_version");
    // Another deployment: refused even with a fresh version.
    let other = dir.path().join("other.json");
    let ot = other.to_str().unwrap();
    ok(&offline(&[
        "change",
        "propose",
        "policy",
        NAME,
        "--file",
        evil.to_str().unwrap(),
        "--out",
        ot,
        "--deployment",
        "hermetic-elsewhere",
        "--version",
        "9",
    ]));
    ok(&offline(&["change", "sign", ot, "--key", a]));
    ok(&offline(&["change", "sign", ot, "--key", b]));
    refused_with(&cli.run(&["change", "submit", ot]), "wrong_deployment");
    // Content swapped after signing: the statement names the good policy,
    // the file now carries the attacker's.
    let swap = dir.path().join("swap.json");
    let sw = swap.to_str().unwrap();
    ok(&cli.run(&[
        "change",
        "propose",
        "policy",
        NAME,
        "--file",
        good.to_str().unwrap(),
        "--out",
        sw,
    ]));
    ok(&offline(&["change", "sign", sw, "--key", a]));
    ok(&offline(&["change", "sign", sw, "--key", b]));
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&swap).unwrap()).unwrap();
    let evil_content = hermetic_verifier::client::change::policy_content(
        &std::fs::read_to_string(&evil).unwrap(),
        NAME,
    )
    .unwrap();
    file["content"] = evil_content.into();
    std::fs::write(&swap, serde_json::to_string(&file).unwrap()).unwrap();
    refused_with(&cli.run(&["change", "submit", sw]), "content_mismatch");
    // An owner asked to sign the swapped file refuses too (offline).
    refused_with(
        &offline(&["change", "sign", sw, "--key", c]),
        "content_mismatch",
    );

    // A forged signature: one byte of bob's signature flipped.
    let forged = dir.path().join("forged.json");
    let fg = forged.to_str().unwrap();
    ok(&cli.run(&[
        "change",
        "propose",
        "policy",
        NAME,
        "--file",
        evil.to_str().unwrap(),
        "--out",
        fg,
    ]));
    ok(&offline(&["change", "sign", fg, "--key", a]));
    ok(&offline(&["change", "sign", fg, "--key", b]));
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&forged).unwrap()).unwrap();
    let note = file["statement"].as_str().unwrap().to_owned();
    let (body, last) = note.trim_end().rsplit_once('\n').unwrap();
    let (prefix, b64) = last.rsplit_once(' ').unwrap();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    raw[10] ^= 1;
    file["statement"] = format!(
        "{body}\n{prefix} {}\n",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
    .into();
    std::fs::write(&forged, serde_json::to_string(&file).unwrap()).unwrap();
    refused_with(&cli.run(&["change", "submit", fg]), "bad_signature");

    // After all the refused changes, the attacker's image is still refused.
    assert_eq!(
        release(&server, &enclave, attacker_pcrs()).await,
        (403, Err("pcr_mismatch".into()))
    );

    // A value, by B and C: sealed in the file, never in the clear.
    let value = dir.path().join("value");
    std::fs::write(&value, VALUE).unwrap();
    let vs = dir.path().join("value.json");
    let v = vs.to_str().unwrap();
    // Asking the service, propose refuses a deployment that is not its own.
    refused_with(
        &cli.run(&[
            "change",
            "propose",
            "value",
            NAME,
            "--value-file",
            value.to_str().unwrap(),
            "--out",
            v,
            "--deployment",
            "hermetic-elsewhere",
            "--version",
            "9",
        ]),
        "wrong_deployment",
    );
    assert!(!vs.exists());
    ok(&cli.run(&[
        "change",
        "propose",
        "value",
        NAME,
        "--value-file",
        value.to_str().unwrap(),
        "--out",
        v,
    ]));
    std::fs::remove_file(&value).unwrap();
    ok(&offline(&["change", "sign", v, "--key", b]));
    ok(&offline(&["change", "sign", v, "--key", c]));
    let applied = ok(&cli.run(&["change", "submit", v]));
    assert!(
        applied.contains("value db-password version 2 (value version 1)"),
        "{applied}"
    );
    assert_eq!(
        release(&server, &enclave, good_pcrs()).await.1,
        Ok(VALUE.to_vec())
    );

    // The owner set changes by K of the current owners: now alice alone.
    let os = dir.path().join("owners.json");
    let ow = os.to_str().unwrap();
    ok(&cli.run(&[
        "change",
        "propose",
        "owners",
        NAME,
        "--owner",
        &a_pub,
        "--threshold",
        "1",
        "--out",
        ow,
    ]));
    ok(&offline(&["change", "sign", ow, "--key", a]));
    refused_with(&cli.run(&["change", "submit", ow]), "not_enough_approvals");
    ok(&offline(&["change", "sign", ow, "--key", c]));
    ok(&cli.run(&["change", "submit", ow]));
    let shown = ok(&cli.run(&["secret", "show", NAME]));
    assert!(shown.contains("version: 3\nthreshold: 1 of 1\n"), "{shown}");
    assert!(shown.contains(&format!("owner: {a_pub}\n")), "{shown}");
    // Bob is no longer an owner.
    let ds = dir.path().join("delete.json");
    let de = ds.to_str().unwrap();
    ok(&cli.run(&["change", "propose", "delete", NAME, "--out", de]));
    let by_bob = dir.path().join("delete-bob.json");
    std::fs::copy(&ds, &by_bob).unwrap();
    ok(&offline(&[
        "change",
        "sign",
        by_bob.to_str().unwrap(),
        "--key",
        b,
    ]));
    refused_with(
        &cli.run(&["change", "submit", by_bob.to_str().unwrap()]),
        "unknown_owner",
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // `change sign` needs no network: the service is down, alice signs.
    let o = offline(&["change", "sign", de, "--key", a]);
    assert!(o.status.success(), "{o:?}");
    // Submitting with the service down is an I/O error (2), not a refusal.
    assert_eq!(cli.run(&["change", "submit", de]).status.code(), Some(2));
    assert_eq!(
        offline(&[
            "change",
            "submit",
            "/nonexistent",
            "--token-file",
            "/nonexistent"
        ])
        .status
        .code(),
        Some(2)
    );

    // Restarted with another --deployment: refused at start.
    let o = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--deployment",
            "other",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("test-deployment-1"), "{}", stderr(&o));

    // The same deployment: the delete alice signed applies.
    let mut server = spawn(&data, &["--trust-root".as_ref(), root.as_os_str()]);
    let cli = Cli::new(&server, &data);
    let applied = ok(&cli.run(&["change", "submit", de]));
    assert!(
        applied.contains("(deleted value versions [1])"),
        "{applied}"
    );
    assert_eq!(
        release(&server, &enclave, good_pcrs()).await,
        (403, Err("unknown_secret".into()))
    );
    // Re-created: the versions continue, so no old statement replays
    // (alice's delete, again).
    let created = ok(&cli.run(&[
        "secret",
        "create",
        NAME,
        "--owner",
        &a_pub,
        "--threshold",
        "1",
    ]));
    assert!(created.ends_with("version 4\n"), "{created}");
    refused_with(&cli.run(&["change", "submit", de]), "stale_version");
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // No file the CLI wrote holds the value (raw, hex or base64).
    let needles = [
        VALUE.to_vec(),
        hex::encode(VALUE).into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(VALUE)
            .into_bytes(),
    ];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for n in &needles {
                assert!(!contains(&bytes, n), "{} holds the value", path.display());
            }
        }
    }
    let log = std::fs::read(data.join("audit.jsonl")).unwrap();
    for n in &needles {
        assert!(!contains(&log, n), "the log holds the value");
    }

    // The log: each applied change with its statement hash, approvers'
    // key ids, version and (for a policy) the full content.
    let log = records(&data);
    let applied: Vec<&serde_json::Value> = log
        .iter()
        .filter(|e| e["action"] == "change_applied")
        .collect();
    let actions: Vec<&str> = applied
        .iter()
        .map(|e| e["change"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["policy", "value", "owners", "delete"]);
    let policy = &applied[0]["change"];
    assert_eq!(policy["version"], 1);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&st).unwrap()).unwrap();
    let note = file["statement"].as_str().unwrap();
    assert_eq!(
        policy["statement_sha256"].as_str().unwrap(),
        hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            note.as_bytes()
        ))
    );
    let approvers: Vec<&str> = policy["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(approvers.len(), 2);
    assert!(approvers[0].starts_with("alice+") && approvers[0].len() == "alice+".len() + 8);
    assert!(approvers[1].starts_with("bob+"));
    assert!(policy["policy"]
        .as_str()
        .unwrap()
        .contains(&hex::encode(&good_pcrs()[&2])));
    assert_eq!(applied[1]["secrets"][0]["version"], 1, "the value version");
    assert_eq!(applied[2]["change"]["owners"][0], a_pub.as_str());
    let refused: Vec<&str> = log
        .iter()
        .filter(|e| e["action"] == "change_refused")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    for reason in [
        "not_enough_approvals",
        "unknown_owner",
        "stale_version",
        "wrong_deployment",
        "content_mismatch",
        "bad_signature",
    ] {
        assert!(
            refused.contains(&reason),
            "{reason} not logged: {refused:?}"
        );
    }
    let creates = log
        .iter()
        .filter(|e| e["action"] == "secret_create")
        .count();
    assert_eq!(creates, 2);
    let key = log_key_of(&data);
    let verify = offline(&[
        "log",
        "verify",
        "--data-dir",
        data.to_str().unwrap(),
        "--log-key",
        &key,
    ]);
    assert!(verify.status.success(), "{verify:?}");
}

/// `serve --config` used to load policies at start, bypassing owners.
#[test]
fn serve_refuses_a_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, policy_toml(NAME, &good_pcrs(), "")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("owners"), "{}", stderr(&o));
    assert!(!dir.path().join("data").exists(), "nothing was started");
}
