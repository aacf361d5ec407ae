//! A pure verifier of AWS Nitro Enclaves attestation documents.
//!
//! Bytes, trusted roots and a time go in; a typed verdict comes out. Nothing
//! here reads a clock, a file or the network (in the manner of rustls'
//! sans-I/O core); the only state is two optional, bounded caches of
//! validated certificates ([`ChainCache`], [`LeafCache`]).
//!
//! ```no_run
//! use hermetic_attestation::{At, TrustedRoot, Verifier};
//! # fn run(doc: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::new(vec![TrustedRoot::aws_nitro()?]);
//! let attested = verifier.verify(doc, At::DocumentTimestamp)?;
//! println!("{}", attested.document.module_id);
//! # Ok(()) }
//! ```

mod cache;
mod cbor;
mod chain;
pub mod cose;
mod document;
mod error;
mod roots;
#[cfg(feature = "simulator")]
pub mod simulator;
mod time;

use std::sync::Arc;
use std::time::Duration;

pub use cache::{ChainCache, LeafCache};
pub use chain::CertInfo;
pub use cose::CoseSign1;
pub use document::{Document, MAX_CERT_LEN, MAX_PCR_INDEX, MAX_USER_DATA_LEN, PCR_LEN_SHA384};
pub use error::{CertRole, Error};
pub use roots::{RootError, TrustedRoot, AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256};
pub use rustls_pki_types::UnixTime;
pub use time::{parse_rfc3339, rfc3339, rfc3339_ms, At};

use cache::{VerifiedLeaf, Window};
use chain::Parsed;

/// Largest signed document accepted, checked before any parsing. The NSM's
/// own limit on the payload is 16 KiB (nsm-api docs/attestation_process.md
/// §3.1: `bstr .size (1..16384)`); real documents are about 4.5 KiB.
pub const MAX_DOCUMENT_LEN: usize = 16 * 1024;

/// A document whose signature and chain verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    pub document: Document,
    /// Root first, leaf last.
    pub certificates: Vec<CertInfo>,
    /// The instant the chain was checked at.
    pub verified_at: UnixTime,
    /// SHA-256 of the trusted root the chain ends in.
    pub root_sha256: [u8; 32],
    /// Whether the CA part of the chain came from the cache.
    pub chain_from_cache: bool,
    /// Whether the leaf certificate, checked under this very bundle, came
    /// from the leaf cache (only the COSE signature was verified).
    pub leaf_from_cache: bool,
}

/// The checks a verification runs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckName {
    /// Size, COSE_Sign1 structure, ES384 algorithm, payload fields.
    Decode,
    /// `cabundle[0]` is a trusted root.
    TrustedRoot,
    /// Every certificate parses and is valid at the verification time.
    CertificateValidity,
    /// Constraints and signatures along root → … → leaf.
    CertificateChain,
    /// The COSE signature verifies with the leaf's key.
    Signature,
}

impl CheckName {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Decode => "decode",
            CheckName::TrustedRoot => "trusted_root",
            CheckName::CertificateValidity => "certificate_validity",
            CheckName::CertificateChain => "certificate_chain",
            CheckName::Signature => "cose_signature",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(Error),
    /// Not run because an earlier check it depends on failed.
    NotRun,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: CheckName,
    pub outcome: Outcome,
}

/// Every check's outcome, for auditors: unlike [`Verifier::verify`] it goes
/// on after a failure wherever a later check can still run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The decoded (not necessarily trusted) document, if it decoded.
    pub document: Option<Document>,
    pub certificates: Vec<CertInfo>,
    pub checks: Vec<Check>,
    pub verified_at: Option<UnixTime>,
}

impl Inspection {
    /// The first failure, if any.
    pub fn first_error(&self) -> Option<&Error> {
        self.checks.iter().find_map(|c| match &c.outcome {
            Outcome::Fail(e) => Some(e),
            _ => None,
        })
    }

    pub fn errors(&self) -> impl Iterator<Item = &Error> {
        self.checks.iter().filter_map(|c| match &c.outcome {
            Outcome::Fail(e) => Some(e),
            _ => None,
        })
    }
}

