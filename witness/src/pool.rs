//! K of N witnesses: submit one checkpoint to all of them at once and
//! return as soon as K valid cosignatures are in, or say who failed and why
//! once every witness has answered or the time is up; and the start-time
//! check that the local log is not
//! older than what the witnesses have cosigned.
//!
//! The pool remembers the size each witness last cosigned, so the next
//! submission carries the right consistency proof at the first try; a
//! witness it has not heard from yet is sent `old 0` and answers 409 with
//! its size (c2sp.org/tlog-witness: "If a client doesn't have information
//! on the latest cosigned checkpoint, it MAY initially make a request with
//! a old size of zero to obtain it").

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hermetic_tlog::cosignature::{Cosignature, CosignerKey};
use hermetic_tlog::note;
use hermetic_tlog::witness::{check_rollback, AddCheckpoint, RequestError, Rollback};

use crate::client::{Exchange, ProofSource, SubmitError, Submitted, WitnessClient};

/// One witness of the pool: where it listens, the key it must cosign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolWitness {
    /// The submission prefix (`http://host:port`, `/add-checkpoint` is added).
    pub url: String,
    pub key: CosignerKey,
}

impl std::str::FromStr for PoolWitness {
    type Err = String;

    /// `URL=PUBKEY`, as `serve --witness` takes it. A URL may hold `=`
    /// (a query) and a key does (base64 padding): every `=` is tried as the
    /// separator and the first whose right side parses as a key wins.
    fn from_str(s: &str) -> Result<PoolWitness, String> {
        let mut last_err = String::from("expected URL=PUBKEY");
        for (i, _) in s.match_indices('=') {
            let (url, key) = (&s[..i], &s[i + 1..]);
            match key.parse::<CosignerKey>() {
                Ok(key) if url.starts_with("http://") => {
                    return Ok(PoolWitness {
                        url: url.to_owned(),
                        key,
                    })
                }
                Ok(_) => last_err = format!("{url:?} is not an http:// URL"),
                Err(e) => last_err = format!("not a witness key: {e}"),
            }
        }
        Err(last_err)
    }
}

/// A pool that cannot work as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolConfigError {
    #[error("threshold {threshold} exceeds the {witnesses} witnesses")]
    ThresholdTooHigh { threshold: usize, witnesses: usize },
    #[error("witness key {key} is given twice")]
    DuplicateKey { key: String },
}

/// Who failed and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} ({url}): {error}")]
pub struct WitnessFailure {
    pub name: String,
    pub url: String,
    pub error: SubmitError,
}

/// Fewer than K witnesses cosigned in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumError {
    pub needed: usize,
    pub got: usize,
    /// Each witness that did not cosign (a timeout for those that had not
    /// answered when the time was up).
    pub failures: Vec<WitnessFailure>,
}

impl std::fmt::Display for QuorumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of the {} witness cosignatures needed",
            self.got, self.needed
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

impl std::error::Error for QuorumError {}

/// A checkpoint with the cosignatures collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedCheckpoint {
    /// The submitted note with every collected cosignature line added.
    pub note: String,
    /// At least K, each verified with its witness's pinned key.
    pub cosignatures: Vec<Cosignature>,
}

/// The start-time check refused the local log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartRefusal {
    #[error(transparent)]
    Rollback(Rollback),
    #[error("witness {witness} holds another checkpoint of size {size} than the local log's: a fork or a replaced data directory")]
    Fork { witness: String, size: u64 },
    #[error("the local checkpoint cannot be submitted: {0}")]
    BadCheckpoint(RequestError),
}

/// What the start-time check learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartCheck {
    /// Each witness that answered, with the size it holds.
    pub sizes: Vec<(String, u64)>,
    /// The witnesses that did not answer (they cannot vouch either way;
    /// with K > 0 no grant is cosigned without K of them anyway).
    pub not_answered: Vec<WitnessFailure>,
}

