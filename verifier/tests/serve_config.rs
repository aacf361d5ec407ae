//! `serve --config-file FILE` and `serve --print-config`, through the binary:
//! every flag has a key, flags override the file, unknown keys and bad
//! values are refused with their line, a policy file is refused, and the
//! printed configuration holds paths, never key material.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

fn verifier(args: &[&str], extra: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn print_config(file: &Path, flags: &[&str]) -> Output {
    let mut args = vec!["serve", "--print-config"];
    args.extend_from_slice(flags);
    args.push("--config-file");
    verifier(&args, &[file])
}

#[test]
fn flags_override_the_file_which_overrides_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serve.toml");
    std::fs::write(
        &file,
        "# the service's settings\n\
         data-dir = \"/var/lib/hermetic\"\n\
         listen = \"127.0.0.1:9443\"\n\
         rate-limit = 20\n\
         max-nonces-per-address = 8\n\
         trust-root = [\"a.pem\", \"b.pem\"]\n\
         debug-mode = true\n\
         challenge-ttl = \"30s\"\n",
    )
    .unwrap();
    let o = print_config(&file, &["--rate-limit", "7", "--trust-root", "c.pem"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let text = stdout(&o);
    for line in [
        "data-dir = \"/var/lib/hermetic\"",
        "listen = \"127.0.0.1:9443\"",
        "rate-limit = 7",
        "max-nonces-per-address = 8",
        // A repeatable flag on the command line replaces the file's array.
        "trust-root = [\"c.pem\"]",
        "debug-mode = true",
        "challenge-ttl = \"30s\"",
        // Defaults fill the rest.
        "admin-listen = \"127.0.0.1:8444\"",
        "body-limit = 65536",
        "witness = []",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
    // The printed configuration is itself a valid configuration file that
    // gives the same settings.
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, &text).unwrap();
    let again = print_config(&printed, &[]);
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    let strip = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&stdout(&again)), strip(&text));
}

#[test]
fn every_serve_flag_has_a_key() {
    let o = verifier(&["serve", "--print-config"], &[]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let text = stdout(&o);
    let help = stdout(&verifier(&["serve", "--help"], &[]));
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches([',', '.', ')', ':']))
        .filter(|w| !w.is_empty() && !["config-file", "print-config", "help"].contains(w))
        .collect();
    assert!(flags.len() >= 20, "{flags:?}");
    for flag in flags {
        if !help.contains(&format!("  --{flag}")) {
            continue; // mentioned in prose, not a flag of its own
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{flag} = "))
                    || l.starts_with(&format!("# {flag} = "))),
            "--{flag} has no key in:\n{text}"
        );
    }
}

#[test]
fn unknown_keys_and_bad_values_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (body, expect) in [
        (
            "listen = \"127.0.0.1:0\"\n\nrate-limt = 5\n",
            ":3: unknown key `rate-limt`",
        ),
        (
            "# x\nrate-limit = \"fast\"\n",
            ":2: `rate-limit`: invalid value",
        ),
        (
            "challenge-ttl = \"soon\"\n",
            ":1: `challenge-ttl`: invalid value",
        ),
        (
            "debug-mode = \"yes\"\n",
            ":1: `debug-mode` expects true or false",
        ),
        (
            "listen = [\"127.0.0.1:0\"]\n",
            ":1: `listen` expects one value",
        ),
        ("help = true\n", ":1: unknown key `help`"),
        (
            "config-file = \"other.toml\"\n",
            ":1: unknown key `config-file`",
        ),
        ("rate-limit = 5\nrate-limit = 6\n", "not valid TOML"),
    ] {
        let file = dir.path().join("serve.toml");
        std::fs::write(&file, body).unwrap();
        let o = verifier(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--data-dir",
            ],
            &[&data, Path::new("--config-file"), &file],
        );
        assert_eq!(o.status.code(), Some(2), "{body:?}: {o:?}");
        assert!(stderr(&o).contains(expect), "{body:?}: {}", stderr(&o));
        assert!(!data.exists(), "{body:?}: nothing was started");
    }
}

/// The operator's attack the old `--config` allowed: loading a policy at
/// start. Neither a policy file as the configuration nor a `config` key
/// gets one in.
#[test]
fn a_policy_file_is_not_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        common::policy_toml(common::SECRET_NAME, &common::good_pcrs(), ""),
    )
    .unwrap();
    let with_key = dir.path().join("serve.toml");
    std::fs::write(
        &with_key,
        "listen = \"127.0.0.1:0\"\nconfig = \"policy.toml\"\n",
    )
    .unwrap();
    for file in [&policy, &with_key] {
        let o = verifier(
            &["serve", "--data-dir"],
            &[&data, Path::new("--config-file"), file],
        );
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        assert!(stderr(&o).contains("owners"), "{}", stderr(&o));
        assert!(!data.exists(), "nothing was started");
    }
    assert!(stderr(&verifier(
        &["serve", "--data-dir"],
        &[&data, Path::new("--config-file"), &with_key]
    ))
    .contains(":2:"));
}

/// The printed configuration names key files, never their content, and
/// hides URL credentials.
#[test]
fn print_config_never_shows_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("server.key");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nS3CRETKEYMATERIAL\n").unwrap();
    let file = dir.path().join("serve.toml");
    std::fs::write(
        &file,
        format!(
            "tls-cert = \"server.pem\"\ntls-key = {:?}\npublic-endpoint = \"unix:///run/h.sock\"\n",
            key.to_str().unwrap()
        ),
    )
    .unwrap();
    let o = print_config(&file, &[]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let text = stdout(&o);
    assert!(
        text.contains(&format!("tls-key = {:?}", key.to_str().unwrap())),
        "{text}"
    );
    assert!(!text.contains("S3CRETKEYMATERIAL"), "{text}");
    assert!(!stderr(&o).contains("S3CRETKEYMATERIAL"));
}

/// A service started from a file applies the file's settings (here the
/// body limit), with the command line's flags over them.
#[test]
fn serve_applies_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("serve.toml");
    // The command line's `--rate-limit 0` (common::spawn) overrides this.
    std::fs::write(
        &file,
        "body-limit = 200\nrate-limit = 0.001\nrate-burst = 1\n",
    )
    .unwrap();
    let mut server = common::spawn(&data, &["--config-file".as_ref(), file.as_os_str()]);
    let post = |len: usize| -> String {
        let mut s = std::net::TcpStream::connect(server.public).unwrap();
        let body = format!(
            "{{\"attestation_document\":\"{}\",\"secrets\":[]}}",
            "A".repeat(len)
        );
        write!(
            s,
            "POST /v1/release HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    };
    let big = post(400);
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    assert!(big.contains("request_too_large"), "{big}");
    // Under the limit, and not rate-limited although the file asked for a
    // bucket of one: the flag won.
    for _ in 0..3 {
        let small = post(8);
        assert!(small.starts_with("HTTP/1.1 400"), "{small}");
    }
    common::terminate(&mut server);
}
