//! The admin client subcommands against the real binary: what a demo
//! script runs (`secret put/list/rotate/delete`, `policy put/get/list`).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{good_pcrs, policy_toml, spawn};

fn cli(args: &[&str], admin: &str, token_file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(args)
        .args(["--admin-url", admin, "--token-file"])
        .arg(token_file)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn secret_and_policy_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = spawn(&data, &[]);
    let admin = format!("http://{}", server.admin);
    let token = data.join("admin.token");
    let value = dir.path().join("value");
    std::fs::write(&value, b"s3cr3t-demo-value").unwrap();
    let value = value.to_str().unwrap();

    let o = cli(
        &["secret", "put", "db-password", "--value-file", value],
        &admin,
        &token,
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "db-password version 1\n");
    let o = cli(
        &["secret", "rotate", "db-password", "--value-file", value],
        &admin,
        &token,
    );
    assert_eq!(stdout(&o), "db-password version 2\n");

    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        policy_toml("db-password", &good_pcrs(), "max_age_secs = 60"),
    )
    .unwrap();
    let o = cli(
        &["policy", "put", "--file", policy.to_str().unwrap()],
        &admin,
        &token,
    );
    assert!(o.status.success(), "{o:?}");
    let o = cli(&["policy", "get", "db-password"], &admin, &token);
    assert!(stdout(&o).contains("max_age_secs = 60"), "{}", stdout(&o));
    assert_eq!(
        stdout(&cli(&["policy", "list"], &admin, &token)),
        "db-password\n"
    );

    let listed = stdout(&cli(&["secret", "list"], &admin, &token));
    assert!(
        listed.starts_with("db-password\tlatest 2\tversions [1, 2]\tpolicy"),
        "{listed}"
    );
    assert!(!listed.contains("s3cr3t"));

    // A wrong token is refused with exit 1 and the reason.
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "nope").unwrap();
    let o = cli(&["secret", "list"], &admin, &bad);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unauthorized"));

    // An invalid policy (no measurement set) is refused by the client
    // before it is sent; an unknown secret cannot be rotated.
    std::fs::write(&policy, "[secrets.x]\nallow_debug = true\n").unwrap();
    let o = cli(
        &["policy", "put", "--file", policy.to_str().unwrap()],
        &admin,
        &token,
    );
    assert_eq!(o.status.code(), Some(1));
    let o = cli(
        &["secret", "rotate", "nope", "--value-file", value],
        &admin,
        &token,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown_secret"));

    let o = cli(&["secret", "delete", "db-password"], &admin, &token);
    assert_eq!(stdout(&o), "db-password deleted (versions [1, 2])\n");
    assert_eq!(stdout(&cli(&["secret", "list"], &admin, &token)), "");
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // The service log names each refusal's reason and never a value or token.
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains("event=refused reason=unauthorized status=401"),
        "{log}"
    );
    assert!(
        log.contains("event=refused reason=unknown_secret status=404"),
        "{log}"
    );
    assert!(log.contains("event=admin_token_created"), "{log}");
    let token = std::fs::read_to_string(&token).unwrap();
    assert!(
        !log.contains("s3cr3t") && !log.contains(token.trim()),
        "{log}"
    );
}
