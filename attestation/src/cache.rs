//! Bounded caches of work already done: CA bundles whose path (root → … →
//! last intermediate) validated ([`ChainCache`]), and leaf certificates that
//! validated under such a bundle ([`LeafCache`]).
//!
//! A chain hit lets a new leaf under a known bundle cost the leaf's own
//! certificate signature and the COSE signature; a leaf hit lets a repeat
//! enclave's document cost the COSE signature alone. Neither can change a
//! verdict:
//! - the chain key is the SHA-256 of every bundle certificate's DER
//!   (length-prefixed, in order), and the leaf key is that bundle key beside
//!   the SHA-256 of the leaf's DER, so a leaf is only ever "verified"
//!   relative to the exact bundle it chained to, and any changed byte misses;
//! - an entry answers only for instants inside the intersection of the
//!   validity periods of every certificate it vouches for (the bundle's for
//!   a chain entry; the bundle's and the leaf's for a leaf entry), both ends
//!   inclusive as in RFC 5280 §4.1.2.5; outside it the caller takes the
//!   uncached path, which reports exactly the error an uncached verifier
//!   would (`chain_expired` naming the certificate, …);
//! - everything else the uncached path checks about these certificates
//!   (parsing, constraints, path validation, the leaf key's type) depends on
//!   their bytes alone, and only successes are cached.
//!
//! Each cache is bounded; when full, the entry whose window ends first is
//! evicted, and an entry is dropped as soon as a lookup falls after its window.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::signature::ParsedPublicKey;

use crate::chain::CertInfo;

/// SHA-256 over a CA bundle.
pub(crate) type BundleKey = [u8; 32];

/// The instants (Unix seconds, both inclusive) at which an entry may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub not_before: i64,
    pub not_after: i64,
}

impl Window {
    /// The instants inside both windows.
    pub fn intersect(self, other: Window) -> Window {
        Window {
            not_before: self.not_before.max(other.not_before),
            not_after: self.not_after.min(other.not_after),
        }
    }
}

/// A map of at most `capacity` entries, each answering only inside its window.
#[derive(Debug)]
struct Bounded<K, V> {
    entries: Mutex<HashMap<K, (Window, V)>>,
    capacity: usize,
}

impl<K: Hash + Eq + Copy, V: Clone> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Window, V)>> {
        // Every update is a single insert or remove: a poisoned map is consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value under `key` if its window holds `t`; an entry whose window
    /// has ended by `t` is dropped.
    fn get(&self, key: &K, t: i64) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((w, _)) if t > w.not_after => {
                entries.remove(key);
                None
            }
            Some((w, v)) if t >= w.not_before => Some(v.clone()),
            _ => None,
        }
    }

    fn insert(&self, key: K, window: Window, value: V) {
        if window.not_before > window.not_after {
            return; // answers for no instant
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            if let Some(first_to_end) = entries
                .iter()
                .min_by_key(|(_, (w, _))| w.not_after)
                .map(|(k, _)| *k)
            {
                entries.remove(&first_to_end);
            }
        }
        entries.insert(key, (window, value));
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Validated CA bundles, with what the report shows of their certificates.
#[derive(Debug)]
pub struct ChainCache {
    inner: Bounded<BundleKey, Arc<[CertInfo]>>,
}

impl ChainCache {
    /// Enough for every region/zone/instance-CA bundle a service sees at once
    /// (AWS issues a new instance CA per parent instance and day or so).
    pub const DEFAULT_CAPACITY: usize = 256;

    pub fn new(capacity: usize) -> Self {
        ChainCache {
            inner: Bounded::new(capacity),
        }
    }

    pub(crate) fn key(bundle: &[&[u8]]) -> BundleKey {
        let mut ctx = Context::new(&SHA256);
        for der in bundle {
            // Length-prefixed so that no two different bundles hash alike.
            ctx.update(&(der.len() as u64).to_be_bytes());
            ctx.update(der);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }

    /// The bundle's certificate reports (root first) if `key` was validated
    /// and that validation holds at `t`.
    pub(crate) fn get(&self, key: &BundleKey, t: i64) -> Option<Arc<[CertInfo]>> {
        self.inner.get(key, t)
    }

    pub(crate) fn insert(&self, key: BundleKey, window: Window, infos: Arc<[CertInfo]>) {
        self.inner.insert(key, window, infos);
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for ChainCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

/// What a verified leaf leaves behind: its parsed P-384 key, so that a hit
/// costs exactly one ECDSA verification, and the reports of the whole chain.
pub(crate) struct VerifiedLeaf {
    pub key: ParsedPublicKey,
    /// Root first, leaf last.
    pub certificates: Vec<CertInfo>,
}

impl std::fmt::Debug for VerifiedLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedLeaf")
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

/// Leaf certificates that validated under a given CA bundle.
#[derive(Debug)]
pub struct LeafCache {
    inner: Bounded<(BundleKey, [u8; 32]), Arc<VerifiedLeaf>>,
}

impl LeafCache {
    /// Each entry is about 1.5 KiB (the parsed key and five certificate
    /// reports), so the default holds at most about 6 MiB. Nitro leaf
    /// certificates live about three hours and one is issued per enclave
    /// boot, so this covers thousands of enclaves that each come back
    /// within their leaf's lifetime.
    pub const DEFAULT_CAPACITY: usize = 4096;

    pub fn new(capacity: usize) -> Self {
        LeafCache {
            inner: Bounded::new(capacity),
        }
    }

    pub(crate) fn get(
        &self,
        bundle: &BundleKey,
        leaf_sha256: &[u8; 32],
        t: i64,
    ) -> Option<Arc<VerifiedLeaf>> {
        self.inner.get(&(*bundle, *leaf_sha256), t)
    }

    pub(crate) fn insert(
        &self,
        bundle: BundleKey,
        leaf_sha256: [u8; 32],
        window: Window,
        leaf: VerifiedLeaf,
    ) {
        self.inner
            .insert((bundle, leaf_sha256), window, Arc::new(leaf));
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for LeafCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}
