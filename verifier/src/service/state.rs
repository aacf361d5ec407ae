//! What the handlers share, and the release path around the pure decision:
//! parse the request, [`decide`], fetch and seal the granted secrets, log.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use axum::http::StatusCode;
use hermetic_attestation::Verifier;
use hermetic_envelope::wire::{
    ChallengeResponse, Receipt, ReleaseRequest, ReleaseResponse, WrappedSecret,
};
use hermetic_envelope::{seal, EnclaveKey, ReleaseContext};

use super::listener::address_key;
use super::metrics::Metrics;
use super::rate_limit::RateLimiter;
use super::refusal::{ApiRefusal, Reason};
use crate::challenge::{IssueError, NonceBook};
use crate::clock::Clock;
use crate::log::{
    Appended, Entry, RefusalSummary, SecretRef, SharedLog, Who, ACTION_REFUSAL_SUMMARY,
};
use crate::release::{decide, Lookup, ReleaseError};
use crate::store::StoreError;
use crate::store::{ReleaseView, Store};

pub struct AppState {
    pub store: Store,
    /// The X25519 key owners seal values to; opened only to apply an
    /// approved value change.
    pub intake: EnclaveKey,
    pub log: Arc<SharedLog>,
    pub nonces: NonceBook,
    pub verifier: Verifier,
    pub clock: Arc<dyn Clock>,
    pub rng: SystemRandom,
    pub metrics: Metrics,
    pub limiter: RateLimiter,
    /// Release refusals not recorded one by one, for `refusal_summary`.
    pub unlogged: Unlogged,
    /// The attested TLS identity (`serve --nsm`), whose current document
    /// `GET /v1/attestation` serves.
    pub identity: Option<Arc<hermetic_identity::server::AttestedTls>>,
    /// `serve --witness`: checkpoints go to witnesses; with K > 0 grants
    /// wait for K cosignatures.
    pub witnesses: Option<Arc<super::witnesses::Witnessing>>,
    /// Key forwarding to joining replicas (`/v1/custody/join/*`); `None`
    /// without an NSM to attest with.
    pub(crate) forwarding: Option<Arc<super::join::Forwarding>>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// The values `/metrics` reads at scrape time.
    pub(super) fn metrics_snapshot(&self) -> super::metrics::Snapshot {
        super::metrics::Snapshot {
            outstanding_nonces: self.nonces.len(),
            log_size: self.log.checkpoint().size,
            witnessed: self.witnesses.as_ref().map(|w| w.cosigned()),
        }
    }
}

pub(super) fn status_of(error: &ReleaseError) -> StatusCode {
    match error {
        ReleaseError::NoSecretsRequested
        | ReleaseError::TooManySecrets { .. }
        | ReleaseError::InvalidSecretName { .. }
        | ReleaseError::DuplicateSecret { .. } => StatusCode::BAD_REQUEST,
        ReleaseError::Nonce(crate::challenge::NonceError::Unavailable) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::FORBIDDEN,
    }
}

