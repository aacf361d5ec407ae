//! The attestation checks custody makes of a peer's document: the pure attestation core first
//! (chain to a trusted root, ES384 signature, validity at the given time), then debug mode,
//! measurements, age, nonce and the public key, in that order.

use std::time::Duration;

use hermetic_attestation::{At, Document, TrustedRoot, UnixTime, Verifier};
use hermetic_envelope::{RecipientPublicKey, PUBLIC_KEY_LEN};
use hermetic_policy::{mismatches, pcr_from_hex, pins_image, Pcrs, POLICY_PCRS};

use crate::binding::sha256;
use crate::Error;

/// How far a document's timestamp may run ahead of the checker's clock (the verifier's
/// release path allows the same, `verifier/src/policy/mod.rs` `CLOCK_SKEW`).
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The PCRs two replicas must share to be "the same verifier": the image (0), kernel and
/// bootstrap (1), application (2) and signing certificate (8). PCR3 (parent IAM role) and PCR4
/// (parent instance id) describe where a replica runs, and differ between replicas.
pub const IMAGE_PCRS: [u8; 4] = [0, 1, 2, 8];

/// Which verifier enclaves may receive what is sealed (a custodian's share, a forwarded key):
/// the trusted roots (the pinned AWS Nitro root in production) and the oldest document
/// accepted.
#[derive(Debug)]
pub struct AttestationPolicy {
    verifier: Verifier,
    max_age: Duration,
}

impl AttestationPolicy {
    /// Trusting exactly `roots`; documents at most `max_age` old.
    pub fn new(roots: Vec<TrustedRoot>, max_age: Duration) -> Self {
        AttestationPolicy {
            verifier: Verifier::new(roots),
            max_age,
        }
    }
}

/// The measurements a custodian pins for the verifier enclave it will unseal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedMeasurements(Pcrs);

impl PinnedMeasurements {
    /// A set that must identify the image ([`hermetic_policy::pins_image`]).
    pub fn new(pcrs: Pcrs) -> Result<Self, Error> {
        if !pins_image(&pcrs) {
            return Err(Error::MeasurementsDoNotPinImage);
        }
        Ok(PinnedMeasurements(pcrs))
    }

    /// Parses the `--verifier-measurements` file: TOML keys `pcr0`, `pcr1`, `pcr2`, `pcr3`,
    /// `pcr4`, `pcr8`, each 96 lower-case hex characters — the spelling of one measurement set
    /// in the policy file, as `hermetic-eif policy` writes it.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let table: toml::Table = text
            .parse()
            .map_err(|_| Error::BadMeasurements("not TOML".into()))?;
        let mut pcrs = Pcrs::new();
        for (key, value) in &table {
            let index = key
                .strip_prefix("pcr")
                .and_then(|i| i.parse::<u8>().ok())
                .filter(|i| POLICY_PCRS.contains(i) && key == &format!("pcr{i}"))
                .ok_or_else(|| Error::BadMeasurements(format!("unknown key {key:?}")))?;
            let hex = value
                .as_str()
                .and_then(pcr_from_hex)
                .ok_or_else(|| Error::BadMeasurements(format!("{key} is not 96 lower-case hex")))?;
            pcrs.insert(index, hex);
        }
        Self::new(pcrs)
    }

    /// The PCRs.
    pub fn pcrs(&self) -> &Pcrs {
        &self.0
    }
}

/// What the peer's measurements must be.
pub(crate) enum Expected<'a> {
    /// Every pinned PCR matches.
    Pinned(&'a PinnedMeasurements),
    /// The same [`IMAGE_PCRS`] as ours (present in both with equal values, or absent in both).
    SameAs(&'a Pcrs),
}

/// A document that passed.
pub(crate) struct Checked {
    pub(crate) document: Document,
    pub(crate) sha256: [u8; 32],
}

impl Checked {
    /// The document's public key as an HPKE recipient.
    pub(crate) fn recipient(&self) -> Result<RecipientPublicKey, Error> {
        let key = match self.document.public_key.as_deref() {
            None | Some([]) => return Err(Error::PublicKeyMissing),
            Some(k) => k,
        };
        if key.len() != PUBLIC_KEY_LEN {
            return Err(Error::PublicKeyNotHpke { len: key.len() });
        }
        RecipientPublicKey::from_bytes(key).map_err(|_| Error::PublicKeyNotHpke { len: key.len() })
    }
}

pub(crate) fn check(
    policy: &AttestationPolicy,
    bytes: &[u8],
    now: UnixTime,
    expected: Expected<'_>,
    nonce: &[u8],
) -> Result<Checked, Error> {
    let attested = policy
        .verifier
        .verify(bytes, At::Time(now))
        .map_err(Error::Attestation)?;
    let document = attested.document;
    if document.is_debug_mode() {
        return Err(Error::DebugEnclave);
    }
    match expected {
        Expected::Pinned(pinned) => {
            if let Some(diff) = mismatches(pinned.pcrs(), &document.pcrs).first() {
                return Err(Error::PcrMismatch { index: diff.index });
            }
        }
        Expected::SameAs(own) => {
            if let Some(index) = IMAGE_PCRS
                .into_iter()
                .find(|i| own.get(i) != document.pcrs.get(i))
            {
                return Err(Error::PcrMismatch { index });
            }
        }
    }
    let now_ms = now.as_secs().saturating_mul(1000);
    let skew_ms = CLOCK_SKEW.as_millis() as u64;
    if document.timestamp_ms > now_ms.saturating_add(skew_ms) {
        return Err(Error::DocumentFromFuture);
    }
    let age_ms = now_ms.saturating_sub(document.timestamp_ms);
    if u128::from(age_ms) > policy.max_age.as_millis() {
        return Err(Error::DocumentTooOld {
            age_secs: age_ms / 1000,
            max_secs: policy.max_age.as_secs(),
        });
    }
    match document.nonce.as_deref() {
        None | Some([]) => return Err(Error::NonceMissing),
        Some(n) if n != nonce => return Err(Error::NonceMismatch),
        Some(_) => {}
    }
    Ok(Checked {
        sha256: sha256(bytes),
        document,
    })
}
