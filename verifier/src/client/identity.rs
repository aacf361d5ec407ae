//! The client commands' check of the verifier's attested identity
//! (`--verifier ADDR --verifier-measurements FILE`): a TLS handshake with
//! the public listener, checked by `hermetic-identity` (pinned
//! measurements, not debug mode, fresh document, binding of the presented
//! key), and then the admin API's intake key compared with the attested
//! one, so that a value is only ever sealed to the key the verifier
//! enclave's document binds.

use std::sync::Arc;
use std::time::Duration;

use hermetic_attestation::{TrustedRoot, Verifier};
use hermetic_identity::{AttestedServerVerifier, IdentityError, Pins, VerifierIdentity};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

/// Why the verifier's identity could not be established.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("{reason}: {0}", reason = .0.reason())]
    Identity(#[from] IdentityError),
    #[error("verifier_intake_key_mismatch: the admin API's intake key {admin} is not the attested one {attested}: refusing to seal anything to it")]
    IntakeKeyMismatch { admin: String, attested: String },
    #[error("cannot reach the verifier at {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

impl AttestError {
    /// 1 refused (the verifier is not the pinned one), 2 unreachable/usage.
    pub fn exit_code(&self) -> u8 {
        match self {
            AttestError::Identity(_) | AttestError::IntakeKeyMismatch { .. } => 1,
            AttestError::Connect { .. } | AttestError::Setup(_) => 2,
        }
    }
}

/// Reads `--verifier-measurements FILE` and the root PEMs given with
/// `root_flag` (empty: the pinned AWS Nitro root), refusing roots in a
/// build without `test-roots`. The error is a usage/IO message (exit 2).
pub fn load_pins(
    measurements: &std::path::Path,
    roots: &[std::path::PathBuf],
    root_flag: &str,
) -> Result<(Pins, Vec<TrustedRoot>), String> {
    if !roots.is_empty() && !crate::service::TEST_ROOTS_ENABLED {
        return Err(crate::service::NO_TEST_ROOTS.to_owned());
    }
    let pins = Pins::from_file(measurements).map_err(|e| e.to_string())?;
    let roots = roots
        .iter()
        .map(|p| {
            let pem = std::fs::read(p).map_err(|e| format!("{root_flag} {}: {e}", p.display()))?;
            TrustedRoot::from_pem(&pem).map_err(|e| format!("{root_flag} {}: {e}", p.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((pins, roots))
}

/// A TLS client configuration that completes a handshake only with a
/// verifier enclave of `pins` whose fresh document binds the key it
/// presents (`roots` empty: the pinned AWS Nitro root), and the verifier
/// that holds the identity it accepted.
pub fn attested_client_config(
    pins: &Pins,
    roots: Vec<TrustedRoot>,
) -> Result<(Arc<ClientConfig>, Arc<AttestedServerVerifier>), AttestError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let attestation = if roots.is_empty() {
        Verifier::aws().map_err(|e| AttestError::Setup(e.to_string()))?
    } else {
        Verifier::new(roots)
    };
    let verifier = Arc::new(AttestedServerVerifier::new(
        pins.clone(),
        attestation,
        provider.clone(),
    ));
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| AttestError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    Ok((Arc::new(config), verifier))
}

/// Connects to the verifier's public listener `addr` (`host:port`, or an
/// `https://host:port` URL) and returns its verified identity. `roots`
/// empty: the pinned AWS Nitro root.
pub async fn attest_verifier(
    addr: &str,
    pins: &Pins,
    roots: Vec<TrustedRoot>,
    timeout: Duration,
) -> Result<VerifierIdentity, AttestError> {
    let addr = addr
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let (config, verifier) = attested_client_config(pins, roots)?;
    let connect = |message: String| AttestError::Connect {
        addr: addr.clone(),
        message,
    };
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&addr);
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| connect(e.to_string()))?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| connect(e.to_string()))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| match AttestedServerVerifier::refusal(&e) {
                Some(refusal) => AttestError::Identity(refusal),
                None => connect(format!("TLS handshake: {e}")),
            })
    };
    let _session = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| connect("timed out".into()))??;
    verifier
        .accepted()
        .ok_or_else(|| AttestError::Setup("the handshake completed without an identity".into()))
}
