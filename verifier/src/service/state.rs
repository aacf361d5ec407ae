//! What the handlers share, and the release path around the pure decision:
//! parse the request, [`decide`], fetch and seal the granted secrets, log.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::rand::SystemRandom;
use axum::http::StatusCode;
use hermetic_attestation::Verifier;
use hermetic_envelope::wire::{ChallengeResponse, ReleaseRequest, ReleaseResponse, WrappedSecret};
use hermetic_envelope::{seal, ReleaseContext};

use super::metrics::Metrics;
use super::rate_limit::RateLimiter;
use super::refusal::ApiRefusal;
use crate::challenge::NonceBook;
use crate::clock::Clock;
use crate::log::{Entry, SecretRef, SharedLog, Who};
use crate::release::{decide, Lookup, ReleaseError};
use crate::store::Store;

pub struct AppState {
    pub store: Store,
    pub log: SharedLog,
    pub nonces: NonceBook,
    pub verifier: Verifier,
    pub clock: Arc<dyn Clock>,
    pub rng: SystemRandom,
    pub metrics: Metrics,
    pub limiter: RateLimiter,
}

pub type Shared = Arc<AppState>;

fn status_of(error: &ReleaseError) -> StatusCode {
    match error {
        ReleaseError::NoSecretsRequested
        | ReleaseError::TooManySecrets { .. }
        | ReleaseError::DuplicateSecret { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    }
}

impl AppState {
    /// Appends to the audit log; an error is returned to the caller, who
    /// decides whether the action may still be acknowledged.
    pub fn audit(&self, entry: Entry) -> Result<u64, ApiRefusal> {
        self.log.append(entry, self.clock.now()).map_err(|e| {
            eprintln!("hermetic-verifier: level=error event=audit_log_failed error={e:?}");
            ApiRefusal::internal(
                "audit_log_unavailable",
                "the audit log could not be written",
            )
        })
    }

    pub fn challenge(&self) -> Result<ChallengeResponse, ApiRefusal> {
        let (nonce, expires) = self
            .nonces
            .issue(&self.rng, self.clock.now())
            .map_err(|e| {
                ApiRefusal::new(StatusCode::SERVICE_UNAVAILABLE, e.reason(), e.to_string())
            })?;
        self.metrics.challenge();
        let expires_at =
            hermetic_attestation::rfc3339(i64::try_from(expires.as_secs()).unwrap_or(i64::MAX));
        Ok(ChallengeResponse::new(&nonce, expires_at))
    }

    fn lookup(&self, name: &str) -> Lookup {
        match self.store.secret_exists(name) {
            Ok(true) => {}
            Ok(false) => return Lookup::Unknown,
            // Fail closed: a store error never grants.
            Err(_) => return Lookup::NoPolicy,
        }
        match self.store.policy(name) {
            Ok(Some(policy)) => Lookup::Policy(policy),
            _ => Lookup::NoPolicy,
        }
    }

    /// The whole release path. Blocking (ECDSA, store reads, log fsync):
    /// the handler runs it on the blocking pool.
    pub fn release(&self, body: &[u8], client: IpAddr) -> Result<ReleaseResponse, ApiRefusal> {
        let started = Instant::now();
        let result = self.release_inner(body, client);
        match &result {
            Ok(r) => self.metrics.release(r.secrets.len(), started.elapsed()),
            Err(refusal) => self
                .metrics
                .refusal(refusal.reason, Some(started.elapsed())),
        }
        result
    }

    fn release_inner(&self, body: &[u8], client: IpAddr) -> Result<ReleaseResponse, ApiRefusal> {
        let mut who = Who {
            client: Some(client.to_string()),
            ..Who::default()
        };
        let mut requested: Vec<SecretRef> = Vec::new();
        let refuse = |who: &Who, requested: &[SecretRef], refusal: ApiRefusal| {
            // A refusal is answered even if it cannot be logged.
            let _ = self.audit(Entry {
                action: "release".into(),
                verdict: "refused".into(),
                reason: Some(refusal.reason.into()),
                secrets: requested.to_vec(),
                who: who.clone(),
            });
            refusal
        };

        let request: ReleaseRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                let refusal = ApiRefusal::bad_request(
                    "bad_request",
                    format!("the body is not a release request: {e}"),
                );
                return Err(refuse(&who, &requested, refusal));
            }
        };
        // Names are logged as asked, bounded so a huge list cannot bloat the log.
        requested = request
            .secrets
            .iter()
            .take(crate::release::MAX_SECRETS_PER_REQUEST)
            .map(|n| SecretRef {
                name: n.chars().take(128).collect(),
                version: None,
            })
            .collect();
        let document = match request.attestation_document_bytes() {
            Ok(d) => d,
            Err(e) => {
                let refusal = ApiRefusal::bad_request(e.reason(), e.to_string());
                return Err(refuse(&who, &requested, refusal));
            }
        };
        let grant = match decide(
            &self.verifier,
            &document,
            &request.secrets,
            &|name| self.lookup(name),
            &self.nonces,
            self.clock.now(),
        ) {
            Ok(g) => g,
            Err(refused) => {
                if let Some(doc) = &refused.document {
                    who = Who {
                        client: who.client.take(),
                        ..Who::enclave(doc)
                    };
                }
                let refusal = ApiRefusal::new(
                    status_of(&refused.error),
                    refused.error.reason(),
                    refused.error.to_string(),
                );
                return Err(refuse(&who, &requested, refusal));
            }
        };
        who = Who {
            client: who.client.take(),
            ..Who::enclave(&grant.document)
        };

        let mut wrapped = Vec::with_capacity(grant.secrets.len());
        let mut released = Vec::with_capacity(grant.secrets.len());
        for name in &grant.secrets {
            let (version, value) = match self.store.latest_secret(name) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    let error = ReleaseError::UnknownSecret { name: name.clone() };
                    let refusal = ApiRefusal::forbidden(error.reason(), error.to_string());
                    return Err(refuse(&who, &requested, refusal));
                }
                Err(e) => {
                    eprintln!("hermetic-verifier: level=error event=store_read_failed error={e}");
                    let refusal =
                        ApiRefusal::internal("store_error", "the secret store could not be read");
                    return Err(refuse(&who, &requested, refusal));
                }
            };
            let context = ReleaseContext::new(name.clone(), version, grant.nonce.clone());
            match seal(&grant.recipient, &context, &value, &self.rng) {
                Ok(sealed) => wrapped.push(WrappedSecret::from(&sealed)),
                Err(e) => {
                    let refusal = ApiRefusal::forbidden(e.reason(), e.to_string());
                    return Err(refuse(&who, &requested, refusal));
                }
            }
            released.push(SecretRef {
                name: name.clone(),
                version: Some(version),
            });
        }
        // Logged (and synced) before anything leaves: no unrecorded release.
        self.audit(Entry {
            action: "release".into(),
            verdict: "granted".into(),
            reason: None,
            secrets: released,
            who,
        })?;
        Ok(ReleaseResponse { secrets: wrapped })
    }
}
