//! Challenge nonces: issued fresh, accepted once, forgotten after expiry.
//!
//! Kept in memory on purpose: after a restart every outstanding nonce is
//! unknown and refused, which fails closed. The book is bounded so that a
//! flood of challenges cannot exhaust memory, and each client address may
//! hold only so many outstanding (issued, unused, unexpired) nonces, so
//! that one address cannot take the whole book from the others.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use aws_lc_rs::rand::SecureRandom;
use hermetic_envelope::wire::reason;

/// Bytes in a nonce (from the system CSPRNG).
pub const NONCE_LEN: usize = 32;
/// Default time a nonce stays acceptable.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Default bound on nonces remembered at once (issued or used, unexpired).
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Default bound on outstanding nonces per client address. An enclave needs
/// one at a time; every enclave behind one parent instance shares its
/// address, and a parent runs at most a few enclaves.
pub const DEFAULT_PER_ADDRESS: usize = 64;

/// Why a nonce was not accepted. `reason()` codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    #[error("the nonce was not issued by this verifier (or it was issued before a restart)")]
    Unknown,
    #[error("the nonce has expired; ask for a new challenge")]
    Expired,
    #[error("the nonce was already used; every challenge is single-use")]
    Replayed,
    /// The shared nonce table (replicas on one database) cannot be reached.
    #[error("the store's database cannot be reached to consume the nonce; retry")]
    Unavailable,
}

impl NonceError {
    pub fn reason(&self) -> &'static str {
        match self {
            // The enclave retries these two with a fresh challenge.
            NonceError::Unknown => reason::NONCE_UNKNOWN,
            NonceError::Expired => reason::NONCE_EXPIRED,
            NonceError::Replayed => "nonce_replayed",
            NonceError::Unavailable => "store_unavailable",
        }
    }
}

/// Why no nonce could be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("too many outstanding challenges; try again shortly")]
    Full,
    #[error("this address holds too many unused challenges; use or let them expire first")]
    TooManyForAddress,
    #[error("the random number generator failed")]
    Rng,
    /// The shared nonce table (replicas on one database) cannot be reached.
    #[error("the store's database cannot be reached to record the challenge; retry")]
    Unavailable,
}

impl IssueError {
    pub fn reason(&self) -> &'static str {
        match self {
            IssueError::Full => reason::CHALLENGE_CAPACITY,
            IssueError::TooManyForAddress => reason::TOO_MANY_OUTSTANDING_NONCES,
            IssueError::Rng => reason::RNG_FAILED,
            IssueError::Unavailable => "store_unavailable",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    expires_ms: u64,
    used: bool,
    /// The address it was issued to, if counted per address.
    owner: Option<IpAddr>,
}

/// What one address holds: its unused nonces, and every nonce issued to it
/// in issue order (which is expiry order: one TTL for all) for pruning.
#[derive(Debug, Default)]
struct Holder {
    unused: usize,
    issued: VecDeque<(u64, [u8; NONCE_LEN])>,
}

#[derive(Debug, Default)]
struct Book {
    entries: HashMap<[u8; NONCE_LEN], Entry>,
    holders: HashMap<IpAddr, Holder>,
}

impl Book {
    /// Forgets `nonce`; an unused one no longer counts for its owner.
    fn forget(&mut self, nonce: &[u8; NONCE_LEN]) {
        let Some(entry) = self.entries.remove(nonce) else {
            return;
        };
        if let (Some(owner), false) = (entry.owner, entry.used) {
            if let Some(holder) = self.holders.get_mut(&owner) {
                holder.unused = holder.unused.saturating_sub(1);
            }
        }
    }

    /// The nonces issued to `owner` not known here to be used.
    fn unused_of(&self, owner: IpAddr) -> Vec<[u8; NONCE_LEN]> {
        self.holders.get(&owner).map_or_else(Vec::new, |h| {
            h.issued
                .iter()
                .map(|(_, nonce)| *nonce)
                .filter(|n| {
                    self.entries
                        .get(n)
                        .is_some_and(|e| !e.used && e.owner == Some(owner))
                })
                .collect()
        })
    }

