//! `hermetic-parent` as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hermetic-parent"))
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = bin()
        .args([
            "--listen",
            &format!("tcp://{addr}"),
            "--allow",
            "tcp://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["--listen", "tcp://127.0.0.1:0"],
        vec!["--listen", "127.0.0.1:80", "--allow", "tcp://127.0.0.1:9"],
        vec!["--listen", "tcp://127.0.0.1:0", "--allow", "http://x"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn sigterm_stops_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("parent.sock");
    let mut child = bin()
        .args([
            "--listen",
            &format!("unix://{}", sock.display()),
            "--allow",
            "tcp://127.0.0.1:9",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        let line = lines
            .next()
            .expect("the parent logs before exiting")
            .unwrap();
        if line.contains("listening") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(sock.exists());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    assert!(!sock.exists(), "the socket file is removed on shutdown");
}

#[test]
fn allow_postgres_conflicts_with_forward_to() {
    let out = bin()
        .args([
            "--listen",
            "tcp://127.0.0.1:0",
            "--allow-postgres",
            "tcp://127.0.0.1:9",
            "--forward-to",
            "tcp://127.0.0.1:10",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-postgres"), "{err}");
}
