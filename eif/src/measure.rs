//! The PCR recipe and a single-pass, two-thread hashing pipeline.
//!
//! Recipe (aws/aws-nitro-enclaves-image-format):
//! - `src/defs/eif_hasher.rs`: the reader and builder create their hashers
//!   with `EifHasher::new_without_cache(Sha384::new())`, i.e. block_size 0, a
//!   plain pass-through SHA-384 over the concatenated bytes (no chunking).
//!   `tpm_extend_finalize_reset` then returns
//!   `SHA-384(48 zero bytes || SHA-384(content))` — a TPM extend of a zeroed PCR.
//! - `src/utils/eif_reader.rs` (`EifReader::from_eif`), walking sections in
//!   file order: Kernel and Cmdline data go to the image hasher (PCR0) and the
//!   bootstrap hasher (PCR1); Ramdisk data goes to PCR0, and to PCR1 for the
//!   first ramdisk, PCR2 for every later one; Signature and Metadata are not
//!   measured. Only section *data* is hashed, never the 12-byte section headers.
//! - PCR8: the cert hasher gets the DER of the signing certificate found in
//!   the signature section (`X509::from_pem(..).to_der()`); it is reported
//!   only for signed images (`get_pcrs` in `src/utils/mod.rs`).
//! - `HashAlgorithm` is `format!("{:?}", Sha384::new())`, which prints
//!   `Sha384 { ... }` (`get_pcrs`).

use std::io::Read;
use std::sync::mpsc;
use std::sync::Arc;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Length of a SHA-384 PCR value.
pub const PCR_LEN: usize = 48;
/// One PCR value.
pub type Pcr = [u8; PCR_LEN];
/// What nitro-cli prints as `HashAlgorithm` (Debug of `sha2::Sha384`).
pub const HASH_ALGORITHM: &str = "Sha384 { ... }";

/// SHA-384 over content, finalised as a TPM extend of a zeroed register.
#[derive(Clone)]
pub struct PcrHasher(digest::Context);

impl Default for PcrHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PcrHasher {
    pub fn new() -> Self {
        PcrHasher(digest::Context::new(&digest::SHA384))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// `SHA-384(0^48 || SHA-384(content))` (`EifHasher::tpm_extend_finalize_reset`).
    pub fn finish(self) -> Pcr {
        extend_zero(self.0.finish().as_ref())
    }
}

/// `SHA-384(0^48 || digest)`.
pub fn extend_zero(content_digest: &[u8]) -> Pcr {
    let mut ctx = digest::Context::new(&digest::SHA384);
    ctx.update(&[0u8; PCR_LEN]);
    ctx.update(content_digest);
    let mut out = [0u8; PCR_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// PCR of a byte string, as `nitro-cli pcr --input FILE` computes it.
pub fn pcr_of_bytes(data: &[u8]) -> Pcr {
    let mut h = PcrHasher::new();
    h.update(data);
    h.finish()
}

/// The measurement set nitro-cli reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurements {
    pub pcr0: Pcr,
    pub pcr1: Pcr,
    pub pcr2: Pcr,
    /// Present only for signed images.
    pub pcr8: Option<Pcr>,
}

/// nitro-cli's JSON shape of `Measurements` (a `BTreeMap<String, String>`, so
/// keys sort as HashAlgorithm, PCR0, PCR1, PCR2, PCR8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementsJson {
    #[serde(rename = "HashAlgorithm")]
    pub hash_algorithm: String,
    #[serde(rename = "PCR0")]
    pub pcr0: String,
    #[serde(rename = "PCR1")]
    pub pcr1: String,
    #[serde(rename = "PCR2")]
    pub pcr2: String,
    #[serde(rename = "PCR8", skip_serializing_if = "Option::is_none", default)]
    pub pcr8: Option<String>,
}

impl Measurements {
    pub fn to_json(&self) -> MeasurementsJson {
        MeasurementsJson {
            hash_algorithm: HASH_ALGORITHM.to_string(),
            pcr0: hex::encode(self.pcr0),
            pcr1: hex::encode(self.pcr1),
            pcr2: hex::encode(self.pcr2),
            pcr8: self.pcr8.map(hex::encode),
        }
    }

    /// `(index, value)` for every image-derived PCR present.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &Pcr)> {
        [
            (0u8, Some(&self.pcr0)),
            (1, Some(&self.pcr1)),
            (2, Some(&self.pcr2)),
        ]
        .into_iter()
        .chain(std::iter::once((8u8, self.pcr8.as_ref())))
        .filter_map(|(i, v)| v.map(|v| (i, v)))
    }