/// Structural decoding only: COSE_Sign1 and payload, nothing trusted yet.
pub fn decode(bytes: &[u8]) -> Result<(CoseSign1, Document), Error> {
    if bytes.is_empty() {
        return Err(Error::Empty);
    }
    if bytes.len() > MAX_DOCUMENT_LEN {
        return Err(Error::DocumentTooLarge {
            len: bytes.len(),
            max: MAX_DOCUMENT_LEN,
        });
    }
    let cose = CoseSign1::decode(bytes)?;
    let document = Document::decode(&cose.payload)?;
    Ok((cose, document))
}

/// Verifies documents against a set of trusted roots.
#[derive(Debug)]
pub struct Verifier {
    roots: Vec<TrustedRoot>,
    cache: Option<ChainCache>,
    leaf_cache: Option<LeafCache>,
}

impl Verifier {
    /// A verifier trusting exactly `roots`, with default-sized chain and
    /// leaf caches.
    pub fn new(roots: Vec<TrustedRoot>) -> Self {
        Verifier {
            roots,
            cache: Some(ChainCache::default()),
            leaf_cache: Some(LeafCache::default()),
        }
    }

    /// A verifier trusting only the pinned AWS Nitro root.
    pub fn aws() -> Result<Self, RootError> {
        Ok(Self::new(vec![TrustedRoot::aws_nitro()?]))
    }

    /// Replaces the chain cache (`None` disables caching CA bundles).
    pub fn with_cache(mut self, cache: Option<ChainCache>) -> Self {
        self.cache = cache;
        self
    }

    /// Replaces the leaf cache (`None` disables caching leaf certificates).
    pub fn with_leaf_cache(mut self, cache: Option<LeafCache>) -> Self {
        self.leaf_cache = cache;
        self
    }

    pub fn cache(&self) -> Option<&ChainCache> {
        self.cache.as_ref()
    }

    pub fn leaf_cache(&self) -> Option<&LeafCache> {
        self.leaf_cache.as_ref()
    }

    pub fn roots(&self) -> &[TrustedRoot] {
        &self.roots
    }

    /// Verifies `bytes` at `at`; the first failing check is the error.
    pub fn verify(&self, bytes: &[u8], at: At) -> Result<Attested, Error> {
        let mut run = self.run(bytes, at, true);
        if let Some(e) = run.inspection.first_error() {
            return Err(e.clone());
        }
        match (
            run.inspection.document.take(),
            run.inspection.verified_at,
            run.root_sha256,
        ) {
            (Some(document), Some(verified_at), Some(root_sha256)) => Ok(Attested {
                document,
                certificates: run.inspection.certificates,
                verified_at,
                root_sha256,
                chain_from_cache: run.chain_from_cache,
                leaf_from_cache: run.leaf_from_cache,
            }),
            // Every check passed, so all three are set; refuse rather than panic.
            _ => Err(Error::MalformedCose("verification did not complete")),
        }
    }

    /// Runs every check that can run and reports each outcome.
    pub fn inspect(&self, bytes: &[u8], at: At) -> Inspection {
        self.run(bytes, at, false).inspection
    }