    /// Marks an issued nonce used (consumed at another replica), so it no
    /// longer counts as outstanding for its address.
    fn mark_used(&mut self, nonce: &[u8; NONCE_LEN]) {
        let Some(entry) = self.entries.get_mut(nonce) else {
            return;
        };
        if entry.used {
            return;
        }
        entry.used = true;
        if let Some(owner) = entry.owner {
            if let Some(holder) = self.holders.get_mut(&owner) {
                holder.unused = holder.unused.saturating_sub(1);
            }
        }
    }

    /// Forgets the expired nonces issued to `owner`.
    fn prune_holder(&mut self, owner: IpAddr, now_ms: u64) {
        loop {
            let Some(holder) = self.holders.get_mut(&owner) else {
                return;
            };
            match holder.issued.front() {
                Some((expires_ms, nonce)) if *expires_ms <= now_ms => {
                    let nonce = *nonce;
                    holder.issued.pop_front();
                    // Only if it is still this issue's entry.
                    if self
                        .entries
                        .get(&nonce)
                        .is_some_and(|e| e.owner == Some(owner))
                    {
                        self.forget(&nonce);
                    }
                }
                _ => break,
            }
        }
        if self
            .holders
            .get(&owner)
            .is_some_and(|h| h.issued.is_empty())
        {
            self.holders.remove(&owner);
        }
    }

    /// Forgets every expired nonce.
    fn prune(&mut self, now_ms: u64) {
        let expired: Vec<[u8; NONCE_LEN]> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_ms <= now_ms)
            .map(|(k, _)| *k)
            .collect();
        for nonce in &expired {
            self.forget(nonce);
        }
        let owners: Vec<IpAddr> = self.holders.keys().copied().collect();
        for owner in owners {
            self.prune_holder(owner, now_ms);
        }
    }
}

/// What a shared nonce table answered to a consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// Marked used now (by this call, atomically across every replica);
    /// it was issued to expire at `expires_ms`.
    Taken { expires_ms: u64 },
    /// Already used (at any replica).
    Used,
    /// Never issued (by any replica), or forgotten after expiry.
    Unknown,
}

/// Nonces shared by verifier replicas (issue 13): one issued by any replica
/// is accepted once, at any replica. Errors mean the table cannot be
/// reached (the caller refuses, transiently).
pub trait SharedNonces: Send + Sync + std::fmt::Debug {
    fn insert(&self, nonce: &[u8; NONCE_LEN], expires_ms: u64) -> Result<(), String>;
    /// Marks `nonce` used if it is unused, in one atomic step.
    fn consume(&self, nonce: &[u8; NONCE_LEN]) -> Result<Consumed, String>;
    /// Which of `nonces` were used (at any replica).
    fn used(&self, nonces: &[[u8; NONCE_LEN]]) -> Result<Vec<[u8; NONCE_LEN]>, String>;
    /// Forgets nonces that expired before `now_ms`.
    fn prune(&self, now_ms: u64) -> Result<(), String>;
}

/// Issues between two prunes of a shared table.
const SHARED_PRUNE_EVERY: u64 = 1024;

/// The set of outstanding and recently used nonces.
#[derive(Debug)]
pub struct NonceBook {
    ttl: Duration,
    capacity: usize,
    per_address: usize,
    book: Mutex<Book>,
    shared: Option<std::sync::Arc<dyn SharedNonces>>,
    issued: std::sync::atomic::AtomicU64,
}

