//! Shared fixtures: a simulated enclave (test PKI, leaf, HPKE key, PCRs)
//! and an in-process service on 127.0.0.1 with ephemeral ports.
#![allow(dead_code)]

pub mod custody;
pub mod pg;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hermetic_approval::{OwnerSet, Signer, StatementFile};
use hermetic_attestation::simulator::{Leaf, TestPki};
use hermetic_attestation::Document;
use hermetic_envelope::EnclaveKey;
use hermetic_envelope::Zeroizing;
use hermetic_verifier::client::change::{self, Proposal};
use hermetic_verifier::client::{AdminClient, ClientError, HttpClient};
use hermetic_verifier::clock::Clock;
use hermetic_verifier::service::{self, ChangeApplied, Running, ServeConfig};

pub const SECRET_NAME: &str = "db-password";
pub const SECRET_VALUE: &[u8] = b"correct horse battery staple 7f3a9c";

pub fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

pub fn now_ms() -> u64 {
    now().as_millis() as u64
}

/// The image's PCRs: 0, 1, 2 and 8 non-zero (a production enclave).
pub fn good_pcrs() -> BTreeMap<u8, Vec<u8>> {
    (0u8..16)
        .map(|i| {
            let v = if [0, 1, 2, 8].contains(&i) {
                vec![0x10 + i; 48]
            } else {
                vec![0; 48]
            };
            (i, v)
        })
        .collect()
}

/// A debug-mode enclave: PCR0–2 are zero.
pub fn debug_pcrs() -> BTreeMap<u8, Vec<u8>> {
    let mut p = good_pcrs();
    for i in 0..3 {
        p.insert(i, vec![0; 48]);
    }
    p
}

pub struct Enclave {
    pub pki: TestPki,
    pub leaf: Leaf,
    pub key: EnclaveKey,
}

impl Enclave {
    pub fn new() -> Self {
        let now = now().as_secs() as i64;
        let pki = TestPki::generate(now).unwrap();
        let leaf = pki
            .issue_leaf(
                "i-0123456789abcdef0-enc0123456789abcdef",
                now - 600,
                now + 3 * 3600,
            )
            .unwrap();
        let key = EnclaveKey::from_ikm(&[0x42; 32]).unwrap();
        Enclave { pki, leaf, key }
    }

    pub fn write_root(&self, dir: &Path) -> PathBuf {
        let path = dir.join("test-root.pem");
        std::fs::write(&path, self.pki.root_pem()).unwrap();
        path
    }

    pub fn document_with(
        &self,
        pcrs: BTreeMap<u8, Vec<u8>>,
        nonce: Option<&[u8]>,
        timestamp_ms: u64,
        public_key: Option<Vec<u8>>,
    ) -> Vec<u8> {
        let doc = Document {
            module_id: "i-0123456789abcdef0-enc0123456789abcdef".into(),
            digest: "SHA384".into(),
            timestamp_ms,
            pcrs,
            certificate: self.leaf.der.clone(),
            cabundle: self.pki.cabundle(),
            public_key,
            user_data: None,
            nonce: nonce.map(<[u8]>::to_vec),
            unknown_fields: vec![],
        };
        self.leaf.sign(&doc).unwrap()
    }

    /// A fresh production-mode document with our key and `nonce`.
    pub fn document(&self, nonce: &[u8]) -> Vec<u8> {
        self.document_with(
            good_pcrs(),
            Some(nonce),
            now_ms(),
            Some(self.key.public_key_bytes().to_vec()),
        )
    }
}

/// A policy allowing `pcrs` (indices 0, 1, 2, 8 taken from them).
pub fn policy_toml(name: &str, pcrs: &BTreeMap<u8, Vec<u8>>, extra: &str) -> String {
    let mut s = format!("[secrets.{name}]\n{extra}\n[[secrets.{name}.measurements]]\n");
    for i in [0u8, 1, 2, 8] {
        s.push_str(&format!("pcr{i} = \"{}\"\n", hex::encode(&pcrs[&i])));
    }
    s
}

/// An unsigned statement file for `proposal`, built as `change propose`
/// does: the deployment and next version asked from the service, a value
/// sealed to its intake key.
pub async fn propose(admin: &AdminClient, proposal: &Proposal) -> StatementFile {
    try_propose(admin, proposal).await.unwrap()
}

/// [`propose`], passing the service's errors on.
pub async fn try_propose(
    admin: &AdminClient,
    proposal: &Proposal,
) -> Result<StatementFile, ClientError> {
    admin
        .propose(proposal, None, None)
        .await
        .map_err(|e| match e {
            change::ProposeError::Client(c) => c,
            other => panic!("{other}"),
        })
}