/// A challenge that could not be issued: this address holds too many
/// (429), or the book or its randomness failed (503).
pub(super) fn issue_status(error: &IssueError) -> StatusCode {
    match error {
        IssueError::TooManyForAddress => StatusCode::TOO_MANY_REQUESTS,
        IssueError::Full | IssueError::Rng | IssueError::Unavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// An audit-log failure as the caller's refusal.
fn log_refusal(e: crate::log::LogError) -> ApiRefusal {
    tracing::error!(event = "audit_log_failed", error = ?e);
    if let crate::log::LogError::Unavailable(_) = e {
        // The shared log's database is down: transient, retry.
        return store_unavailable();
    }
    ApiRefusal::internal(
        Reason::AuditLogUnavailable,
        "the audit log could not be written",
    )
}

/// The record of a refusal that came after attestation and a consumed
/// nonce.
fn refused_record(who: &Who, requested: &[SecretRef], refusal: ApiRefusal) -> Decided {
    Decided {
        record: Entry {
            action: "release".into(),
            verdict: "refused".into(),
            reason: Some(refusal.reason.as_str().into()),
            secrets: requested.to_vec(),
            who: who.clone(),
            ..Entry::default()
        },
        answer: Answer::Refused(refusal),
    }
}

/// `entry` with the current request's id, unless it names one already.
fn with_request_id(mut entry: Entry) -> Entry {
    if entry.request_id.is_none() {
        entry.request_id = super::request_id::current().map(|id| id.to_string());
    }
    entry
}

/// A release decided up to its audit record ([`AppState::release_decide`]):
/// the record to append, and what the client gets once it is appended.
#[derive(Debug)]
pub struct Decided {
    pub record: Entry,
    pub answer: Answer,
}

/// What a decided release answers once its record is appended.
#[derive(Debug)]
pub enum Answer {
    /// The sealed secrets: they leave only once the record is logged (and,
    /// with witnesses, cosigned).
    Granted(Vec<WrappedSecret>),
    /// Refused after attestation and a consumed nonce: recorded, then
    /// answered (even if it cannot be logged).
    Refused(ApiRefusal),
}

impl AppState {
    /// Appends to the audit log; an error is returned to the caller, who
    /// decides whether the action may still be acknowledged.
    pub fn audit(&self, entry: Entry) -> Result<Appended, ApiRefusal> {
        let started = Instant::now();
        let appended = self.log.append(with_request_id(entry), self.clock.now());
        self.metrics.log_append(started.elapsed());
        appended.map_err(log_refusal)
    }

    /// [`AppState::audit`] for async callers: the task waits for the log's
    /// batch without holding a thread.
    pub async fn audit_async(&self, entry: Entry) -> Result<Appended, ApiRefusal> {
        let started = Instant::now();
        let appended = self
            .log
            .append_async(with_request_id(entry), self.clock.now())
            .await;
        self.metrics.log_append(started.elapsed());
        appended.map_err(log_refusal)
    }

    /// Appends `entry` in the store transaction `tx` when the store keeps
    /// the log (PostgreSQL: the record commits with the change or not at
    /// all) and notes the log size to sign in `end`; otherwise appends it
    /// to the log now (the file log: before the store commits, so a crash
    /// between them leaves a logged change the store lacks, reported at
    /// start as `change_unconfirmed`).
    pub fn audit_in(
        &self,
        entry: Entry,
        tx: &mut dyn crate::store::backend::WriteRows,
        end: &Mutex<Option<u64>>,
    ) -> Result<(), ApiRefusal> {
        let entry = with_request_id(entry);
        match self.log.append_in(&entry, self.clock.now(), tx) {
            Ok(Some((_, size))) => {
                *end.lock().unwrap_or_else(|p| p.into_inner()) = Some(size);
                Ok(())
            }
            Ok(None) => self.audit(entry).map(drop),
            Err(e) => Err(log_refusal(e)),
        }
    }

    /// Signs the checkpoint over a record committed with its change
    /// ([`AppState::audit_in`]); a failure only delays it to the next append.
    pub fn sign_committed(&self, end: &Mutex<Option<u64>>) {
        if let Some(size) = end.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if let Err(e) = self.log.sign_committed(size) {
                tracing::error!(event = "audit_log_sign_failed", error = %e);
            }
        }
    }

    /// Issues a challenge to `client` (counted per address: see
    /// [`address_key`]).
    pub fn challenge(&self, client: IpAddr) -> Result<ChallengeResponse, ApiRefusal> {
        let (nonce, expires) = self
            .nonces
            .issue_to(&self.rng, self.clock.now(), address_key(client))
            .map_err(|e| {
                self.metrics.refusal(e.reason(), None);
                ApiRefusal::new(issue_status(&e), Reason::of(e.reason()), e.to_string())
            })?;
        self.metrics.challenge();
        let expires_at =
            hermetic_attestation::rfc3339(i64::try_from(expires.as_secs()).unwrap_or(i64::MAX));
        Ok(ChallengeResponse::new(&nonce, expires_at))
    }

    /// Reads `name` for a release, its policy and its latest value in one
    /// snapshot ([`Store::release_view`]); the view is kept in `views`, so
    /// that a granted release seals the value read with the policy it was
    /// decided on.
    fn lookup(
        &self,
        name: &str,
        unavailable: &std::cell::Cell<bool>,
        views: &std::cell::RefCell<Vec<(String, ReleaseView)>>,
    ) -> Lookup {
        let started = Instant::now();
        let view = self.store.release_view(name);
        self.metrics.store_read(started.elapsed());
        match view {
            Ok(Some(mut view)) => {
                let policy = view.policy.take();
                views.borrow_mut().push((name.to_owned(), view));
                policy.map_or(Lookup::NoPolicy, Lookup::Policy)
            }
            Ok(None) => Lookup::Unknown,
            Err(e) if e.is_row_refusal() => {
                tracing::error!(event = "store_row_refused", name = %name, reason = %e.reason(), error = %e);
                Lookup::RowRefused {
                    rolled_back: matches!(e, StoreError::RowRolledBack { .. }),
                }
            }
            // Fail closed: a store error never grants (a database that is
            // down is told apart: the client may retry).
            Err(e) => {
                unavailable.set(matches!(e, StoreError::Unavailable(_)));
                Lookup::NoPolicy
            }
        }
    }

    /// The whole release path on this thread, blocking while the log syncs
    /// (where nothing blocks, the handler runs the same steps with the
    /// log's wait as a future: `service::api`). The caller counts it
    /// ([`AppState::count_release`]).
    pub fn release(&self, body: &[u8], client: IpAddr) -> Result<ReleaseResponse, ApiRefusal> {
        let decided = self.release_decide(body, client)?;
        let appended = self.audit(decided.record);
        self.release_finish(decided.answer, appended)
    }

    /// Counts a release's outcome and time in the metrics.
    pub fn count_release(&self, result: &Result<ReleaseResponse, ApiRefusal>, started: Instant) {
        match result {
            Ok(r) => self.metrics.release(r.secrets.len(), started.elapsed()),
            Err(refusal) => self
                .metrics
                .refusal(refusal.reason.as_str(), Some(started.elapsed())),
        }
    }

    /// The release path up to its audit record: parse, [`decide`], read
    /// and seal the granted secrets. `Err` is a refusal that is only counted
    /// (nothing attested, or the nonce not consumed); a `Decided` goes to
    /// the log ([`AppState::audit`] or [`AppState::audit_async`]), then to
    /// [`AppState::release_finish`]. Blocking on a remote store's reads
    /// ([`Store::remote`]); otherwise CPU only (the signature check and the
    /// sealing).
    pub fn release_decide(&self, body: &[u8], client: IpAddr) -> Result<Decided, ApiRefusal> {
        // Until the document verifies and its nonce is consumed, a refusal is
        // only counted (metrics, the periodic `refusal_summary` record):
        // anyone can send such requests, and nothing they sent is logged.
        let request: ReleaseRequest = serde_json::from_slice(body).map_err(|e| {
            self.unlogged(ApiRefusal::bad_request(
                Reason::BadRequest,
                format!("the body is not a release request: {e}"),
            ))
        })?;
        let document = request.attestation_document_bytes().map_err(|e| {
            self.unlogged(ApiRefusal::bad_request(
                Reason::of(e.reason()),
                e.to_string(),
            ))
        })?;
        let client = Some(client.to_string());
        let unavailable = std::cell::Cell::new(false);
        let views = std::cell::RefCell::new(Vec::new());
        let grant = match decide(
            &self.verifier,
            &document,
            &request.secrets,
            &|name| self.lookup(name, &unavailable, &views),
            &self.nonces,
            self.clock.now(),
        ) {
            Ok(g) => g,
            Err(refused) => {
                let refusal = if unavailable.get() {
                    store_unavailable()
                } else {
                    ApiRefusal::new(
                        status_of(&refused.error),
                        Reason::of(refused.error.reason()),
                        refused.error.to_string(),
                    )
                };
                return match refused.attested.as_deref() {
                    // Names were validated before attestation, so they are
                    // well-formed and at most MAX_SECRETS_PER_REQUEST.
                    Some(attested) if attested.nonce_consumed => {
                        let who = Who {
                            client,
                            ..Who::attested(&attested.document, &attested.root_sha256, &document)
                        };
                        let requested: Vec<SecretRef> = request
                            .secrets
                            .iter()
                            .map(|name| SecretRef {
                                name: name.clone(),
                                version: None,
                            })
                            .collect();
                        Ok(refused_record(&who, &requested, refusal))
                    }
                    _ => Err(self.unlogged(refusal)),
                };
            }
        };
        let who = Who {
            client,
            ..Who::attested(&grant.document, &grant.root_sha256, &document)
        };
        let requested: Vec<SecretRef> = grant
            .secrets
            .iter()
            .map(|name| SecretRef {
                name: name.clone(),
                version: None,
            })
            .collect();

        let mut wrapped = Vec::with_capacity(grant.secrets.len());
        let mut released = Vec::with_capacity(grant.secrets.len());
        for name in &grant.secrets {
            let latest = match views.borrow().iter().find(|(n, _)| n == name) {
                Some((_, view)) => self.store.open_release_value(name, view),
                None => Ok(None),
            };
            let (version, value) = match latest {
                Ok(Some(found)) => found,
                Ok(None) => {
                    let error = ReleaseError::UnknownSecret { name: name.clone() };
                    let refusal =
                        ApiRefusal::forbidden(Reason::of(error.reason()), error.to_string());
                    return Ok(refused_record(&who, &requested, refusal));
                }
                Err(e) if e.is_row_refusal() => {
                    tracing::error!(event = "store_row_refused", name = %name, reason = %e.reason(), error = %e);
                    let refusal = ApiRefusal::forbidden(Reason::of(e.reason()), e.to_string());
                    return Ok(refused_record(&who, &requested, refusal));
                }
                Err(e @ StoreError::Unavailable(_)) => {
                    tracing::error!(event = "store_unavailable", error = %e);
                    return Ok(refused_record(&who, &requested, store_unavailable()));
                }
                Err(e) => {
                    tracing::error!(event = "store_read_failed", error = %e);
                    let refusal = ApiRefusal::internal(
                        Reason::StoreError,
                        "the secret store could not be read",
                    );
                    return Ok(refused_record(&who, &requested, refusal));
                }
            };
            let context = ReleaseContext::new(name.clone(), version, grant.nonce.clone());
            match seal(&grant.recipient, &context, &value, &self.rng) {
                Ok(sealed) => wrapped.push(WrappedSecret::from(&sealed)),
                Err(e) => {
                    let refusal = ApiRefusal::forbidden(Reason::of(e.reason()), e.to_string());
                    return Ok(refused_record(&who, &requested, refusal));
                }
            }
            released.push(SecretRef {
                name: name.clone(),
                version: Some(version),
            });
        }
        Ok(Decided {
            record: Entry {
                action: "release".into(),
                verdict: "granted".into(),
                secrets: released,
                who,
                ..Entry::default()
            },
            answer: Answer::Granted(wrapped),
        })
    }

    /// The release path after its record was appended (`appended`): a
    /// grant's secrets leave with their receipt only if the record is
    /// logged (durable, under a signed checkpoint: no unrecorded release,
    /// and the answer proves it) and, with witnesses, cosigned; a refusal is
    /// answered whether or not it could be logged. Blocks while witnesses
    /// must cosign ([`AppState::release_blocks`]).
    pub fn release_finish(
        &self,
        answer: Answer,
        appended: Result<Appended, ApiRefusal>,
    ) -> Result<ReleaseResponse, ApiRefusal> {
        let wrapped = match answer {
            Answer::Granted(wrapped) => wrapped,
            Answer::Refused(refusal) => return Err(refusal),
        };
        let appended = appended?;
        let receipt = match self
            .witnesses
            .as_ref()
            .and_then(|w| w.cosigned_through(appended.seq))
        {
            None => self.receipt(&appended)?,
            // Nothing leaves before K witnesses cosigned a checkpoint holding
            // the record; when they do not, the record stays in the log (a
            // grant the enclave never received, which `log verify` shows)
            // and the sealed secrets are dropped here.
            Some(Err(e)) => {
                tracing::error!(event = "witness_unavailable", seq = %appended.seq, error = %e);
                drop(wrapped);
                return Err(ApiRefusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Reason::WitnessUnavailable,
                    format!("the release record is logged but not cosigned by enough witnesses, so nothing is released: {e}"),
                ));
            }
            Some(Ok((cosigned, size))) => self.receipt_in(&appended, &cosigned.note, size)?,
        };
        Ok(ReleaseResponse {
            secrets: wrapped,
            receipt: Some(receipt),
        })
    }

    /// The receipt of an appended record: its checkpoint and inclusion proof.
    fn receipt(&self, appended: &Appended) -> Result<Receipt, ApiRefusal> {
        self.receipt_in(
            appended,
            &appended.checkpoint.note,
            appended.checkpoint.size,
        )
    }

    /// The receipt of an appended record under the checkpoint `note` of
    /// `size` records (which holds it).
    fn receipt_in(
        &self,
        appended: &Appended,
        note: &str,
        size: u64,
    ) -> Result<Receipt, ApiRefusal> {
        let proof = self.log.prove(appended.seq, size).map_err(|e| {
            tracing::error!(event = "audit_proof_failed", error = %e);
            if let crate::log::LogError::Unavailable(_) = e {
                // The shared log's database went down after the record
                // committed: nothing leaves, the enclave retries.
                return store_unavailable();
            }
            ApiRefusal::internal(
                Reason::AuditLogUnavailable,
                "the audit log could not prove the release record",
            )
        })?;
        Ok(Receipt {
            checkpoint: note.to_owned(),
            index: appended.seq,
            leaf: String::from_utf8_lossy(&appended.leaf).into_owned(),
            proof: proof.iter().map(ToString::to_string).collect(),
        })
    }

    /// Whether [`AppState::release_decide`] or
    /// [`AppState::release_finish`] may block (a remote store or log, or
    /// grants waiting for witnesses), so that an async caller runs them on
    /// the blocking pool; otherwise they are CPU work and local reads.
    pub fn release_blocks(&self) -> bool {
        self.store.remote()
            || self.log.is_shared()
            || self.witnesses.as_ref().is_some_and(|w| w.threshold() > 0)
    }

    /// Counts a release refusal that is not recorded one by one; the next
    /// `refusal_summary` record carries the count.
    pub fn unlogged(&self, refusal: ApiRefusal) -> ApiRefusal {
        self.unlogged.count(refusal.reason.as_str());
        refusal
    }

    /// Appends a `refusal_summary` record of the counts since the last one,
    /// if any; returns its sequence number. Called periodically and on stop.
    /// If the append fails, the counts stay for the next summary.
    pub fn flush_refusal_summary(&self) -> Result<Option<u64>, crate::log::LogError> {
        let now = self.clock.now();
        let Some((since, counts)) = self.unlogged.snapshot() else {
            return Ok(None);
        };
        let summary = RefusalSummary {
            since: hermetic_attestation::rfc3339_ms(
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            ),
            counts: counts
                .iter()
                .map(|(reason, n)| ((*reason).to_owned(), *n))
                .collect(),
        };
        let seq = self
            .log
            .append(
                Entry {
                    action: ACTION_REFUSAL_SUMMARY.into(),
                    verdict: "refused".into(),
                    refusals: Some(summary),
                    ..Entry::default()
                },
                now,
            )?
            .seq;
        self.unlogged.settle(&counts, now);
        Ok(Some(seq))
    }
}

