//! `custodian keygen` and `custodian unseal`: a custodian's side of the
//! master key's custody (`hermetic-custody`). The custodian's private key
//! stays in its file; only a share re-sealed to the verifier enclave's
//! attested key leaves, after the document was checked against the
//! measurements the custodian pins, the roots it trusts and its own nonce.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use clap::Subcommand;
use hermetic_attestation::{TrustedRoot, UnixTime};
use hermetic_custody::{
    record_digest, reseal, AttestationPolicy, CustodianKey, GenesisRecord, PinnedMeasurements,
    UnsealPolicy,
};
use hermetic_verifier::client::HttpClient;

/// How old a verifier's unseal document may be.
const MAX_DOCUMENT_AGE: Duration = Duration::from_secs(300);

#[derive(Subcommand)]
pub enum CustodianCommand {
    /// Make a custodian key pair: the private key goes to --out (mode 0600,
    /// never overwritten); the public key (hermetic-custodian-pub-...) is
    /// printed, for `serve --custodian`.
    ///
    /// Exit status: 0 written, 2 usage or I/O error.
    Keygen {
        #[arg(long, value_name = "KEY")]
        out: PathBuf,
    },
    /// Unseal a sealed verifier: check its attestation document (made for
    /// a nonce chosen here, chained to a trusted root, not debug mode, the
    /// pinned measurements, fresh, bound to the genesis record) and only then
    /// re-seal this custodian's share to the document's key.
    ///
    /// Exit status: 0 share accepted (or the verifier unsealed), 1 refused
    /// (by this custodian or by the verifier; the reason is printed), 2 usage
    /// or I/O error.
    Unseal {
        /// The verifier's public API, http://HOST:PORT.
        #[arg(long, value_name = "URL")]
        verifier: String,
        /// This custodian's private key file (from `custodian keygen`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The verifier image's measurements: `hermetic-eif describe` JSON
        /// (or nitro-cli's describe-eif) or a policy file.
        #[arg(long, value_name = "FILE")]
        verifier_measurements: PathBuf,
        /// Trust this root (PEM) instead of the pinned AWS Nitro root
        /// (simulated enclaves; test-roots builds only).
        #[cfg_attr(not(feature = "test-roots"), arg(hide = true))]
        #[arg(long, value_name = "PEM")]
        trust_root: Vec<PathBuf>,
        /// The genesis record (genesis.json) this custodian expects; the
        /// verifier's must be the same.
        #[arg(long, value_name = "FILE")]
        genesis: Option<PathBuf>,
    },
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("hermetic-verifier: {msg}");
    ExitCode::from(code)
}

pub fn custodian(cmd: CustodianCommand) -> ExitCode {
    match cmd {
        CustodianCommand::Keygen { out } => keygen(&out),
        CustodianCommand::Unseal {
            verifier,
            key,
            verifier_measurements,
            trust_root,
            genesis,
        } => unseal(
            &verifier,
            &key,
            &verifier_measurements,
            &trust_root,
            genesis.as_deref(),
        ),
    }
}