/// Each signer signs the file in turn (as `change sign` does).
pub fn sign_by(file: &StatementFile, signers: &[&Signer]) -> StatementFile {
    signers
        .iter()
        .fold(file.clone(), |f, s| change::sign(&f, s).unwrap().0)
}

/// Propose, sign by `signers`, submit.
pub async fn owner_change(
    admin: &AdminClient,
    proposal: Proposal,
    signers: &[&Signer],
) -> Result<ChangeApplied, ClientError> {
    let file = sign_by(&try_propose(admin, &proposal).await?, signers);
    admin.submit_change(&file).await
}

pub fn policy_change(name: &str, toml: String) -> Proposal {
    Proposal::Policy {
        name: name.into(),
        toml,
    }
}

pub fn value_change(name: &str, value: &[u8]) -> Proposal {
    Proposal::Value {
        name: name.into(),
        value: Zeroizing::new(value.to_vec()),
    }
}

/// Creates `name` owned by `owner` alone (K=1), puts its policy (when
/// given) and its value by owner-approved changes.
pub async fn create_owned(
    admin: &AdminClient,
    owner: &Signer,
    name: &str,
    policy: Option<String>,
    value: &[u8],
) {
    let owners = OwnerSet::new(vec![owner.verifier_key()], 1).unwrap();
    let keys: Vec<String> = owners.owners().iter().map(ToString::to_string).collect();
    admin.create_secret(name, &keys, 1).await.unwrap();
    if let Some(policy) = policy {
        owner_change(admin, policy_change(name, policy), &[owner])
            .await
            .unwrap();
    }
    let applied = owner_change(admin, value_change(name, value), &[owner])
        .await
        .unwrap();
    assert_eq!(applied.value_version, Some(1));
}

pub fn config(dir: &Path, trust_root: Option<PathBuf>) -> ServeConfig {
    let mut c = ServeConfig::new(dir.join("data"));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.admin_listen = "127.0.0.1:0".parse().unwrap();
    c.trust_roots = trust_root.into_iter().collect();
    if !cfg!(feature = "test-roots") {
        c.custodians = genesis_custodians();
        c.custodian_threshold = Some(2);
    }
    c
}

/// Two fresh custodians' public keys. The production build (no
/// `test-roots`) has no development custodian, so a fresh store there
/// starts only with a genesis among real custodians (K >= 2); the tests
/// that run in both builds start it that way. Their private keys are
/// dropped: such a verifier, once restarted, stays sealed.
pub fn genesis_custodians() -> Vec<String> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    (0..2)
        .map(|_| {
            hermetic_custody::CustodianKey::generate(&rng)
                .unwrap()
                .public_key()
                .to_string()
        })
        .collect()
}

/// `serve` arguments for a genesis in the production build when `data`
/// holds no genesis yet (see [`genesis_custodians`]); none otherwise.
pub fn production_genesis_args(data: &Path) -> Vec<String> {
    if cfg!(feature = "test-roots") || data.join("genesis.json").exists() {
        return Vec::new();
    }
    let mut args = Vec::new();
    for key in genesis_custodians() {
        args.push("--custodian".to_owned());
        args.push(key);
    }
    args.extend(["--custodian-threshold".to_owned(), "2".to_owned()]);
    args
}

pub struct Service {
    pub running: Running,
    pub admin: AdminClient,
    pub http: HttpClient,
    pub token: String,
    /// The one owner of the secrets the tests create.
    pub owner: Signer,
}

impl Service {
    pub async fn start(config: ServeConfig, clock: Arc<dyn Clock>) -> Service {
        let data_dir = config.data_dir.clone();
        let running = service::start(config, clock).await.unwrap();
        let token = std::fs::read_to_string(data_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        let admin = AdminClient::new(&format!("http://{}", running.admin_addr), &token);
        Service {
            running,
            admin,
            http: HttpClient::default(),
            token,
            owner: Signer::generate("owner").unwrap(),
        }
    }

    /// Creates `name` owned by [`Service::owner`] with a policy and a value.
    pub async fn seed(&self, name: &str, policy: Option<String>, value: &[u8]) {
        create_owned(&self.admin, &self.owner, name, policy, value).await
    }

    /// A new value for `name`, approved by [`Service::owner`].
    pub async fn put_value(&self, name: &str, value: &[u8]) -> ChangeApplied {
        owner_change(&self.admin, value_change(name, value), &[&self.owner])
            .await
            .unwrap()
    }

    pub fn public_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.public_addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.admin_addr)
    }

    /// POST /v1/challenge and return the raw nonce.
    pub async fn challenge(&self) -> Vec<u8> {
        let (status, body) = self
            .http
            .send(
                hyper::Method::POST,
                &self.public_url("/v1/challenge"),
                &[],
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let c: hermetic_envelope::wire::ChallengeResponse = serde_json::from_slice(&body).unwrap();
        c.nonce_bytes().unwrap()
    }

    /// POST /v1/release; returns the status and body.
    pub async fn release(&self, document: &[u8], names: &[&str]) -> (u16, Vec<u8>) {
        let request = hermetic_envelope::wire::ReleaseRequest::new(
            document,
            names.iter().map(|n| n.to_string()).collect(),
        );
        let (status, body) = self
            .http
            .send(
                hyper::Method::POST,
                &self.public_url("/v1/release"),
                &[("content-type", "application/json")],
                serde_json::to_vec(&request).unwrap(),
            )
            .await
            .unwrap();
        (status.as_u16(), body)
    }
}

