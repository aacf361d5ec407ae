//! The files for real Nitro hosts (scripts/nitro/) cannot run here — no
//! Docker engine, no nitro-cli, no /dev/nsm — but the commands they run
//! are ours, so their arguments are checked against our binaries.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use hermetic_e2e::{bin, run};

fn nitro_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/nitro")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The enclave image's CMD, as the container would run it.
#[test]
fn the_enclave_image_command_is_accepted_and_needs_a_real_nsm() {
    let dockerfile = nitro_file("Dockerfile.enclave");
    let cmd_line = dockerfile
        .lines()
        .find(|l| l.starts_with("CMD "))
        .expect("a CMD line");
    // CMD ["sh", "-c", "<script>"]: take the script.
    let script = cmd_line
        .rsplit_once("\", \"")
        .map(|(_, s)| s.trim_end_matches("\"]").replace("\\\"", "\""))
        .expect("CMD [\"sh\", \"-c\", \"...\"]");
    let dir = tempfile::tempdir().unwrap();
    // The verifier image's measurements, as build-verifier.sh writes them.
    let verifier = hermetic_e2e::make_image(dir.path(), "verifier", b"verifier image");
    let log_key = dir.path().join("verifier-log.key");
    std::fs::write(
        &log_key,
        "hermetic.log/hermetic-652ca930885dd2eca3cb5f22c89c67ed+ab588e81+AbJTN2aYOnIKbO5G9/7pNvEcVMbWTwJcRRYJ0aOsdu31\n",
    )
    .unwrap();
    let script = script
        .replace(
            "/etc/hermetic/verifier-measurements.json",
            verifier.describe_json.to_str().unwrap(),
        )
        .replace("/etc/hermetic/verifier-log.key", log_key.to_str().unwrap());
    let mut sh = Command::new("sh");
    sh.args(["-c", &script])
        .env(
            "PATH",
            format!(
                "{}:/usr/bin:/bin",
                bin("hermetic-enclave").parent().unwrap().display()
            ),
        )
        .env("HERMETIC_VERIFIER", "tcp://verifier.internal:8443")
        .env("HERMETIC_SECRET", "db-password");
    let out = run(sh, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Every argument parsed; it stops only because this is not an enclave.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no /dev/nsm: not inside a Nitro Enclave"),
        "{stderr}"
    );
}

/// The verifier image's entrypoint, with the custodian and witness files
/// the image carries, runs `serve` with arguments it accepts (it stops only
/// because there is no /dev/nsm here).
#[test]
fn the_verifier_image_entrypoint_is_accepted_and_needs_a_real_nsm() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let mut custodians = String::new();
    for i in 0..3 {
        let key = dir.path().join(format!("custodian-{i}.key"));
        let mut keygen = Command::new(bin("hermetic-verifier"));
        keygen.args(["custodian", "keygen", "--out"]).arg(&key);
        let out = run(keygen, Duration::from_secs(10));
        assert!(out.status.success());
        custodians.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    std::fs::write(etc.join("custodians.txt"), custodians).unwrap();
    std::fs::write(etc.join("custodian-threshold.txt"), "2\n").unwrap();
    std::fs::write(etc.join("witnesses.txt"), "").unwrap();
    std::fs::write(etc.join("witness-threshold.txt"), "0\n").unwrap();
    let script = nitro_file("verifier-entrypoint.sh")
        .replace("/etc/hermetic", etc.to_str().unwrap())
        .replace(
            "/var/lib/hermetic",
            dir.path().join("data").to_str().unwrap(),
        );
    let mut sh = Command::new("sh");
    sh.args(["-c", &script]).env(
        "PATH",
        format!(
            "{}:/usr/bin:/bin",
            bin("hermetic-verifier").parent().unwrap().display()
        ),
    );
    let out = run(sh, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Every argument parsed (clap would print its usage); `serve` stops
    // at the NSM it cannot open here (exit 2: a device, not a refusal).
    assert!(!stderr.contains("Usage:"), "a usage error: {stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no /dev/nsm: not inside a Nitro Enclave"),
        "{stderr}"
    );
    // Nothing was made: no genesis without the enclave's NSM.
    assert!(!dir.path().join("data/genesis.json").exists());
}

#[test]
fn the_parent_units_run_the_parent_with_arguments_it_accepts() {
    for unit in ["hermetic-parent.service", "hermetic-parent-inbound.service"] {
        check_parent_unit(unit);
    }
}

fn check_parent_unit(name: &str) {
    let unit = nitro_file(name);
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/hermetic-parent"));
    let args: Vec<&str> = words.collect();
    // Parse them without binding vsock: the same arguments with --help
    // must be accepted by clap (exit 0), and each endpoint must parse.
    for (i, a) in args.iter().enumerate() {
        if matches!(*a, "--listen" | "--allow" | "--forward-to") {
            let endpoint: Result<hermetic_transport::Endpoint, _> = args[i + 1].parse();
            assert!(endpoint.is_ok(), "{} {}", a, args[i + 1]);
        }
    }
    let mut cmd = Command::new(bin("hermetic-parent"));
    cmd.args(&args).arg("--help");
    assert!(run(cmd, Duration::from_secs(10)).status.success());
}

#[test]
fn the_host_scripts_are_valid_shell() {
    for script in [
        "build-enclave.sh",
        "run-enclave.sh",
        "build-verifier.sh",
        "run-verifier.sh",
        "verifier-entrypoint.sh",
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../scripts/nitro")
            .join(script);
        let mut cmd = Command::new("bash");
        cmd.arg("-n").arg(&path);
        let out = run(cmd, Duration::from_secs(10));
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