    pub fn get(&self, index: u8) -> Option<&Pcr> {
        match index {
            0 => Some(&self.pcr0),
            1 => Some(&self.pcr1),
            2 => Some(&self.pcr2),
            8 => self.pcr8.as_ref(),
            _ => None,
        }
    }
}

/// Which PCRs a byte range feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Kernel, cmdline, first ramdisk: PCR0 and PCR1.
    Boot,
    /// Later ramdisks: PCR0 and PCR2.
    App,
}

/// A measured byte range `[start, end)` in stream coordinates.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub role: Role,
}

/// PCR0/1/2 of one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImagePcrs {
    pub pcr0: Pcr,
    pub pcr1: Pcr,
    pub pcr2: Pcr,
}

/// Read size of the streaming pass. Large enough to amortise syscalls and
/// channel hand-offs, small enough to stay in L2/L3 while two threads hash it.
pub const CHUNK: usize = 1 << 20;
/// Below this many streamed bytes, hash on the calling thread.
const PARALLEL_THRESHOLD: u64 = 8 << 20;
/// Buffers in flight between the reader and the two hashing threads.
const POOL: usize = 4;

type Seg = (usize, usize, Role);

struct Job {
    buf: Vec<u8>,
    len: usize,
    segs: Vec<Seg>,
}

/// Hashing lane 0: PCR0 over every measured byte. When all boot bytes come
/// before all app bytes (the reference layout), PCR1's input is a prefix of
/// PCR0's, and SHA-384 being a Merkle-Damgard hash, PCR1 is PCR0's state
/// cloned at the first app byte: then no byte is hashed for PCR1 separately.
struct Lane0 {
    p0: PcrHasher,
    prefix: bool,
    p1_snapshot: Option<PcrHasher>,
}

impl Lane0 {
    fn new(prefix: bool) -> Self {
        Lane0 {
            p0: PcrHasher::new(),
            prefix,
            p1_snapshot: None,
        }
    }

    fn feed(&mut self, buf: &[u8], segs: &[Seg]) {
        for &(s, e, role) in segs {
            if self.prefix && role == Role::App && self.p1_snapshot.is_none() {
                self.p1_snapshot = Some(self.p0.clone());
            }
            self.p0.update(&buf[s..e]);
        }
    }

    fn finish(self) -> (Pcr, Option<Pcr>) {
        let p1 = if self.prefix {
            Some(self.p1_snapshot.unwrap_or_else(|| self.p0.clone()).finish())
        } else {
            None
        };
        (self.p0.finish(), p1)
    }
}

/// Hashing lane 1: PCR2 over the app bytes, and PCR1 over the boot bytes
/// when lane 0 cannot derive it.
struct Lane1 {
    p1: Option<PcrHasher>,
    p2: PcrHasher,
}

impl Lane1 {
    fn new(prefix: bool) -> Self {
        Lane1 {
            p1: (!prefix).then(PcrHasher::new),
            p2: PcrHasher::new(),
        }
    }

    fn feed(&mut self, buf: &[u8], segs: &[Seg]) {
        for &(s, e, role) in segs {
            match (role, self.p1.as_mut()) {
                (Role::Boot, Some(p1)) => p1.update(&buf[s..e]),
                (Role::Boot, None) => {}
                (Role::App, _) => self.p2.update(&buf[s..e]),
            }
        }
    }

    fn finish(self) -> (Option<Pcr>, Pcr) {
        (self.p1.map(PcrHasher::finish), self.p2.finish())
    }
}

fn combine((pcr0, a1): (Pcr, Option<Pcr>), (b1, pcr2): (Option<Pcr>, Pcr)) -> ImagePcrs {
    ImagePcrs {
        pcr0,
        pcr1: a1.or(b1).unwrap_or_else(|| PcrHasher::new().finish()),
        pcr2,
    }
}

/// True when no non-empty boot region follows a non-empty app region.
fn boot_is_prefix(regions: &[Region]) -> bool {
    let mut seen_app = false;
    for r in regions.iter().filter(|r| r.end > r.start) {
        match r.role {
            Role::App => seen_app = true,
            Role::Boot if seen_app => return false,
            Role::Boot => {}
        }
    }
    true
}