impl Default for NonceBook {
    fn default() -> Self {
        NonceBook::new(DEFAULT_TTL, DEFAULT_CAPACITY)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl NonceBook {
    /// A book of at most `capacity` nonces, [`DEFAULT_PER_ADDRESS`]
    /// outstanding per address (see [`NonceBook::with_per_address`]).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        NonceBook {
            ttl,
            capacity,
            per_address: DEFAULT_PER_ADDRESS,
            book: Mutex::new(Book::default()),
            shared: None,
            issued: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Also keeps every nonce in `shared`, so that replicas accept each
    /// other's nonces, each once. The per-address and capacity bounds stay
    /// this replica's own.
    pub fn with_shared(mut self, shared: std::sync::Arc<dyn SharedNonces>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Sets the most outstanding nonces one address may hold (at least 1).
    pub fn with_per_address(mut self, per_address: usize) -> Self {
        self.per_address = per_address.max(1);
        self
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock leaves a usable book (counts are
        // only ever too high, which refuses, never too low), so a poisoned
        // lock is still used.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a fresh nonce valid until the returned instant (since epoch),
    /// bounded only by the book's capacity. The service uses
    /// [`NonceBook::issue_to`].
    pub fn issue(
        &self,
        rng: &dyn SecureRandom,
        now: Duration,
    ) -> Result<([u8; NONCE_LEN], Duration), IssueError> {
        self.issue_inner(rng, now, None)
    }

    /// Issues a fresh nonce to `client`, who may hold at most the
    /// per-address bound of unused, unexpired nonces.
    pub fn issue_to(
        &self,
        rng: &dyn SecureRandom,
        now: Duration,
        client: IpAddr,
    ) -> Result<([u8; NONCE_LEN], Duration), IssueError> {
        self.issue_inner(rng, now, Some(client))
    }

    fn issue_inner(
        &self,
        rng: &dyn SecureRandom,
        now: Duration,
        owner: Option<IpAddr>,
    ) -> Result<([u8; NONCE_LEN], Duration), IssueError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| IssueError::Rng)?;
        let expires = now + self.ttl;
        let now_ms = ms(now);
        let mut book = self.lock();
        if let Some(owner) = owner {
            book.prune_holder(owner, now_ms);
            if book.holders.get(&owner).map_or(0, |h| h.unused) >= self.per_address {
                if let Some(shared) = &self.shared {
                    // A nonce released at another replica is used there:
                    // this replica's count learns it only from the table.
                    let held = book.unused_of(owner);
                    drop(book);
                    let used = shared.used(&held).map_err(|_| IssueError::Unavailable)?;
                    book = self.lock();
                    for nonce in used {
                        book.mark_used(&nonce);
                    }
                }
                if book.holders.get(&owner).map_or(0, |h| h.unused) >= self.per_address {
                    return Err(IssueError::TooManyForAddress);
                }
            }
        }
        if book.entries.len() >= self.capacity {
            book.prune(now_ms);
            if book.entries.len() >= self.capacity {
                return Err(IssueError::Full);
            }
        }
        let expires_ms = ms(expires);
        book.entries.insert(
            nonce,
            Entry {
                expires_ms,
                used: false,
                owner,
            },
        );
        if let Some(shared) = &self.shared {
            // Recorded where every replica sees it before it is handed out.
            drop(book);
            let count = self
                .issued
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if count % SHARED_PRUNE_EVERY == SHARED_PRUNE_EVERY - 1 {
                shared.prune(now_ms).map_err(|_| IssueError::Unavailable)?;
            }
            shared
                .insert(&nonce, expires_ms)
                .map_err(|_| IssueError::Unavailable)?;
            book = self.lock();
        }
        book.entries.insert(
            nonce,
            Entry {
                expires_ms,
                used: false,
                owner,
            },
        );
        if let Some(owner) = owner {
            let holder = book.holders.entry(owner).or_default();
            holder.unused += 1;
            holder.issued.push_back((expires_ms, nonce));
        }
        Ok((nonce, expires))
    }

    /// Accepts `nonce` once: checks and marks it used under one lock, so two
    /// concurrent releases with the same nonce cannot both pass.
    pub fn consume(&self, nonce: &[u8], now: Duration) -> Result<(), NonceError> {
        let key: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| NonceError::Unknown)?;
        if let Some(shared) = &self.shared {
            let taken = match shared.consume(&key).map_err(|_| NonceError::Unavailable)? {
                Consumed::Taken { expires_ms } => expires_ms,
                Consumed::Used => return Err(NonceError::Replayed),
                Consumed::Unknown => return Err(NonceError::Unknown),
            };
            // Issued here, perhaps: no longer outstanding for its address.
            let mut book = self.lock();
            if let Some(entry) = book.entries.get_mut(&key) {
                entry.used = true;
                if let Some(owner) = entry.owner {
                    if let Some(holder) = book.holders.get_mut(&owner) {
                        holder.unused = holder.unused.saturating_sub(1);
                    }
                }
            }
            if ms(now) >= taken {
                return Err(NonceError::Expired);
            }
            return Ok(());
        }
        let mut book = self.lock();
        let entry = book.entries.get_mut(&key).ok_or(NonceError::Unknown)?;
        if entry.used {
            return Err(NonceError::Replayed);
        }
        if ms(now) >= entry.expires_ms {
            return Err(NonceError::Expired);
        }
        entry.used = true;
        if let Some(owner) = entry.owner {
            if let Some(holder) = book.holders.get_mut(&owner) {
                holder.unused = holder.unused.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Number of remembered nonces (for metrics).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Unused, unexpired-at-last-prune nonces held by `client`.
    pub fn outstanding_for(&self, client: IpAddr) -> usize {
        self.lock().holders.get(&client).map_or(0, |h| h.unused)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    /// One nonce table shared by books (replicas), in memory.
    #[derive(Debug, Default)]
    struct Table(Mutex<HashMap<[u8; NONCE_LEN], (u64, bool)>>);

    impl SharedNonces for Table {
        fn insert(&self, nonce: &[u8; NONCE_LEN], expires_ms: u64) -> Result<(), String> {
            self.0.lock().unwrap().insert(*nonce, (expires_ms, false));
            Ok(())
        }
        fn consume(&self, nonce: &[u8; NONCE_LEN]) -> Result<Consumed, String> {
            Ok(match self.0.lock().unwrap().get_mut(nonce) {
                Some((_, true)) => Consumed::Used,
                Some((expires_ms, used)) => {
                    *used = true;
                    Consumed::Taken {
                        expires_ms: *expires_ms,
                    }
                }
                None => Consumed::Unknown,
            })
        }
        fn used(&self, nonces: &[[u8; NONCE_LEN]]) -> Result<Vec<[u8; NONCE_LEN]>, String> {
            let table = self.0.lock().unwrap();
            Ok(nonces
                .iter()
                .filter(|n| table.get(*n).is_some_and(|e| e.1))
                .copied()
                .collect())
        }
        fn prune(&self, now_ms: u64) -> Result<(), String> {
            self.0.lock().unwrap().retain(|_, e| e.0 >= now_ms);
            Ok(())
        }
    }

    #[test]
    fn nonces_released_at_another_replica_no_longer_count_against_their_address() {
        let rng = SystemRandom::new();
        let table = std::sync::Arc::new(Table::default());
        let a = NonceBook::new(Duration::from_secs(60), 10_000)
            .with_per_address(4)
            .with_shared(table.clone());
        let b = NonceBook::new(Duration::from_secs(60), 10_000)
            .with_per_address(4)
            .with_shared(table.clone());
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Duration::from_secs(1_000);
        // Challenge at A, release at B, many more times than the bound.
        for _ in 0..20 {
            let (nonce, _) = a.issue_to(&rng, now, client).unwrap();
            b.consume(&nonce, now).unwrap();
        }
        // Held and unused, the bound still holds at A.
        for _ in 0..4 {
            a.issue_to(&rng, now, client).unwrap();
        }
        assert!(matches!(
            a.issue_to(&rng, now, client),
            Err(IssueError::TooManyForAddress)
        ));
    }

    const T0: Duration = Duration::from_secs(1_800_000_000);

    #[test]
    fn single_use_and_expiry() {
        let book = NonceBook::new(Duration::from_secs(60), 10);
        let rng = SystemRandom::new();
        let (a, exp) = book.issue(&rng, T0).unwrap();
        assert_eq!(exp, T0 + Duration::from_secs(60));
        let (b, _) = book.issue(&rng, T0).unwrap();
        assert_ne!(a, b);
        assert_eq!(book.consume(&a, T0), Ok(()));
        assert_eq!(book.consume(&a, T0), Err(NonceError::Replayed));
        assert_eq!(
            book.consume(&b, T0 + Duration::from_secs(60)),
            Err(NonceError::Expired)
        );
        assert_eq!(book.consume(&[7; 32], T0), Err(NonceError::Unknown));
        assert_eq!(book.consume(&[7; 3], T0), Err(NonceError::Unknown));
    }

    #[test]
    fn per_address_bound_leaves_room_for_others() {
        let book = NonceBook::new(Duration::from_secs(60), 6).with_per_address(2);
        let rng = SystemRandom::new();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let (first, _) = book.issue_to(&rng, T0, a).unwrap();
        book.issue_to(&rng, T0, a).unwrap();
        assert_eq!(
            book.issue_to(&rng, T0, a),
            Err(IssueError::TooManyForAddress)
        );
        assert_eq!(
            IssueError::TooManyForAddress.reason(),
            "too_many_outstanding_nonces"
        );
        // Another address is served.
        assert!(book.issue_to(&rng, T0, b).is_ok());
        // Using one gives the address room again; the used one is still
        // remembered (replays are caught).
        book.consume(&first, T0).unwrap();
        assert_eq!(book.outstanding_for(a), 1);
        assert!(book.issue_to(&rng, T0, a).is_ok());
        assert_eq!(book.consume(&first, T0), Err(NonceError::Replayed));
        // Expiry frees the address.
        let later = T0 + Duration::from_secs(61);
        assert!(book.issue_to(&rng, later, a).is_ok());
        assert_eq!(book.outstanding_for(a), 1);
        assert!(book.issue_to(&rng, later, a).is_ok());
        assert_eq!(
            book.issue_to(&rng, later, a),
            Err(IssueError::TooManyForAddress)
        );
    }

    #[test]
    fn the_global_bound_still_holds_across_addresses() {
        let book = NonceBook::new(Duration::from_secs(60), 3).with_per_address(2);
        let rng = SystemRandom::new();
        let ips: Vec<IpAddr> = (1..=4)
            .map(|i| format!("10.0.0.{i}").parse().unwrap())
            .collect();
        book.issue_to(&rng, T0, ips[0]).unwrap();
        book.issue_to(&rng, T0, ips[1]).unwrap();
        book.issue_to(&rng, T0, ips[2]).unwrap();
        assert_eq!(book.issue_to(&rng, T0, ips[3]), Err(IssueError::Full));
        // A refused issue holds nothing.
        assert_eq!(book.outstanding_for(ips[3]), 0);
        let later = T0 + Duration::from_secs(60);
        assert!(book.issue_to(&rng, later, ips[3]).is_ok());
        assert_eq!(book.len(), 1);
        assert_eq!(book.outstanding_for(ips[0]), 0);
    }

    #[test]
    fn bounded_and_pruned() {
        let book = NonceBook::new(Duration::from_secs(60), 2);
        let rng = SystemRandom::new();
        book.issue(&rng, T0).unwrap();
        book.issue(&rng, T0).unwrap();
        assert_eq!(book.issue(&rng, T0), Err(IssueError::Full));
        // Once the first two expire, room is made again.
        assert!(book.issue(&rng, T0 + Duration::from_secs(61)).is_ok());
        assert_eq!(book.len(), 1);
    }
}