/// The refusal reason of a non-2xx answer.
pub fn reason(body: &[u8]) -> String {
    let r: hermetic_envelope::wire::Refusal = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not a refusal: {}", String::from_utf8_lossy(body)));
    r.reason
}

pub struct Server {
    pub child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// Every line the server wrote to stderr so far.
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Spawns the real binary on ephemeral loopback ports (rate limit off).
pub fn spawn(data: &Path, extra: &[&std::ffi::OsStr]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--rate-limit", "0", "--data-dir"])
        .arg(data)
        .args(production_genesis_args(data))
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let sink = log.clone();
    std::thread::spawn(move || {
        // Keep draining so the child never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("event=listening") {
                let _ = tx.send(line.clone());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server did not start");
    let addr = |key: &str| -> SocketAddr {
        let start = line.find(key).unwrap() + key.len();
        line[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    Server {
        public: addr("public=http://"),
        admin: addr("admin=http://"),
        child,
        log,
    }
}

/// A grant over HTTP and the nonce it answers.
pub struct Granted {
    pub nonce: Vec<u8>,
    pub response: hermetic_envelope::wire::ReleaseResponse,
}

impl Granted {
    /// The first released value, opened with `key`.
    pub fn open_first(&self, key: &EnclaveKey) -> Vec<u8> {
        let w = &self.response.secrets[0];
        let sealed = hermetic_envelope::SealedSecret::try_from(w).unwrap();
        hermetic_envelope::open(
            key,
            &sealed,
            &hermetic_envelope::ReleaseContext::new(w.name.clone(), w.version, self.nonce.clone()),
        )
        .unwrap()
        .to_vec()
    }
}

/// Takes a challenge at `public`, makes the document for its nonce with
/// `document`, and asks for a release of `names` there. Anything but a
/// grant: the status (0 when the request failed) and the refusal reason
/// (the body's text when it is not a refusal).
pub async fn release_with(
    http: &HttpClient,
    public: SocketAddr,
    names: &[&str],
    document: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Result<Granted, (u16, String)> {
    let send = |path: &str, body: Vec<u8>| {
        let url = format!("http://{public}{path}");
        async move {
            let (status, body) = http
                .send(hyper::Method::POST, &url, &[], body)
                .await
                .map_err(|e| (0, e.to_string()))?;
            if status != 200 {
                let said = serde_json::from_slice::<hermetic_envelope::wire::Refusal>(&body)
                    .map(|r| r.reason)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
                return Err((status.as_u16(), said));
            }
            Ok(body)
        }
    };
    let body = send("/v1/challenge", vec![]).await?;
    let nonce = serde_json::from_slice::<hermetic_envelope::wire::ChallengeResponse>(&body)
        .unwrap()
        .nonce_bytes()
        .unwrap();
    let request = hermetic_envelope::wire::ReleaseRequest::new(
        &document(&nonce),
        names.iter().map(|n| n.to_string()).collect(),
    );
    let body = send("/v1/release", serde_json::to_vec(&request).unwrap()).await?;
    Ok(Granted {
        nonce,
        response: serde_json::from_slice(&body).unwrap(),
    })
}

/// Asks `server` for a challenge and a release of `name`; returns the status,
/// and the opened value when granted.
pub async fn release_at(
    http: &HttpClient,
    server: &Server,
    enclave: &Enclave,
    name: &str,
) -> (u16, Option<Vec<u8>>) {
    match release_with(http, server.public, &[name], |n| enclave.document(n)).await {
        Ok(granted) => (200, Some(granted.open_first(&enclave.key))),
        Err((status, _)) => (status, None),
    }
}

/// Stops a spawned server with SIGTERM (a clean shutdown) and waits for it.
pub fn terminate(server: &mut Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = server.child.wait().unwrap();
    assert!(code.success(), "serve exited with {code}");
}

/// The records of the audit log in `data`, as JSON values.
pub fn log_records(data: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

impl Drop for Server {
    /// A test that fails half-way leaves no server behind (it would hold the
    /// test's output pipe open).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
