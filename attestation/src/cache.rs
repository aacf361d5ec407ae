//! A bounded cache of CA bundles whose path (root → … → last intermediate)
//! has already been validated.
//!
//! A hit lets a repeat chain cost only the leaf check and the COSE
//! signature. It cannot change a verdict: the key is the SHA-256 of every
//! bundle certificate's DER (so any changed byte misses), an entry answers
//! only for instants inside the intersection of the bundle certificates'
//! validity periods, and the leaf is still validated against the bundle's
//! last certificate with the same rules. Entries are dropped once that
//! window has ended, and the entry that ends first is evicted when full.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest::{Context, SHA256};

pub(crate) type Key = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub not_before: i64,
    pub not_after: i64,
}

#[derive(Debug)]
pub struct ChainCache {
    entries: Mutex<HashMap<Key, Window>>,
    capacity: usize,
}

impl ChainCache {
    pub const DEFAULT_CAPACITY: usize = 256;

    pub fn new(capacity: usize) -> Self {
        ChainCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn key(bundle: &[&[u8]]) -> Key {
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

    /// Whether `key` was validated and that validation holds at `t`.
    pub(crate) fn contains(&self, key: &Key, t: i64) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some(w) if t > w.not_after => {
                entries.remove(key);
                false
            }
            Some(w) => t >= w.not_before,
            None => false,
        }
    }

    pub(crate) fn insert(&self, key: Key, window: Window) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            if let Some(first_to_end) = entries
                .iter()
                .min_by_key(|(_, w)| w.not_after)
                .map(|(k, _)| *k)
            {
                entries.remove(&first_to_end);
            }
        }
        entries.insert(key, window);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
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
