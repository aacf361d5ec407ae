//! Harness for the end-to-end tests: the real binaries (built by
//! `cargo test --workspace` next to this test's own executable), a TLS CA
//! for the verifier, an EIF whose measurements the simulated enclave
//! reports, and a deployment of verifier + parent on loopback and Unix
//! sockets. Every process is killed when its handle drops.

pub mod front;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary. `cargo test --workspace` builds every
/// binary before running tests; run `cargo build --workspace` first when
/// running this package alone.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

/// A child process whose stderr goes to a log file; killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    /// Waits until the log has a line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before logging {needle:?}:\n{text}",
                    self.name
                );
            }
            assert!(
                start.elapsed() < within,
                "{} did not log {needle:?} in {within:?}:\n{text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion with a time limit.
pub fn run(mut cmd: Command, within: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish in {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, as PEM files.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA's private key (an attested verifier's certificate issuer).
    pub ca_key: PathBuf,
    /// The server key's PKCS#8 DER, to search captures for.
    pub key_der: Vec<u8>,
}

pub fn make_tls(dir: &Path, label: &str) -> Tls {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, format!("{label} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let tls = Tls {
        ca: dir.join(format!("{label}-ca.pem")),
        cert: dir.join(format!("{label}-cert.pem")),
        key: dir.join(format!("{label}-key.pem")),
        ca_key: dir.join(format!("{label}-ca-key.pem")),
        key_der: key.serialize_der(),
    };
    fs::write(&tls.ca_key, ca_key.serialize_pem()).unwrap();
    fs::write(&tls.ca, ca_cert.pem()).unwrap();
    fs::write(&tls.cert, cert.pem()).unwrap();
    fs::write(&tls.key, key.serialize_pem()).unwrap();
    tls
}

/// An enclave image built with `hermetic-eif build` from small fake inputs
/// (the format does not care), with its describe JSON and policy stanza.
pub struct Image {
    pub eif: PathBuf,
    pub describe_json: PathBuf,
}

pub fn make_image(dir: &Path, label: &str, content: &[u8]) -> Image {
    let kernel = dir.join(format!("{label}.kernel"));
    let ramdisk = dir.join(format!("{label}.ramdisk"));
    fs::write(&kernel, [b"kernel:".as_slice(), content].concat()).unwrap();
    fs::write(&ramdisk, [b"ramdisk:".as_slice(), content].concat()).unwrap();
    let eif = dir.join(format!("{label}.eif"));
    let mut build = Command::new(bin("hermetic-eif"));
    build
        .arg("build")
        .arg("--kernel")
        .arg(&kernel)
        .args(["--cmdline", "console=ttyS0"])
        .arg("--ramdisk")
        .arg(&ramdisk)
        .arg("--output")
        .arg(&eif);
    let out = run(build, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "eif build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let describe_json = dir.join(format!("{label}.describe.json"));
    let mut describe = Command::new(bin("hermetic-eif"));
    describe
        .arg("describe")
        .arg(&eif)
        .args(["--format", "json"]);
    let out = run(describe, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "eif describe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(&describe_json, &out.stdout).unwrap();
    Image { eif, describe_json }
}

/// The policy stanza `hermetic-eif policy` writes for `image`.
pub fn policy_for(image: &Image, secret: &str) -> String {
    let mut cmd = Command::new(bin("hermetic-eif"));
    cmd.arg("policy").arg(&image.eif).args(["--secret", secret]);
    let out = run(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "eif policy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// A running verifier (TLS, simulated root trusted) and parent.
pub struct Deployment {
    pub dir: PathBuf,
    pub tls: Tls,
    pub pki_dir: PathBuf,
    pub verifier: Proc,
    /// `tcp://127.0.0.1:PORT` of the verifier's public API.
    pub verifier_endpoint: String,
    pub admin_url: String,
    pub parent: Proc,
    pub parent_endpoint: String,
    pub capture: PathBuf,
    restarts: usize,
    /// How the verifier is told who it is (TLS files, or --nsm ...).
    verifier_mode: Vec<std::ffi::OsString>,
    /// The one owner's private key (`owner keygen`): it approves every
    /// policy and value change.
    pub owner_key: PathBuf,
    /// The verifier's log key (`hermetic-verifier log key`), which every
    /// enclave pins (`--log-key`).
    pub log_key: String,
}

const START: Duration = Duration::from_secs(30);

/// `hermetic-verifier serve` on `dir/verifier-data`, TLS (`mode`: its
/// --tls-cert/--tls-key, or --nsm and its options), the simulated
/// root trusted, both ports chosen by the system; logs
/// to `dir/NAME.log`. Returns it with its public endpoint and admin URL.
fn spawn_verifier(
    dir: &Path,
    name: &str,
    mode: &[std::ffi::OsString],
    pki_dir: &Path,
) -> (Proc, String, String) {
    let mut cmd = Command::new(bin("hermetic-verifier"));
    cmd.arg("serve")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.join("verifier-data"))
        .arg("--trust-root")
        .arg(pki_dir.join("root.pem"))
        .args(mode);
    let mut verifier = Proc::spawn(name, cmd, dir);
    let line = verifier.wait_for("event=listening", START);
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            .to_string()
    };
    let public = field("public=");
    let endpoint = format!("tcp://{}", public.trim_start_matches("https://"));
    (verifier, endpoint, field("admin="))
}

impl Deployment {
    /// Starts the verifier trusting the simulated NSM's test root, creates
    /// each secret of `policy_toml` with one owner (K=1) and sets its policy
    /// by that owner's signed statement, then starts a parent allowed to
    /// reach the verifier.
    pub fn start(dir: &Path, policy_toml: &str) -> Deployment {
        Self::start_with(dir, policy_toml, None)
    }

    /// [`Deployment::start`] with the verifier as a (simulated) attested
    /// enclave: `serve --nsm simulated --pcrs-from` the image's describe
    /// JSON (debug mode if asked), its certificate issued by the test CA.
    /// Its document root is `dir/verifier-sim-pki/root.pem`.
    pub fn start_attested(
        dir: &Path,
        policy_toml: &str,
        verifier_image: &Image,
        debug_mode: bool,
    ) -> Deployment {
        Self::start_with(dir, policy_toml, Some((verifier_image, debug_mode)))
    }

    /// The attested verifier's enclave-side endpoint (`--public-endpoint`;
    /// vsock on a Nitro host, a Unix socket here).
    pub fn verifier_enclave_endpoint(&self) -> String {
        format!(
            "unix://{}",
            self.dir.join("verifier-enclave.sock").display()
        )
    }

    /// The root of the attested verifier's (simulated) documents.
    pub fn verifier_root(&self) -> PathBuf {
        self.dir.join("verifier-sim-pki").join("root.pem")
    }

    fn start_with(dir: &Path, policy_toml: &str, attested: Option<(&Image, bool)>) -> Deployment {
        let tls = make_tls(dir, "verifier");
        let verifier_mode: Vec<std::ffi::OsString> = match attested {
            None => vec![
                "--tls-cert".into(),
                tls.cert.clone().into(),
                "--tls-key".into(),
                tls.key.clone().into(),
            ],
            Some((image, debug_mode)) => {
                let mut mode: Vec<std::ffi::OsString> = vec![
                    "--nsm".into(),
                    "simulated".into(),
                    "--pki-dir".into(),
                    dir.join("verifier-sim-pki").into(),
                    "--pcrs-from".into(),
                    image.describe_json.clone().into(),
                    "--tls-issuer-cert".into(),
                    tls.ca.clone().into(),
                    "--tls-issuer-key".into(),
                    tls.ca_key.clone().into(),
                ];
                if debug_mode {
                    mode.push("--debug-mode".into());
                }
                // Its "vsock" side, for an inbound parent (a Unix socket here).
                mode.push("--public-endpoint".into());
                mode.push(format!("unix://{}", dir.join("verifier-enclave.sock").display()).into());
                mode
            }
        };
        let pki_dir = dir.join("sim-pki");
        // Creating the simulated PKI gives the root the verifier must trust.
        let mut init = Command::new(bin("hermetic-enclave"));
        init.args(["describe-nsm", "--nsm", "simulated", "--pki-dir"])
            .arg(&pki_dir);
        let out = run(init, START);
        assert!(
            out.status.success(),
            "describe-nsm: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let policy = dir.join("policy.toml");
        fs::write(&policy, policy_toml).unwrap();
        let (verifier, verifier_endpoint, admin_url) =
            spawn_verifier(dir, "verifier", &verifier_mode, &pki_dir);
        let data = dir.join("verifier-data");
        let token_file = data.join("admin.token");
        let verifier_cli = |args: &[&str]| {
            let mut cmd = Command::new(bin("hermetic-verifier"));
            cmd.args(args)
                .env("HERMETIC_ADMIN_URL", &admin_url)
                .env("HERMETIC_ADMIN_TOKEN_FILE", &token_file);
            let out = run(cmd, START);
            assert!(
                out.status.success(),
                "hermetic-verifier {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let log_key = verifier_cli(&["log", "key", "--data-dir", data.to_str().unwrap()])
            .trim()
            .to_owned();
        let owner_key = dir.join("owner.key");
        let owner = verifier_cli(&["owner", "keygen", "--out", owner_key.to_str().unwrap()]);
        for name in policy_toml.lines().filter_map(|l| {
            l.strip_prefix("[secrets.")
                .and_then(|rest| rest.strip_suffix(']'))
                .filter(|n| !n.contains('.'))
        }) {
            verifier_cli(&[
                "secret",
                "create",
                name,
                "--owner",
                owner.trim(),
                "--threshold",
                "1",
            ]);
        }
        verifier_cli(&[
            "policy",
            "put",
            "--file",
            policy.to_str().unwrap(),
            "--sign",
            owner_key.to_str().unwrap(),
        ]);

        let capture = dir.join("parent-capture.bin");
        let parent_endpoint = format!("unix://{}", dir.join("parent.sock").display());
        let mut cmd = Command::new(bin("hermetic-parent"));
        cmd.args([
            "--listen",
            &parent_endpoint,
            "--allow",
            &verifier_endpoint,
            "--capture",
        ])
        .arg(&capture);
        let mut parent = Proc::spawn("parent", cmd, dir);
        parent.wait_for("listening", START);

        Deployment {
            dir: dir.to_path_buf(),
            tls,
            pki_dir,
            verifier,
            verifier_endpoint,
            admin_url,
            parent,
            parent_endpoint,
            capture,
            restarts: 0,
            verifier_mode,
            owner_key,
            log_key,
        }
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.join("verifier-data").join("admin.token")
    }

    /// `hermetic-verifier secret put NAME --sign OWNER_KEY`: a value change
    /// the owner approves, sealed to the verifier's intake key.
    pub fn put_secret(&self, name: &str, value: &[u8]) {
        let file = self.dir.join(format!("{name}.value"));
        fs::write(&file, value).unwrap();
        let mut cmd = Command::new(bin("hermetic-verifier"));
        cmd.args(["secret", "put", name, "--value-file"])
            .arg(&file)
            .arg("--sign")
            .arg(&self.owner_key)
            .args(["--admin-url", &self.admin_url, "--token-file"])
            .arg(self.token_file());
        let out = run(cmd, START);
        fs::remove_file(&file).unwrap();
        assert!(
            out.status.success(),
            "secret put: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `hermetic-enclave run` through the parent to this verifier, pinning
    /// the verifier's CA, with `extra` options and then `-- workload...`.
    pub fn enclave(&self, image: &Image, extra: &[&str], workload: &[&str]) -> Command {
        let ca = [
            "--verifier-ca".to_string(),
            self.tls.ca.display().to_string(),
        ];
        self.enclave_pinning(image, &ca, extra, workload)
    }

    /// [`Deployment::enclave`] pinning the verifier by `pins` (any of
    /// --verifier-ca, --verifier-measurements, --verifier-root).
    pub fn enclave_pinning(
        &self,
        image: &Image,
        pins: &[String],
        extra: &[&str],
        workload: &[&str],
    ) -> Command {
        let mut args: Vec<String> = vec![
            "--via".into(),
            self.parent_endpoint.clone(),
            "--verifier".into(),
            self.verifier_endpoint.clone(),
            "--log-key".into(),
            self.log_key.clone(),
        ];
        args.extend(pins.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        enclave_command(&self.pki_dir, image, &args, workload)
    }

    /// Stops the verifier (as if it went down).
    pub fn stop_verifier(&mut self) {
        self.verifier.kill();
    }

    /// Kills the verifier and starts it again on the same data directory
    /// and policy: the store, the admin token and the audit log carry over,
    /// the challenges it issued (kept in memory) do not. Its ports change
    /// (`verifier_endpoint`, `admin_url`); the new process logs to
    /// `verifier-restart-N.log`. Returns once it listens.
    pub fn restart_verifier(&mut self) {
        self.verifier.kill();
        self.restarts += 1;
        let name = format!("verifier-restart-{}", self.restarts);
        let (verifier, endpoint, admin_url) =
            spawn_verifier(&self.dir, &name, &self.verifier_mode, &self.pki_dir);
        self.verifier = verifier;
        self.verifier_endpoint = endpoint;
        self.admin_url = admin_url;
    }
}

/// `hermetic-enclave run --nsm simulated` reporting `image`'s PCRs, with
/// `args` (verifier, CA, secrets...) and then `-- workload...`.
pub fn enclave_command(
    pki_dir: &Path,
    image: &Image,
    args: &[String],
    workload: &[&str],
) -> Command {
    let mut cmd = Command::new(bin("hermetic-enclave"));
    cmd.args(["run", "--nsm", "simulated", "--pki-dir"])
        .arg(pki_dir)
        .arg("--pcrs-from")
        .arg(&image.describe_json)
        .args(args)
        .arg("--")
        .args(workload);
    cmd
}