/// Streams exactly `total_len` bytes from `reader` (stream offsets start at
/// `base`), calls `on_chunk(offset, bytes)` for every chunk on the calling
/// thread (CRC, capture of small sections), and hashes the `regions` (sorted,
/// disjoint, within the stream) into PCR0/1/2. Every byte is read once. For
/// large inputs two threads hash while this thread reads the next chunk:
/// lane 0 hashes PCR0 (and derives PCR1 from its state when the boot bytes
/// come first, as in every reference-built image), lane 1 hashes PCR2 (and
/// PCR1 otherwise). So no thread does more than one SHA-384 pass over the file.
pub fn stream_measure<R: Read>(
    mut reader: R,
    base: u64,
    total_len: u64,
    regions: &[Region],
    mut read_err: impl FnMut(std::io::Error) -> crate::error::EifError,
    mut on_chunk: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<ImagePcrs> {
    // Segments of `regions` that fall inside [off, off + len), relative to off.
    let mut next_region = 0usize;
    let mut segs_for = |off: u64, len: usize| -> Vec<Seg> {
        let end = off + len as u64;
        let mut out = Vec::new();
        while next_region < regions.len() && regions[next_region].end <= off {
            next_region += 1;
        }
        let mut i = next_region;
        while i < regions.len() && regions[i].start < end {
            let r = regions[i];
            let s = r.start.max(off);
            let e = r.end.min(end);
            if s < e {
                out.push(((s - off) as usize, (e - off) as usize, r.role));
            }
            i += 1;
        }
        out
    };

    let prefix = boot_is_prefix(regions);
    if total_len < PARALLEL_THRESHOLD {
        let mut l0 = Lane0::new(prefix);
        let mut l1 = Lane1::new(prefix);
        let mut buf = vec![0u8; CHUNK.min(total_len as usize)];
        let mut off = base;
        let mut remaining = total_len;
        while remaining > 0 {
            let n = CHUNK.min(remaining as usize);
            reader.read_exact(&mut buf[..n]).map_err(&mut read_err)?;
            on_chunk(off, &buf[..n])?;
            let segs = segs_for(off, n);
            l0.feed(&buf[..n], &segs);
            l1.feed(&buf[..n], &segs);
            off += n as u64;
            remaining -= n as u64;
        }
        return Ok(combine(l0.finish(), l1.finish()));
    }

    std::thread::scope(|scope| {
        let (tx0, rx0) = mpsc::sync_channel::<Arc<Job>>(POOL);
        let (tx12, rx12) = mpsc::sync_channel::<Arc<Job>>(POOL);
        // Each worker reports the sequence number it finished.
        let (done_tx, done_rx) = mpsc::channel::<(u8, u64)>();
        let d0 = done_tx.clone();
        let w0 = scope.spawn(move || {
            let mut l0 = Lane0::new(prefix);
            let mut seq = 0u64;
            for job in rx0 {
                l0.feed(&job.buf[..job.len], &job.segs);
                drop(job);
                seq += 1;
                let _ = d0.send((0, seq));
            }
            l0.finish()
        });
        let d12 = done_tx;
        let w12 = scope.spawn(move || {
            let mut l1 = Lane1::new(prefix);
            let mut seq = 0u64;
            for job in rx12 {
                l1.feed(&job.buf[..job.len], &job.segs);
                drop(job);
                seq += 1;
                let _ = d12.send((1, seq));
            }
            l1.finish()
        });

        let mut result: Result<()> = Ok(());
        let mut worker_gone = false;
        let mut free: Vec<Vec<u8>> = Vec::new();
        let mut in_flight: std::collections::VecDeque<(u64, Arc<Job>)> = Default::default();
        let (mut done0, mut done12) = (0u64, 0u64);
        let mut sent = 0u64;
        let mut off = base;
        let mut remaining = total_len;
        while remaining > 0 {
            // Recycle finished buffers; block only when the pool is exhausted.
            while let Ok((w, s)) = done_rx.try_recv() {
                if w == 0 {
                    done0 = s
                } else {
                    done12 = s
                }
            }
            loop {
                let oldest_done =
                    matches!(in_flight.front(), Some((seq, _)) if done0 >= *seq && done12 >= *seq);
                if oldest_done {
                    if let Some((_, job)) = in_flight.pop_front() {
                        if let Ok(job) = Arc::try_unwrap(job) {
                            free.push(job.buf);
                        }
                    }
                    continue;
                }
                if in_flight.len() < POOL {
                    break;
                }
                match done_rx.recv_timeout(std::time::Duration::from_millis(200)) {
                    Ok((w, s)) => {
                        if w == 0 {
                            done0 = s
                        } else {
                            done12 = s
                        }
                    }
                    // A worker that died (it cannot, short of a bug) must
                    // not leave us waiting for it: stop and report on join.
                    Err(mpsc::RecvTimeoutError::Timeout)
                        if !(w0.is_finished() || w12.is_finished()) => {}
                    Err(_) => {
                        worker_gone = true;
                        break;
                    }
                }
            }
            if worker_gone {
                break;
            }
            let mut buf = free.pop().unwrap_or_else(|| vec![0u8; CHUNK]);
            let n = CHUNK.min(remaining as usize);
            if let Err(e) = reader.read_exact(&mut buf[..n]) {
                result = Err(read_err(e));
                break;
            }
            if let Err(e) = on_chunk(off, &buf[..n]) {
                result = Err(e);
                break;
            }
            let segs = segs_for(off, n);
            let job = Arc::new(Job { buf, len: n, segs });
            sent += 1;
            in_flight.push_back((sent, job.clone()));
            if tx0.send(job.clone()).is_err() || tx12.send(job).is_err() {
                worker_gone = true;
                break;
            }
            off += n as u64;
            remaining -= n as u64;
        }
        drop(tx0);
        drop(tx12);
        drop(in_flight);
        let pcr0 = w0.join();
        let pcrs12 = w12.join();
        result?;
        match (pcr0, pcrs12) {
            (Ok(a), Ok(b)) if !worker_gone => Ok(combine(a, b)),
            _ => Err(crate::error::EifError::io(
                "<hashing thread>",
                std::io::Error::other("a hashing thread stopped early"),
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha384(d: &[u8]) -> Vec<u8> {
        digest::digest(&digest::SHA384, d).as_ref().to_vec()
    }

    #[test]
    fn extend_matches_definition() {
        let mut pre = vec![0u8; 48];
        pre.extend(sha384(b"abc"));
        assert_eq!(pcr_of_bytes(b"abc").to_vec(), sha384(&pre));
    }

    fn check_stream(total: usize) {
        let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 3) as u8).collect();
        // Three regions with a gap and a trailing unmeasured part.
        let a = total / 5;
        let b = total / 2;
        let c = total - total / 7;
        let regions = [
            Region {
                start: 10,
                end: a as u64,
                role: Role::Boot,
            },
            Region {
                start: a as u64 + 3,
                end: b as u64,
                role: Role::Boot,
            },
            Region {
                start: b as u64,
                end: c as u64,
                role: Role::App,
            },
        ];
        let mut seen = 0usize;
        let got = stream_measure(
            &data[..],
            0,
            total as u64,
            &regions,
            |e| crate::error::EifError::io("mem", e),
            |off, chunk| {
                assert_eq!(off as usize, seen);
                seen += chunk.len();
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, total);
        let mut p0 = data[10..a].to_vec();
        p0.extend_from_slice(&data[a + 3..c]);
        let mut p1 = data[10..a].to_vec();
        p1.extend_from_slice(&data[a + 3..b]);
        assert_eq!(got.pcr0, pcr_of_bytes(&p0));
        assert_eq!(got.pcr1, pcr_of_bytes(&p1));
        assert_eq!(got.pcr2, pcr_of_bytes(&data[b..c]));
    }

    fn check_stream_unordered(total: usize) {
        // App before boot: PCR1 cannot be derived from PCR0's state.
        let data: Vec<u8> = (0..total).map(|i| (i * 13 + i / 5) as u8).collect();
        let a = total / 3;
        let b = 2 * total / 3;
        let regions = [
            Region {
                start: 0,
                end: a as u64,
                role: Role::Boot,
            },
            Region {
                start: a as u64,
                end: b as u64,
                role: Role::App,
            },
            Region {
                start: b as u64,
                end: total as u64,
                role: Role::Boot,
            },
        ];
        assert!(!boot_is_prefix(&regions));
        let got = stream_measure(
            &data[..],
            0,
            total as u64,
            &regions,
            |e| crate::error::EifError::io("mem", e),
            |_, _| Ok(()),
        )
        .unwrap();
        let mut p1 = data[..a].to_vec();
        p1.extend_from_slice(&data[b..]);
        assert_eq!(got.pcr0, pcr_of_bytes(&data));
        assert_eq!(got.pcr1, pcr_of_bytes(&p1));
        assert_eq!(got.pcr2, pcr_of_bytes(&data[a..b]));
    }

    #[test]
    fn stream_unordered_regions() {
        check_stream_unordered(5000);
        check_stream_unordered(PARALLEL_THRESHOLD as usize + CHUNK / 2);
    }

    #[test]
    fn stream_small_and_parallel_agree_with_recipe() {
        check_stream(1000);
        check_stream(3 * CHUNK + 12345);
        check_stream(PARALLEL_THRESHOLD as usize + 7 * CHUNK / 3);
    }
}