/// K of N witnesses.
#[derive(Debug)]
pub struct WitnessPool {
    witnesses: Vec<PoolWitness>,
    threshold: usize,
    timeout: Duration,
    client: WitnessClient,
    /// The size each witness last cosigned or named, as far as known.
    sizes: Arc<Mutex<Vec<Option<u64>>>>,
}

impl WitnessPool {
    /// `timeout` bounds one `cosign` call (and each exchange in it).
    pub fn new(
        witnesses: Vec<PoolWitness>,
        threshold: usize,
        timeout: Duration,
    ) -> Result<WitnessPool, PoolConfigError> {
        if threshold > witnesses.len() {
            return Err(PoolConfigError::ThresholdTooHigh {
                threshold,
                witnesses: witnesses.len(),
            });
        }
        for (i, w) in witnesses.iter().enumerate() {
            if witnesses[..i].iter().any(|o| o.key == w.key) {
                return Err(PoolConfigError::DuplicateKey {
                    key: w.key.to_string(),
                });
            }
        }
        let n = witnesses.len();
        Ok(WitnessPool {
            witnesses,
            threshold,
            timeout,
            client: WitnessClient::new(timeout),
            sizes: Arc::new(Mutex::new(vec![None; n])),
        })
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn witnesses(&self) -> &[PoolWitness] {
        &self.witnesses
    }

    /// The pinned keys, for [`hermetic_tlog::cosignature::verify`].
    pub fn keys(&self) -> Vec<CosignerKey> {
        self.witnesses.iter().map(|w| w.key.clone()).collect()
    }

    /// Submits the signed checkpoint `note` to every witness at once and
    /// returns when K have cosigned (the others go on in the background,
    /// so they keep up), or, once all have answered or the timeout is
    /// reached, who failed and why. With K = 0 it returns at once with no
    /// cosignature (the submissions still go out).
    pub async fn cosign(
        &self,
        note: &str,
        proofs: Arc<dyn ProofSource>,
    ) -> Result<CosignedCheckpoint, QuorumError> {
        let n = self.witnesses.len();
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<(usize, Result<Submitted, SubmitError>)>(n.max(1));
        for (i, w) in self.witnesses.iter().enumerate() {
            let (client, w, sizes, proofs, tx) = (
                self.client.clone(),
                w.clone(),
                Arc::clone(&self.sizes),
                Arc::clone(&proofs),
                tx.clone(),
            );
            let note = note.to_owned();
            let timeout = self.timeout;
            let old = lock(&sizes)[i].unwrap_or(0);
            tokio::spawn(async move {
                let submitted = tokio::time::timeout(
                    timeout,
                    client.submit(&w.url, &w.key, &note, old, proofs.as_ref()),
                )
                .await
                .unwrap_or(Err(SubmitError::Timeout(timeout)));
                let learned = match &submitted {
                    Ok(s) => Some(s.size),
                    Err(SubmitError::Ahead { witness_size, .. }) => Some(*witness_size),
                    Err(SubmitError::Conflict { witness_size, .. }) => Some(*witness_size),
                    Err(_) => None,
                };
                if let Some(size) = learned {
                    lock(&sizes)[i] = Some(size);
                }
                // The pool may have returned already: nobody listens.
                let _ = tx.send((i, submitted)).await;
            });
        }
        drop(tx);
        let mut got: Vec<Submitted> = Vec::new();
        let mut failures: Vec<(usize, SubmitError)> = Vec::new();
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        // Until K are in, every witness has answered, or the time is up
        // (when K can no longer be reached, the others are still heard, so
        // that the error says who cosigned and who failed).
        while got.len() < self.threshold {
            tokio::select! {
                received = rx.recv() => match received {
                    Some((_, Ok(s))) => got.push(s),
                    Some((i, Err(e))) => failures.push((i, e)),
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        if got.len() >= self.threshold {
            return Ok(with_lines(note, got));
        }
        let answered: Vec<usize> = failures.iter().map(|(i, _)| *i).collect();
        let cosigned: Vec<&CosignerKey> = got.iter().map(|s| &s.cosignature.key).collect();
        let mut failed: Vec<WitnessFailure> = failures
            .into_iter()
            .map(|(i, error)| self.failure(i, error))
            .collect();
        for (i, w) in self.witnesses.iter().enumerate() {
            if !answered.contains(&i) && !cosigned.contains(&&w.key) {
                failed.push(self.failure(i, SubmitError::Timeout(self.timeout)));
            }
        }
        Err(QuorumError {
            needed: self.threshold,
            got: cosigned.len(),
            failures: failed,
        })
    }

    fn failure(&self, i: usize, error: SubmitError) -> WitnessFailure {
        let w = &self.witnesses[i];
        WitnessFailure {
            name: w.key.name().to_owned(),
            url: w.url.clone(),
            error,
        }
    }

    /// The start-time check: asks every witness for the size it holds by
    /// submitting the local log's latest signed checkpoint `note` from its
    /// own size (a witness that holds that very checkpoint cosigns it again;
    /// one that holds another size answers 409 with it), and refuses when a
    /// witness holds more than the local log (a rollback) or another root at
    /// the same size (a fork). Witnesses that do not answer are listed.
    pub async fn check_start(&self, note: &str) -> Result<StartCheck, StartRefusal> {
        let req = AddCheckpoint::new(0, Vec::new(), note).map_err(StartRefusal::BadCheckpoint)?;
        let local = req.checkpoint.size;
        let probe = AddCheckpoint {
            old_size: local,
            ..req
        };
        let mut tasks = tokio::task::JoinSet::new();
        for (i, w) in self.witnesses.iter().enumerate() {
            let (client, url, probe) = (self.client.clone(), w.url.clone(), probe.clone());
            let timeout = self.timeout;
            tasks.spawn(async move {
                let answer = tokio::time::timeout(timeout, client.add_checkpoint(&url, &probe))
                    .await
                    .unwrap_or(Err(SubmitError::Timeout(timeout)));
                (i, answer)
            });
        }
        let mut sizes = Vec::new();
        let mut not_answered = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok((i, answer)) = joined else { continue };
            let name = self.witnesses[i].key.name().to_owned();
            match answer {
                Ok(Exchange::Cosigned(_)) => sizes.push((i, name, local)),
                Ok(Exchange::Conflict(size)) if size == local => {
                    return Err(StartRefusal::Fork {
                        witness: name,
                        size,
                    })
                }
                Ok(Exchange::Conflict(size)) => sizes.push((i, name, size)),
                Err(e) => not_answered.push(self.failure(i, e)),
            }
        }
        sizes.sort_by_key(|(i, _, _)| *i);
        check_rollback(local, sizes.iter().map(|(_, n, s)| (n.as_str(), *s)))
            .map_err(StartRefusal::Rollback)?;
        {
            let mut known = lock(&self.sizes);
            for (i, _, size) in &sizes {
                known[*i] = Some(*size);
            }
        }
        not_answered.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(StartCheck {
            sizes: sizes.into_iter().map(|(_, n, s)| (n, s)).collect(),
            not_answered,
        })
    }
}

/// `note` with each collected cosignature line, an earlier line by the same
/// witness dropped (the note was checked by every submission, so it parses).
fn with_lines(note: &str, got: Vec<Submitted>) -> CosignedCheckpoint {
    let by_witness = |s: &note::Signature| {
        got.iter()
            .any(|g| g.cosignature.key.name() == s.name && g.cosignature.key.key_id() == s.key_id)
    };
    let mut out = match note::parse(note.as_bytes()) {
        Ok(parsed) => {
            let mut out = parsed.text;
            out.push('\n');
            for s in parsed.signatures.iter().filter(|s| !by_witness(s)) {
                out.push_str(&s.line());
            }
            out
        }
        Err(_) => note.to_owned(),
    };
    let mut cosignatures = Vec::with_capacity(got.len());
    for s in got {
        out.push_str(&s.line);
        cosignatures.push(s.cosignature);
    }
    CosignedCheckpoint {
        note: out,
        cosignatures,
    }
}

/// The sizes are plain numbers: a panic elsewhere cannot leave them torn.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
