//! The verifier's attested identity through the real binaries: a verifier
//! started as a (simulated) enclave, `serve --nsm simulated --pcrs-from`
//! its image's describe JSON, and enclaves that pin its measurements.

use std::time::Duration;

use std::process::Command;

use hermetic_e2e::{bin, make_image, policy_for, run, sha256_hex, Deployment, Image, Proc};

const SECRET: &[u8] = b"attested verifier secret 51c2";
const LIMIT: Duration = Duration::from_secs(60);

fn workload() -> Vec<&'static str> {
    vec!["sh", "-c", "printf %s \"$DB_PASSWORD\" | sha256sum"]
}

fn pins(dep: &Deployment, measurements: &Image, with_ca: bool) -> Vec<String> {
    let mut pins = vec![
        "--verifier-measurements".to_string(),
        measurements.describe_json.display().to_string(),
        "--verifier-root".to_string(),
        dep.verifier_root().display().to_string(),
    ];
    if with_ca {
        pins.push("--verifier-ca".into());
        pins.push(dep.tls.ca.display().to_string());
    }
    pins
}

#[test]
fn an_enclave_pinning_the_verifiers_measurements_gets_its_secret_and_refuses_another_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let app = make_image(dir.path(), "app", b"app 1");
    let verifier_image = make_image(dir.path(), "verifier", b"verifier 1");
    let other_verifier = make_image(dir.path(), "other-verifier", b"verifier 2");
    let dep = Deployment::start_attested(
        dir.path(),
        &policy_for(&app, "db-password"),
        &verifier_image,
        false,
    );
    dep.put_secret("db-password", SECRET);

    // The pinned measurements alone, and together with the CA: released.
    for with_ca in [false, true] {
        let out = run(
            dep.enclave_pinning(
                &app,
                &pins(&dep, &verifier_image, with_ca),
                &["--secret", "db-password"],
                &workload(),
            ),
            LIMIT,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "with_ca={with_ca}: {stderr}\nverifier:\n{}",
            dep.verifier.log_text()
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&sha256_hex(SECRET)));
    }

    // The enclave pins another verifier image: refused during the
    // handshake, even though the certificate comes from the CA it also pins.
    let out = run(
        dep.enclave_pinning(
            &app,
            &pins(&dep, &other_verifier, true),
            &["--secret", "db-password"],
            &workload(),
        ),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[verifier_measurements_mismatch]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("measurements differ from the pinned ones"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no workload ran");

    // Documents from a root the enclave does not trust: refused.
    let out = run(
        dep.enclave_pinning(
            &app,
            &[
                "--verifier-measurements".to_string(),
                verifier_image.describe_json.display().to_string(),
                "--verifier-root".to_string(),
                dep.pki_dir.join("root.pem").display().to_string(),
            ],
            &["--secret", "db-password"],
            &workload(),
        ),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[verifier_attestation_invalid]"),
        "{stderr}"
    );

    // The owner's CLI: `secret list` pinning the verifier's measurements
    // works; pinning another image is refused before any admin call.
    let cli = |admin: &Deployment, measurements: &Image, args: &[&str]| {
        let mut cmd = Command::new(bin("hermetic-verifier"));
        cmd.args(args)
            .args(["--admin-url", &admin.admin_url, "--token-file"])
            .arg(admin.token_file())
            .args([
                "--verifier",
                dep.verifier_endpoint.trim_start_matches("tcp://"),
            ])
            .arg("--verifier-measurements")
            .arg(&measurements.describe_json)
            .arg("--verifier-root")
            .arg(dep.verifier_root());
        run(cmd, LIMIT)
    };
    let out = cli(&dep, &verifier_image, &["secret", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("db-password"));
    let out = cli(&dep, &other_verifier, &["secret", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("verifier_measurements_mismatch"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // The owner seals a new value to the attested intake key.
    let value = dir.path().join("v2.value");
    std::fs::write(&value, b"second value").unwrap();
    let owner_key = dep.owner_key.display().to_string();
    let out = cli(
        &dep,
        &verifier_image,
        &[
            "secret",
            "put",
            "db-password",
            "--value-file",
            value.to_str().unwrap(),
            "--sign",
            &owner_key,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An operator pointing the owner at another verifier's admin API (whose
    // intake key it controls) behind the genuine attested listener: refused.
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = Deployment::start(&other_dir, &policy_for(&app, "db-password"));
    let out = cli(
        &other,
        &verifier_image,
        &[
            "secret",
            "put",
            "db-password",
            "--value-file",
            value.to_str().unwrap(),
            "--sign",
            &owner_key,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("verifier_intake_key_mismatch"), "{stderr}");

    // The verifier said loudly that a simulated NSM is not hermetic.
    let log = dep.verifier.log_text();
    assert!(log.contains("event=not_hermetic nsm=simulated"), "{log}");
    assert!(log.contains("event=attested_identity"), "{log}");
}

#[test]
fn a_debug_mode_verifier_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = make_image(dir.path(), "app", b"app 1");
    let verifier_image = make_image(dir.path(), "verifier", b"verifier 1");
    let dep = Deployment::start_attested(
        dir.path(),
        &policy_for(&app, "db-password"),
        &verifier_image,
        true,
    );
    let out = run(
        dep.enclave_pinning(
            &app,
            &pins(&dep, &verifier_image, false),
            &["--secret", "db-password"],
            &workload(),
        ),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[verifier_debug_mode]"), "{stderr}");
}

#[test]
fn the_inbound_parent_relays_a_release_to_the_verifier_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let app = make_image(dir.path(), "app", b"app 1");
    let verifier_image = make_image(dir.path(), "verifier", b"verifier 1");
    let dep = Deployment::start_attested(
        dir.path(),
        &policy_for(&app, "db-password"),
        &verifier_image,
        false,
    );
    dep.put_secret("db-password", SECRET);

    // The verifier host's parent: TCP in, out to the verifier enclave's
    // --public-endpoint (vsock on a Nitro host; a Unix socket here, through
    // the same transport abstraction).
    let capture = dir.path().join("inbound-capture.bin");
    let mut cmd = Command::new(bin("hermetic-parent"));
    cmd.args([
        "--listen",
        "tcp://127.0.0.1:0",
        "--forward-to",
        &dep.verifier_endpoint,
    ])
    .arg("--capture")
    .arg(&capture);
    let mut inbound = Proc::spawn("inbound-parent", cmd, dir.path());
    let line = inbound.wait_for("listening", LIMIT);
    let listen = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .unwrap_or_else(|| panic!("no listen= in {line}"))
        .to_string();

    // The enclave dials the inbound parent as if it were the verifier.
    let mut cmd = Command::new(bin("hermetic-enclave"));
    cmd.args(["run", "--nsm", "simulated", "--pki-dir"])
        .arg(&dep.pki_dir)
        .arg("--pcrs-from")
        .arg(&app.describe_json)
        .args(["--verifier", &listen])
        .args(pins(&dep, &verifier_image, false))
        .args(["--log-key", &dep.log_key])
        .args(["--secret", "db-password", "--"])
        .args(workload());
    let out = run(cmd, LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stderr}\ninbound parent:\n{}",
        inbound.log_text()
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&sha256_hex(SECRET)));
    let log = inbound.log_text();
    assert!(log.contains("inbound=true"), "{log}");
    // What the inbound parent saw: TLS records only, starting with the
    // client's handshake, and not the secret.
    let seen = std::fs::read(&capture).unwrap();
    assert_eq!(&seen[..2], &[b'>', 22]);
    assert!(!seen.windows(SECRET.len()).any(|w| w == SECRET));
    inbound.kill();
}

#[test]
fn the_log_commands_read_the_log_only_from_the_pinned_verifier_image() {
    let dir = tempfile::tempdir().unwrap();
    let app = make_image(dir.path(), "app", b"app 1");
    let verifier_image = make_image(dir.path(), "verifier", b"verifier 1");
    let other_verifier = make_image(dir.path(), "other-verifier", b"verifier 2");
    let dep = Deployment::start_attested(
        dir.path(),
        &policy_for(&app, "db-password"),
        &verifier_image,
        false,
    );
    dep.put_secret("db-password", SECRET);
    let url = format!(
        "https://{}",
        dep.verifier_endpoint.trim_start_matches("tcp://")
    );
    let log = |measurements: &Image, args: &[&str]| {
        let mut cmd = Command::new(bin("hermetic-verifier"));
        cmd.arg("log")
            .args(args)
            .args(["--url", &url, "--verifier-measurements"])
            .arg(&measurements.describe_json)
            .arg("--verifier-root")
            .arg(dep.verifier_root());
        run(cmd, LIMIT)
    };

    // `log key --url`: the key the pinned verifier enclave serves, the same
    // the data directory holds.
    let out = log(&verifier_image, &["key"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), dep.log_key);

    // `log verify --url` over the attested channel: intact.
    let out = log(&verifier_image, &["verify", "--log-key", &dep.log_key]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("audit log intact"), "{stdout}");

    // Pinning another verifier image: both refused during the handshake,
    // exit 1 with the reason, nothing printed on stdout (an operator's
    // verifier cannot hand an auditor its own log key or log).
    for args in [
        vec!["key"],
        vec!["verify", "--log-key", dep.log_key.as_str()],
    ] {
        let out = log(&other_verifier, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("verifier_measurements_mismatch"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }

    // A root the auditor does not trust: refused too (exit 1).
    let mut cmd = Command::new(bin("hermetic-verifier"));
    cmd.args(["log", "key", "--url", &url, "--verifier-measurements"])
        .arg(&verifier_image.describe_json)
        .arg("--verifier-root")
        .arg(dep.pki_dir.join("root.pem"));
    let out = run(cmd, LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("verifier_attestation_invalid"), "{stderr}");
    assert!(out.stdout.is_empty());
}