/// Release refusals counted since the last `refusal_summary` record.
#[derive(Debug)]
pub struct Unlogged {
    inner: Mutex<UnloggedInner>,
}

#[derive(Debug)]
struct UnloggedInner {
    since: Duration,
    counts: BTreeMap<&'static str, u64>,
}

impl Unlogged {
    pub fn new(since: Duration) -> Self {
        Unlogged {
            inner: Mutex::new(UnloggedInner {
                since,
                counts: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UnloggedInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, reason: &'static str) {
        *self.lock().counts.entry(reason).or_default() += 1;
    }

    /// Since when, and the counts so far; `None` when there are none.
    fn snapshot(&self) -> Option<(Duration, BTreeMap<&'static str, u64>)> {
        let inner = self.lock();
        (!inner.counts.is_empty()).then(|| (inner.since, inner.counts.clone()))
    }

    /// Removes counts that a summary recorded (more may have come since).
    fn settle(&self, recorded: &BTreeMap<&'static str, u64>, now: Duration) {
        let mut inner = self.lock();
        for (reason, n) in recorded {
            if let Some(count) = inner.counts.get_mut(reason) {
                *count = count.saturating_sub(*n);
            }
        }
        inner.counts.retain(|_, n| *n > 0);
        inner.since = now;
    }
}

/// 503 `store_unavailable`: the store's database cannot be reached now;
/// nothing was granted, and the enclave retries (any 5xx is transient).
pub(super) fn store_unavailable() -> ApiRefusal {
    ApiRefusal::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        Reason::StoreUnavailable,
        "the store's database cannot be reached; retry",
    )
}
