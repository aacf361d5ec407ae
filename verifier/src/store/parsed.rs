//! Policies already parsed, by the exact bytes they were parsed from.
//!
//! A release reads its secret's policy row (authenticated by the store
//! before it gets here) and used to parse its TOML every time, about a
//! tenth of a release's CPU besides the signature. The cache is keyed by
//! the SHA-256 of the secret's name and the policy text, so any changed
//! byte misses and is parsed (and checked) as before; only successful
//! parses are kept. It holds at most [`CAPACITY`] policies; when full, an
//! arbitrary one is dropped (a miss only costs a parse).

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest::{Context, SHA256};
use hermetic_policy::SecretPolicy;

/// Most policies kept.
pub const CAPACITY: usize = 1024;

#[derive(Debug, Default)]
pub struct ParsedPolicies {
    entries: Mutex<HashMap<[u8; 32], SecretPolicy>>,
}

impl ParsedPolicies {
    /// The policy of `name` in `text`, parsed by `parse` unless the same
    /// name and text were parsed before.
    pub fn get_or_parse<E>(
        &self,
        name: &str,
        text: &str,
        parse: impl FnOnce() -> Result<SecretPolicy, E>,
    ) -> Result<SecretPolicy, E> {
        let key = key(name, text);
        if let Some(p) = self.lock().get(&key) {
            return Ok(p.clone());
        }
        let policy = parse()?;
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            if let Some(k) = entries.keys().next().copied() {
                entries.remove(&k);
            }
        }
        entries.insert(key, policy.clone());
        Ok(policy)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], SecretPolicy>> {
        // Every update is one insert or remove: a poisoned map is consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// SHA-256 over the name's length (8 bytes, big-endian), the name, the text.
fn key(name: &str, text: &str) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&(name.len() as u64).to_be_bytes());
    ctx.update(name.as_bytes());
    ctx.update(text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowing(pcr0: u8) -> SecretPolicy {
        SecretPolicy::allowing([(0u8, vec![pcr0; 48])].into())
    }

    #[test]
    fn the_same_bytes_parse_once_and_any_change_parses_again() {
        let cache = ParsedPolicies::default();
        let parses = std::cell::Cell::new(0);
        let get = |name: &str, text: &str, pcr0: u8| {
            cache
                .get_or_parse(name, text, || {
                    parses.set(parses.get() + 1);
                    Ok::<_, ()>(allowing(pcr0))
                })
                .unwrap()
        };
        assert_eq!(get("a", "text", 1), allowing(1));
        assert_eq!(get("a", "text", 9), allowing(1)); // cached
        assert_eq!(get("a", "text!", 2), allowing(2)); // another text
        assert_eq!(get("b", "text", 3), allowing(3)); // another name
                                                      // The name's length is in the key: "ab" + "c" is not "a" + "bc".
        assert_eq!(get("ab", "c", 4), allowing(4));
        assert_eq!(get("a", "bc", 5), allowing(5));
        assert_eq!(parses.get(), 5);
    }

    #[test]
    fn a_failed_parse_is_not_kept_and_the_cache_stays_bounded() {
        let cache = ParsedPolicies::default();
        assert_eq!(cache.get_or_parse("a", "bad", || Err("bad")), Err("bad"));
        assert_eq!(
            cache.get_or_parse("a", "bad", || Ok::<_, &str>(allowing(1))),
            Ok(allowing(1))
        );
        for i in 0..CAPACITY + 10 {
            let text = i.to_string();
            cache
                .get_or_parse("a", &text, || Ok::<_, ()>(allowing(1)))
                .unwrap();
        }
        assert_eq!(cache.len(), CAPACITY);
    }
}
