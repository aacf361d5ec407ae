//! Signal forwarding to the workload. Its own test binary: it sends signals
//! to this very process.

use std::path::Path;
use std::time::{Duration, Instant};

use hermetic_enclave::workload::{run, DeliverySpec, Secrets, WorkloadCommand};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "workload never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `script` (given the marker path as $1), signals this process once
/// the workload has written the marker, and returns the workload's code.
fn forwarded(script: &str, signal: Signal) -> i32 {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ready");
    let command = WorkloadCommand::from_argv([
        "sh".into(),
        "-c".into(),
        script.into(),
        "sh".into(),
        marker.clone().into_os_string(),
    ])
    .unwrap();
    let workload = std::thread::spawn(move || {
        let spec = DeliverySpec::parse::<&str>(&[], None).unwrap();
        run(&spec, &Secrets::new(), &command).unwrap().code()
    });
    wait_for(&marker);
    kill(Pid::this(), signal).unwrap();
    workload.join().unwrap()
}

#[test]
fn sigterm_sigint_and_sighup_reach_the_workload() {
    // A workload that handles the signal exits with its own code...
    // Bounded, so a signal that is not forwarded fails (99) instead of hanging.
    let trapping = r#"trap 'exit 42' TERM; trap 'exit 43' INT; trap 'exit 44' HUP; : > "$1"; i=0; while [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; exit 99"#;
    assert_eq!(forwarded(trapping, Signal::SIGTERM), 42);
    assert_eq!(forwarded(trapping, Signal::SIGINT), 43);
    assert_eq!(forwarded(trapping, Signal::SIGHUP), 44);
    // ...and one that does not dies by it: 128 + n. (`exec` so the signal
    // lands on sleep itself, not on a shell waiting for it.)
    let plain = r#": > "$1"; exec sleep 15"#;
    assert_eq!(forwarded(plain, Signal::SIGTERM), 128 + 15);
    assert_eq!(forwarded(plain, Signal::SIGHUP), 128 + 1);
}
