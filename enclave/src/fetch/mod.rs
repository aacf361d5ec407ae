//! Fetching secrets from the verifier: challenge, attest, release, open.
//!
//! The whole exchange runs inside one TLS session that ends inside the
//! enclave (rustls), with the verifier's CA pinned in the enclave's own
//! configuration — part of the measured image — and reaches the verifier
//! through the untrusted parent, which only moves TLS records
//! (../shared/DESIGN.md, "The release flow"). Even so, every answer is
//! checked as if the channel were hostile: each secret must open under this
//! boot's key, for the name asked, bound to the nonce this enclave used.

mod http;
pub mod receipt;
mod tls;
mod verifier_identity;

use std::time::Duration;

use hermetic_envelope::wire::{self, ChallengeResponse, Refusal, ReleaseRequest, ReleaseResponse};
use hermetic_envelope::{open, EnclaveKey, ReleaseContext, SealedSecret};
use hermetic_tlog::note::VerifierKey;
use hermetic_transport::proxy::connect_via;
use hermetic_transport::{connect, Endpoint};

use crate::keys::attestation_request;
use crate::nsm::Nsm;
use crate::workload::Secrets;

pub use tls::{pinned_client_config, TlsConfigError};
pub use verifier_identity::VerifierPins;

/// Where the verifier is and how to reach it.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// The parent proxy to go through (`vsock://3:8000` on a Nitro host);
    /// `None` connects to the verifier directly.
    pub via: Option<Endpoint>,
    /// The verifier, as the parent's allow-list names it.
    pub verifier: Endpoint,
    /// The name the verifier's certificate must carry.
    pub server_name: String,
    /// PEM of the CA(s) the verifier's certificate must chain to; nothing
    /// else is trusted.
    pub ca_pem: Option<Vec<u8>>,
    /// The verifier enclave's pinned measurements (besides or instead of
    /// the CA; at least one of the two).
    pub verifier_identity: Option<VerifierPins>,
    /// Attempts after the first one, for transient failures.
    pub retries: u32,
    /// Delay before the first retry; doubles each time (capped at 30 s).
    pub backoff: Duration,
    /// Time limit of each whole attempt.
    pub attempt_timeout: Duration,
    /// The verifier's log key: every answer must carry a receipt proving
    /// the release is in the log this key signs.
    pub log_key: VerifierKey,
    /// Witnesses the receipt's checkpoint must be cosigned by (threshold 0:
    /// none required).
    pub witnesses: receipt::Witnesses,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("TLS configuration: {0}")]
    Tls(#[from] TlsConfigError),
    #[error("cannot reach the verifier: {0}")]
    Connect(String),
    #[error("TLS handshake with the verifier failed: {0}")]
    Handshake(String),
    #[error("the verifier is not the pinned verifier: {0}")]
    VerifierIdentity(#[from] hermetic_identity::IdentityError),
    #[error("HTTP exchange with the verifier failed: {0}")]
    Http(String),
    #[error("the verifier took longer than {0:?}")]
    Timeout(Duration),
    #[error("the verifier answered {status}: {reason}: {message}")]
    Refused {
        status: u16,
        reason: String,
        message: String,
    },
    #[error("the verifier's answer is malformed: {0}")]
    BadAnswer(String),
    #[error("the NSM refused to attest: {0}")]
    Nsm(#[from] crate::nsm::NsmError),
    #[error("secret {name:?} does not open for this enclave: {reason}")]
    Unwrap { name: String, reason: &'static str },
    #[error("the answer lacks secret {0:?}")]
    Missing(String),
    #[error("the answer carries a secret that was not asked for, or one twice")]
    Unexpected,
    #[error("the release's log receipt is refused: {0}")]
    Receipt(#[from] receipt::ReceiptError),
    #[error("gave up after {attempts} attempts; last error: {last}")]
    GaveUp {
        attempts: u32,
        last: Box<FetchError>,
    },
}

impl FetchError {
    /// Whether trying again (with a new nonce) could succeed.
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Connect(_)
            | FetchError::Handshake(_)
            | FetchError::Http(_)
            | FetchError::Timeout(_)
            | FetchError::BadAnswer(_) => true,
            // The verifier restarted (its nonce book is in memory) or another
            // instance answered, the nonce expired in transit, or the
            // service is overloaded or failing: the reasons it sends for
            // these are shared with it (`wire::TRANSIENT_REASONS`). A
            // refusal of this enclave (its PCRs, its document, an unknown
            // secret) would only be refused again.
            FetchError::Refused { status, reason, .. } => wire::is_transient(*status, reason),
            // A tampered answer fails to open: a fresh attempt may not be tampered.
            FetchError::Unwrap { .. } | FetchError::Missing(_) | FetchError::Unexpected => true,
            _ => false,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            FetchError::Tls(_) => "tls_config",
            FetchError::Connect(_) => "verifier_unreachable",
            FetchError::Handshake(_) => "tls_handshake_failed",
            FetchError::VerifierIdentity(e) => e.reason(),
            FetchError::Http(_) => "http_failed",
            FetchError::Timeout(_) => "verifier_timeout",
            FetchError::Refused { reason, .. } => reason,
            FetchError::BadAnswer(_) => "bad_answer",
            FetchError::Nsm(e) => e.reason(),
            FetchError::Unwrap { reason, .. } => reason,
            FetchError::Missing(_) => "secret_missing",
            FetchError::Unexpected => "unexpected_secret",
            FetchError::Receipt(e) => e.reason(),
            FetchError::GaveUp { last, .. } => last.reason(),
        }
    }
}

/// Fetches `names`, retrying transient failures with exponential backoff;
/// each attempt starts over with a fresh challenge.
pub async fn fetch_secrets(
    nsm: &dyn Nsm,
    key: &EnclaveKey,
    names: &[String],
    cfg: &FetchConfig,
) -> Result<Secrets, FetchError> {
    let tls = verifier_identity::client_config(cfg)?;
    let mut delay = cfg.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result =
            match tokio::time::timeout(cfg.attempt_timeout, fetch_once(nsm, key, names, cfg, &tls))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(FetchError::Timeout(cfg.attempt_timeout)),
            };
        match result {
            Ok(secrets) => return Ok(secrets),
            Err(e) if e.is_transient() && attempt <= cfg.retries => {
                tracing::warn!(
                    event = "attempt_failed",
                    attempt,
                    reason = e.reason(),
                    error = %e,
                    retry_in = ?delay
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) if attempt > 1 => {
                return Err(FetchError::GaveUp {
                    attempts: attempt,
                    last: Box::new(e),
                })
            }
            Err(e) => return Err(e),
        }
    }
}

async fn fetch_once(
    nsm: &dyn Nsm,
    key: &EnclaveKey,
    names: &[String],
    cfg: &FetchConfig,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<Secrets, FetchError> {
    let stream = match &cfg.via {
        Some(parent) => connect_via(parent, &cfg.verifier, cfg.attempt_timeout)
            .await
            .map_err(|e| FetchError::Connect(e.to_string()))?,
        None => connect(&cfg.verifier)
            .await
            .map_err(|e| FetchError::Connect(e.to_string()))?,
    };
    let tls_stream = tls::handshake(tls.clone(), &cfg.server_name, stream).await?;
    let mut conn = http::Connection::new(tls_stream, &cfg.server_name).await?;

    let challenge: ChallengeResponse = conn
        .post_json("/v1/challenge", &serde_json::json!({}))
        .await?;
    let nonce = challenge
        .nonce_bytes()
        .map_err(|e| FetchError::BadAnswer(format!("challenge nonce: {e}")))?;

    let document = nsm.attestation(&attestation_request(key, Some(nonce.clone()), None))?;
    let request = ReleaseRequest::new(&document, names.to_vec());
    let response: ReleaseResponse = conn.post_json("/v1/release", &request).await?;
    let receipt = response.receipt.clone();
    let versions: std::collections::BTreeMap<String, u64> = response
        .secrets
        .iter()
        .map(|w| (w.name.clone(), w.version))
        .collect();
    let secrets = open_all(key, names, &nonce, response)?;
    // Every secret opened (so `versions` names exactly the ones asked
    // for); now the log must show this very release.
    receipt::check(
        receipt.as_ref(),
        &cfg.log_key,
        &cfg.witnesses,
        &receipt::Expected {
            nonce: &nonce,
            document: &document,
            secrets: versions,
        },
    )?;
    Ok(secrets)
}

/// Opens every requested secret and nothing else.
fn open_all(
    key: &EnclaveKey,
    names: &[String],
    nonce: &[u8],
    response: ReleaseResponse,
) -> Result<Secrets, FetchError> {
    if response.secrets.len() != names.len() {
        return Err(FetchError::Unexpected);
    }
    let mut secrets = Secrets::new();
    for name in names {
        let mut matching = response.secrets.iter().filter(|w| &w.name == name);
        let wrapped = matching
            .next()
            .ok_or_else(|| FetchError::Missing(name.clone()))?;
        if matching.next().is_some() {
            return Err(FetchError::Unexpected);
        }
        let sealed =
            SealedSecret::try_from(wrapped).map_err(|e| FetchError::BadAnswer(e.to_string()))?;
        let context = ReleaseContext {
            name: name.clone(),
            version: wrapped.version,
            nonce: nonce.to_vec(),
        };
        let value = open(key, &sealed, &context).map_err(|e| FetchError::Unwrap {
            name: name.clone(),
            reason: e.reason(),
        })?;
        secrets.insert(name.clone(), value);
    }
    Ok(secrets)
}

/// A non-2xx answer: the verifier's `Refusal` when it sent one.
fn refusal(status: u16, body: &[u8]) -> FetchError {
    match serde_json::from_slice::<Refusal>(body) {
        Ok(r) => FetchError::Refused {
            status,
            reason: r.reason,
            message: r.message,
        },
        Err(_) => FetchError::Refused {
            status,
            reason: "http_error".into(),
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use hermetic_envelope::seal;
    use hermetic_envelope::wire::WrappedSecret;

    use super::*;

    const NONCE: &[u8] = &[7; 32];

    fn key(seed: u8) -> EnclaveKey {
        EnclaveKey::from_ikm(&[seed; 32]).unwrap()
    }

    fn wrapped(to: &EnclaveKey, name: &str, nonce: &[u8], value: &[u8]) -> WrappedSecret {
        let ctx = ReleaseContext {
            name: name.into(),
            version: 3,
            nonce: nonce.to_vec(),
        };
        WrappedSecret::from(&seal(&to.recipient(), &ctx, value, &SystemRandom::new()).unwrap())
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn opens_exactly_the_secrets_asked_for() {
        let k = key(1);
        let response = ReleaseResponse {
            secrets: vec![
                wrapped(&k, "b", NONCE, b"two"),
                wrapped(&k, "a", NONCE, b"one"),
            ],
            receipt: None,
        };
        let secrets = open_all(&k, &names(&["a", "b"]), NONCE, response).unwrap();
        assert_eq!(secrets.get("a"), Some(&b"one"[..]));
        assert_eq!(secrets.get("b"), Some(&b"two"[..]));
    }

    #[test]
    fn refuses_a_secret_sealed_to_another_key() {
        let response = ReleaseResponse {
            secrets: vec![wrapped(&key(2), "a", NONCE, b"one")],
            receipt: None,
        };
        let err = open_all(&key(1), &names(&["a"]), NONCE, response).unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Unwrap {
                    reason: "envelope_open_failed",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_an_answer_to_another_nonce() {
        let k = key(1);
        let response = ReleaseResponse {
            secrets: vec![wrapped(&k, "a", &[8; 32], b"one")],
            receipt: None,
        };
        let err = open_all(&k, &names(&["a"]), NONCE, response).unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Unwrap {
                    reason: "envelope_open_failed",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_secret_relabelled_as_another() {
        let k = key(1);
        let mut w = wrapped(&k, "other", NONCE, b"one");
        w.name = "a".into();
        let err = open_all(
            &k,
            &names(&["a"]),
            NONCE,
            ReleaseResponse {
                secrets: vec![w],
                receipt: None,
            },
        )
        .unwrap_err();
        assert!(matches!(err, FetchError::Unwrap { .. }), "{err}");
    }

    #[test]
    fn refuses_missing_extra_or_repeated_secrets() {
        let k = key(1);
        let missing = ReleaseResponse {
            secrets: vec![wrapped(&k, "b", NONCE, b"two")],
            receipt: None,
        };
        assert!(matches!(
            open_all(&k, &names(&["a"]), NONCE, missing).unwrap_err(),
            FetchError::Missing(n) if n == "a"
        ));
        let extra = ReleaseResponse {
            secrets: vec![wrapped(&k, "a", NONCE, b"1"), wrapped(&k, "b", NONCE, b"2")],
            receipt: None,
        };
        assert!(matches!(
            open_all(&k, &names(&["a"]), NONCE, extra).unwrap_err(),
            FetchError::Unexpected
        ));
        let twice = ReleaseResponse {
            secrets: vec![wrapped(&k, "a", NONCE, b"1"), wrapped(&k, "a", NONCE, b"1")],
            receipt: None,
        };
        assert!(matches!(
            open_all(&k, &names(&["a", "b"]), NONCE, twice).unwrap_err(),
            FetchError::Unexpected
        ));
    }

    fn refused(status: u16, reason: &str) -> FetchError {
        FetchError::Refused {
            status,
            reason: reason.into(),
            message: String::new(),
        }
    }

    #[test]
    fn retries_the_refusals_the_verifier_sends_for_passing_conditions() {
        // A verifier restarted between challenge and release answers 403
        // nonce_unknown; the others are its overload and failure answers.
        for (status, reason) in [
            (403, "nonce_unknown"),
            (403, "nonce_expired"),
            (429, "rate_limited"),
            (503, "timeout"),
            (503, "challenge_capacity"),
            (500, "store_error"),
            (500, "audit_log_unavailable"),
            (502, "http_error"),
        ] {
            assert!(refused(status, reason).is_transient(), "{status} {reason}");
        }
    }

    #[test]
    fn does_not_retry_a_final_refusal() {
        for reason in [
            "pcr_mismatch",
            "debug_enclave",
            "unknown_secret",
            "no_policy",
            "untrusted_root",
            "bad_signature",
            "chain_expired",
            "nonce_replayed",
            "public_key_missing",
            "unknown_nonce",
        ] {
            assert!(!refused(403, reason).is_transient(), "{reason}");
        }
        assert!(!refused(400, "bad_request").is_transient());
    }

    #[test]
    fn error_messages_never_carry_the_secret() {
        let k = key(1);
        let response = ReleaseResponse {
            secrets: vec![wrapped(&key(2), "a", NONCE, b"TOP-SECRET-VALUE")],
            receipt: None,
        };
        let err = open_all(&k, &names(&["a"]), NONCE, response).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("TOP-SECRET-VALUE"));
    }
}
