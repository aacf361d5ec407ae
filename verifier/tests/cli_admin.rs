//! The admin client subcommands against the real binary: what a demo
//! script runs (`owner keygen`, `secret create/put/list/show`, `policy
//! put/get/list` with one owner's key).

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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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
    let key = dir.path().join("owner.key");
    let o = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(["owner", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let owner = stdout(&o).trim().to_owned();
    assert!(owner.starts_with("owner+"), "{owner}");
    // A name no owner set would accept is a usage error, and nothing is written.
    let o = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(["owner", "keygen", "--name", "bad\"name", "--out"])
        .arg(dir.path().join("bad.key"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(!dir.path().join("bad.key").exists());
    let key = key.to_str().unwrap();

    let o = cli(
        &[
            "secret",
            "create",
            "db-password",
            "--owner",
            &owner,
            "--threshold",
            "1",
        ],
        &admin,
        &token,
    );
    assert_eq!(
        stdout(&o),
        "db-password created: 1 of 1 owners, version 0\n",
        "{o:?}"
    );
    let o = cli(
        &[
            "secret",
            "put",
            "db-password",
            "--value-file",
            value,
            "--sign",
            key,
        ],
        &admin,
        &token,
    );
    assert_eq!(
        stdout(&o),
        "db-password value version 1 (change version 1)\n",
        "{o:?}"
    );
    let o = cli(
        &[
            "secret",
            "put",
            "db-password",
            "--value-file",
            value,
            "--sign",
            key,
        ],
        &admin,
        &token,
    );
    assert_eq!(
        stdout(&o),
        "db-password value version 2 (change version 2)\n"
    );

    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        policy_toml("db-password", &good_pcrs(), "max_age_secs = 60"),
    )
    .unwrap();
    let o = cli(
        &[
            "policy",
            "put",
            "--file",
            policy.to_str().unwrap(),
            "--sign",
            key,
        ],
        &admin,
        &token,
    );
    assert_eq!(
        stdout(&o),
        "policy db-password applied (version 3)\n",
        "{o:?}"
    );
    let o = cli(&["policy", "get", "db-password"], &admin, &token);
    assert!(stdout(&o).contains("max_age_secs = 60"), "{}", stdout(&o));
    assert_eq!(
        stdout(&cli(&["policy", "list"], &admin, &token)),
        "db-password\n"
    );

    let listed = stdout(&cli(&["secret", "list"], &admin, &token));
    assert_eq!(
        listed,
        "db-password\tlatest 2\tversions [1, 2]\tpolicy\tversion 3\towners 1 of 1\n"
    );
    let shown = stdout(&cli(&["secret", "show", "db-password"], &admin, &token));
    assert!(shown.contains(&format!("owner: {owner}\n")), "{shown}");
    assert!(!listed.contains("s3cr3t") && !shown.contains("s3cr3t"));

    // A wrong token is refused with exit 1 and the reason.
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "nope").unwrap();
    let o = cli(&["secret", "list"], &admin, &bad);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unauthorized"));

    // An invalid policy (no measurement set) is refused by the client
    // before it is sent; an unknown secret has no value to change.
    std::fs::write(&policy, "[secrets.x]\nallow_debug = true\n").unwrap();
    let o = cli(
        &[
            "policy",
            "put",
            "--file",
            policy.to_str().unwrap(),
            "--sign",
            key,
        ],
        &admin,
        &token,
    );
    assert_eq!(o.status.code(), Some(1));
    let o = cli(
        &[
            "secret",
            "put",
            "nope",
            "--value-file",
            value,
            "--sign",
            key,
        ],
        &admin,
        &token,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown_secret"), "{}", stderr(&o));
    // The removed commands are gone; without --sign, put says why (usage, 2).
    for args in [
        &["secret", "rotate", "db-password", "--value-file", value][..],
        &["secret", "delete", "db-password"][..],
        &["secret", "put", "db-password", "--value-file", value][..],
    ] {
        let o = cli(args, &admin, &token);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
    // An unreachable service is an I/O error (2).
    let o = cli(&["secret", "list"], "http://127.0.0.1:1", &token);
    assert_eq!(o.status.code(), Some(2), "{o:?}");

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
    // Each refusal line names its request's id, to join with the answer's
    // `request_id` and the audit record.
    for line in log.lines().filter(|l| l.contains("event=refused")) {
        let id = line
            .rsplit_once("request_id=")
            .map(|(_, id)| id)
            .unwrap_or("");
        assert!(
            id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()),
            "{line}"
        );
    }
    assert!(
        log.contains("event=change_applied name=db-password action=policy"),
        "{log}"
    );
    let token = std::fs::read_to_string(&token).unwrap();
    assert!(
        !log.contains("s3cr3t") && !log.contains(token.trim()),
        "{log}"
    );
}