    fn run(&self, bytes: &[u8], at: At, stop_early: bool) -> Run {
        let mut run = Run {
            inspection: Inspection {
                document: None,
                certificates: Vec::new(),
                checks: Vec::new(),
                verified_at: None,
            },
            root_sha256: None,
            chain_from_cache: false,
            leaf_from_cache: false,
        };
        let (cose, document) = match decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                run.record(CheckName::Decode, Err(e));
                return run.finish();
            }
        };
        run.record(CheckName::Decode, Ok(()));

        let t = match at {
            At::Time(t) => t,
            At::DocumentTimestamp => {
                UnixTime::since_unix_epoch(Duration::from_millis(document.timestamp_ms))
            }
        };
        run.inspection.verified_at = Some(t);
        let bundle: Vec<&[u8]> = document.cabundle.iter().map(Vec::as_slice).collect();

        // cabundle[0] must be one of our roots, byte for byte.
        let root_fp = chain::sha256(bundle[0]);
        let root_ok = self.roots.iter().any(|r| r.sha256() == root_fp);
        let root_check = if root_ok {
            run.root_sha256 = Some(root_fp);
            Ok(())
        } else {
            Err(Error::UntrustedRoot {
                fingerprint: hex::encode(root_fp),
            })
        };
        run.record(CheckName::TrustedRoot, root_check);
        if stop_early && !root_ok {
            return run.finish_with(document);
        }

        // The caches answer only for a trusted root and a representable time
        // (otherwise the uncached path below reports the error).
        let cached = match i64::try_from(t.as_secs()) {
            Ok(secs) if root_ok && (self.cache.is_some() || self.leaf_cache.is_some()) => {
                Some(CacheKeys {
                    bundle: ChainCache::key(&bundle),
                    leaf: chain::sha256(&document.certificate),
                    secs,
                })
            }
            _ => None,
        };

        // A leaf already verified under this very bundle, at an instant
        // inside every certificate's validity: only the COSE signature is left.
        if let (Some(keys), Some(cache)) = (&cached, &self.leaf_cache) {
            if let Some(hit) = cache.get(&keys.bundle, &keys.leaf, keys.secs) {
                run.inspection.certificates = hit.certificates.clone();
                run.record(CheckName::CertificateValidity, Ok(()));
                run.record(CheckName::CertificateChain, Ok(()));
                run.record(CheckName::Signature, cose.verify_parsed(&hit.key));
                run.chain_from_cache = true;
                run.leaf_from_cache = true;
                return run.finish_with(document);
            }
        }
        // A bundle already validated, at an instant inside every one of its
        // certificates' validity: only the leaf is left to parse and check.
        let cas_cached = match (&cached, &self.cache) {
            (Some(keys), Some(cache)) => cache.get(&keys.bundle, keys.secs),
            _ => None,
        };

        // Parse every certificate still to check, and its validity period.
        let parsed: Result<Vec<Parsed<'_>>, Error> = match &cas_cached {
            Some(_) => Parsed::new(CertRole::Leaf, &document.certificate).map(|leaf| vec![leaf]),
            None => bundle
                .iter()
                .enumerate()
                .map(|(i, der)| Parsed::new(CertRole::Bundle(i), der))
                .chain(std::iter::once(Parsed::new(
                    CertRole::Leaf,
                    &document.certificate,
                )))
                .collect(),
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                run.record(CheckName::CertificateValidity, Err(e));
                return run.finish_with(document);
            }
        };
        run.inspection.certificates = cas_cached
            .iter()
            .flat_map(|infos| infos.iter().cloned())
            .chain(parsed.iter().map(Parsed::info))
            .collect();
        let validity = parsed.iter().try_for_each(|c| c.check_validity(t));
        let validity_ok = validity.is_ok();
        run.record(CheckName::CertificateValidity, validity);
        if stop_early && !validity_ok {
            return run.finish_with(document);
        }

        // `parsed` ends with the leaf.
        let Some((leaf, cas)) = parsed.split_last() else {
            run.record(CheckName::CertificateChain, Err(Error::EmptyCabundle));
            return run.finish_with(document);
        };
        let mut chain_ok = false;
        if root_ok && validity_ok {
            let result = match (&cas_cached, &cached) {
                (Some(_), _) => self.check_leaf_under(leaf, &bundle, t).map(|()| true),
                (None, keys) => self
                    .check_chain(cas, leaf, &bundle, keys.as_ref(), t)
                    .map(|()| false),
            };
            run.chain_from_cache = matches!(result, Ok(true));
            chain_ok = result.is_ok();
            run.record(CheckName::CertificateChain, result.map(|_| ()));
            if stop_early && !chain_ok {
                return run.finish_with(document);
            }
        } else {
            run.skip(CheckName::CertificateChain);
        }

        let signature = leaf.p384_point().and_then(|point| {
            let key = cose::parse_p384(point)?;
            cose.verify_parsed(&key)?;
            Ok(key)
        });
        match (signature, &cached, &self.leaf_cache) {
            (Ok(key), Some(keys), Some(cache)) if chain_ok => {
                // The key parsed and the whole chain validated: a repeat of
                // this leaf under this bundle needs only the COSE signature.
                let certificates = run.inspection.certificates.clone();
                let window = certificates
                    .iter()
                    .map(|c| Window {
                        not_before: c.not_before,
                        not_after: c.not_after,
                    })
                    .reduce(Window::intersect);
                if let Some(window) = window {
                    cache.insert(
                        keys.bundle,
                        keys.leaf,
                        window,
                        VerifiedLeaf { key, certificates },
                    );
                }
                run.record(CheckName::Signature, Ok(()));
            }
            (result, _, _) => run.record(CheckName::Signature, result.map(|_| ())),
        }
        run.finish_with(document)
    }

    /// The leaf under a cached bundle: its constraints, then the path from
    /// the bundle's last certificate (already validated up to the root).
    fn check_leaf_under(
        &self,
        leaf: &Parsed<'_>,
        bundle: &[&[u8]],
        t: UnixTime,
    ) -> Result<(), Error> {
        leaf.check_leaf()?;
        let last = bundle.len() - 1;
        chain::verify_path((CertRole::Bundle(last), bundle[last]), &[], leaf.der, t)
    }

    /// The whole chain, root to leaf; a validated bundle is cached.
    fn check_chain(
        &self,
        cas: &[Parsed<'_>],
        leaf: &Parsed<'_>,
        bundle: &[&[u8]],
        keys: Option<&CacheKeys>,
        t: UnixTime,
    ) -> Result<(), Error> {
        leaf.check_leaf()?;
        let Some(last) = cas.len().checked_sub(1) else {
            return Err(Error::EmptyCabundle);
        };
        for (i, ca) in cas.iter().enumerate() {
            ca.check_ca(last - i)?;
        }
        chain::verify_path((CertRole::Bundle(0), bundle[0]), &bundle[1..], leaf.der, t)?;
        if let (Some(cache), Some(keys)) = (&self.cache, keys) {
            let infos: Arc<[CertInfo]> = cas.iter().map(Parsed::info).collect();
            let window = Window {
                not_before: cas
                    .iter()
                    .map(|c| c.cert.validity().not_before.timestamp())
                    .max()
                    .unwrap_or(i64::MAX),
                not_after: cas
                    .iter()
                    .map(|c| c.cert.validity().not_after.timestamp())
                    .min()
                    .unwrap_or(i64::MIN),
            };
            cache.insert(keys.bundle, window, infos);
        }
        Ok(())
    }
}

/// What the caches are looked up by.
struct CacheKeys {
    bundle: cache::BundleKey,
    leaf: [u8; 32],
    /// The verification time in Unix seconds.
    secs: i64,
}

struct Run {
    inspection: Inspection,
    root_sha256: Option<[u8; 32]>,
    chain_from_cache: bool,
    leaf_from_cache: bool,
}

impl Run {
    fn record(&mut self, name: CheckName, result: Result<(), Error>) {
        let outcome = match result {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(e),
        };
        self.inspection.checks.push(Check { name, outcome });
    }

    fn skip(&mut self, name: CheckName) {
        self.inspection.checks.push(Check {
            name,
            outcome: Outcome::NotRun,
        });
    }

    fn finish_with(mut self, document: Document) -> Self {
        self.inspection.document = Some(document);
        self.finish()
    }

    /// Marks the checks that never ran.
    fn finish(mut self) -> Self {
        for name in [
            CheckName::Decode,
            CheckName::TrustedRoot,
            CheckName::CertificateValidity,
            CheckName::CertificateChain,
            CheckName::Signature,
        ] {
            if !self.inspection.checks.iter().any(|c| c.name == name) {
                self.skip(name);
            }
        }
        self
    }
}