fn keygen(out: &std::path::Path) -> ExitCode {
    let rng = SystemRandom::new();
    let key = match CustodianKey::generate(&rng) {
        Ok(k) => k,
        Err(e) => return fail(2, e),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(out).and_then(|mut f| {
        use std::io::Write;
        f.write_all(key.to_file_text().as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        return fail(2, format!("--out {}: {e}", out.display()));
    }
    println!("{}", key.public_key());
    ExitCode::SUCCESS
}

/// A refusal of the verifier's, or of this custodian's.
fn refused(msg: impl std::fmt::Display) -> ExitCode {
    fail(1, format!("refused: {msg}"))
}

fn unseal(
    verifier: &str,
    key_path: &std::path::Path,
    measurements: &std::path::Path,
    roots: &[PathBuf],
    expected_genesis: Option<&std::path::Path>,
) -> ExitCode {
    let Some(base) = verifier.strip_prefix("http://") else {
        return fail(
            2,
            "--verifier: give http://HOST:PORT (the unseal exchange is end-to-end sealed to the attested key; TLS adds nothing to it)",
        );
    };
    let base = format!("http://{}", base.trim_end_matches('/'));
    let key_text = match std::fs::read_to_string(key_path) {
        Ok(t) => hermetic_envelope::Zeroizing::new(t),
        Err(e) => return fail(2, format!("--key {}: {e}", key_path.display())),
    };
    let custodian = match CustodianKey::parse(&key_text) {
        Ok(k) => k,
        Err(e) => return fail(2, format!("--key {}: {e}", key_path.display())),
    };
    // The one measurement-file and root reader, shared with
    // --verifier-measurements elsewhere.
    let (pins, mut trusted) =
        match hermetic_verifier::client::identity::load_pins(measurements, roots, "--trust-root") {
            Ok(loaded) => loaded,
            Err(e) => return fail(2, e),
        };
    if trusted.is_empty() {
        match TrustedRoot::aws_nitro() {
            Ok(root) => trusted.push(root),
            Err(e) => return fail(2, format!("pinned AWS root: {e}")),
        }
    }
    let expected = match expected_genesis {
        None => None,
        Some(path) => match std::fs::read(path).map(|b| GenesisRecord::from_json(&b)) {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => return fail(2, format!("--genesis {}: {e}", path.display())),
            Err(e) => return fail(2, format!("--genesis {}: {e}", path.display())),
        },
    };
    let rng = SystemRandom::new();
    let mut nonce = [0u8; 32];
    if rng.fill(&mut nonce).is_err() {
        return fail(2, "the random number generator failed");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(2, format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        let http = HttpClient::default();
        let post = |path: &str, body: Vec<u8>| {
            let url = format!("{base}{path}");
            let http = &http;
            async move {
                http.send(
                    hyper::Method::POST,
                    &url,
                    &[("content-type", "application/json")],
                    body,
                )
                .await
            }
        };
        let body = serde_json::json!({"nonce": hex::encode(nonce)}).to_string();
        let (status, reply) = match post("/v1/custody/unseal/attest", body.into_bytes()).await {
            Ok(r) => r,
            Err(e) => return fail(2, format!("--verifier {verifier}: {e}")),
        };
        if !status.is_success() {
            return refused(describe(status, &reply));
        }
        #[derive(serde::Deserialize)]
        struct Attested {
            genesis: GenesisRecord,
            attestation_document: String,
        }
        let Ok(attested) = serde_json::from_slice::<Attested>(&reply) else {
            return refused("the verifier's answer is not an unseal attestation");
        };
        if let Some(expected) = &expected {
            if record_digest(expected) != record_digest(&attested.genesis) {
                return refused(
                    "the verifier's genesis record is not the one given with --genesis",
                );
            }
        }
        let Ok(document) =
            base64::engine::general_purpose::STANDARD.decode(&attested.attestation_document)
        else {
            return refused("the attestation document is not base64");
        };
        let now = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => UnixTime::since_unix_epoch(d),
            Err(_) => return fail(2, "the system clock is before 1970"),
        };
        // Any allowed measurement set will do; the first refusal that is
        // not a mismatch stops at once.
        let mut last = None;
        let mut share = None;
        for set in pins.sets() {
            let measurements = match PinnedMeasurements::new(set.clone()) {
                Ok(m) => m,
                Err(e) => return fail(2, format!("--verifier-measurements: {e}")),
            };
            let policy = UnsealPolicy {
                measurements,
                attestation: AttestationPolicy::new(trusted.clone(), MAX_DOCUMENT_AGE),
            };
            match reseal(
                &custodian,
                &attested.genesis,
                &document,
                &nonce,
                &policy,
                now,
                &rng,
            ) {
                Ok(s) => {
                    share = Some(s);
                    break;
                }
                Err(e @ hermetic_custody::Error::PcrMismatch { .. }) => last = Some(e),
                Err(e) => return refused(format!("{} ({})", e, e.reason())),
            }
        }
        let Some(share) = share else {
            return match last {
                Some(e) => refused(format!("{} ({})", e, e.reason())),
                None => refused("no measurement set"),
            };
        };
        let body = match serde_json::to_vec(&share) {
            Ok(b) => b,
            Err(e) => return fail(2, e),
        };
        let (status, reply) = match post("/v1/custody/unseal/share", body).await {
            Ok(r) => r,
            Err(e) => return fail(2, format!("--verifier {verifier}: {e}")),
        };
        if !status.is_success() {
            return refused(describe(status, &reply));
        }
        println!("{}", String::from_utf8_lossy(&reply).trim());
        ExitCode::SUCCESS
    })
}

fn describe(status: hyper::StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => format!(
            "the verifier answered {status}: {} ({})",
            v["message"].as_str().unwrap_or(""),
            v["reason"].as_str().unwrap_or("")
        ),
        Err(_) => format!("the verifier answered {status}"),
    }
}
