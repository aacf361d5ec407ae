//! Go's reference implementations (golang.org/x/mod/sumdb/note and
//! sumdb/tlog) through hermetic-tlog's Go program `tlog/tests/go/main.go`:
//! built offline (GOPATH mode, no proxy) from Debian's
//! golang-golang-x-mod-dev source under `/usr/share/gocode`, or
//! `HERMETIC_GO_REF_GOPATH`. It reads a JSON array of requests on stdin and
//! answers a JSON array, one answer per request.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The GOPATH holding golang.org/x/mod's source.
pub fn gopath() -> PathBuf {
    std::env::var_os("HERMETIC_GO_REF_GOPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/gocode"))
}

/// The built reference program.
pub struct GoRef {
    bin: PathBuf,
}

impl GoRef {
    /// The program, built once per test process into `tmp` (a test's
    /// `CARGO_TARGET_TMPDIR`) as `name`. `None` (after printing `skipping:
    /// go reference not found`) when `go` or the x/mod source is missing;
    /// under `CI=true` that is a failure. A present reference whose build
    /// fails is a failure.
    pub fn get(tmp: &str, name: &str) -> Option<&'static GoRef> {
        static BUILT: OnceLock<Option<GoRef>> = OnceLock::new();
        let built = BUILT.get_or_init(|| GoRef::build(tmp, name)).as_ref();
        if built.is_none() {
            assert!(
                !crate::in_ci(),
                "go reference not found (go, and x/mod under {}) with CI=true",
                gopath().display()
            );
            eprintln!("skipping: go reference not found");
        }
        built
    }

    fn build(tmp: &str, name: &str) -> Option<GoRef> {
        let gopath = gopath();
        let have_source = ["note/note.go", "tlog/tlog.go"]
            .iter()
            .all(|p| gopath.join("src/golang.org/x/mod/sumdb").join(p).is_file());
        let tmp = Path::new(tmp);
        let bin = tmp.join(name);
        let tlog_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tlog");
        let built = have_source
            && match Command::new("go")
                .args(["build", "-o"])
                .arg(&bin)
                .arg("./tests/go/main.go")
                .current_dir(&tlog_dir)
                .env("GO111MODULE", "off")
                .env("GOPATH", &gopath)
                .env("GOPROXY", "off")
                .env("GOFLAGS", "")
                .env("GOCACHE", tmp.join("gocache"))
                .status()
            {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => panic!("running go build: {e}"),
                Ok(s) => {
                    assert!(s.success(), "go build of tlog/tests/go/main.go failed: {s}");
                    true
                }
            };
        built.then_some(GoRef { bin })
    }

    /// Runs a batch of requests (a JSON array) and returns the answers,
    /// one per request.
    pub fn run(&self, requests: &Value) -> Vec<Value> {
        let mut child = Command::new(&self.bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the go reference");
        let input = serde_json::to_vec(requests).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Written from another thread: a large batch would fill the pipe
        // while the program's answers fill the other one.
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "go reference failed: {}", out.status);
        let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            answers.len(),
            requests.as_array().map_or(0, Vec::len),
            "one answer per request"
        );
        answers
    }

    /// Runs one request.
    pub fn run_one(&self, request: Value) -> Value {
        self.run(&Value::Array(vec![request])).remove(0)
    }
}
