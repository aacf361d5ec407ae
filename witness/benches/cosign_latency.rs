//! Checkpoint latency and appends per second with 0 and 2 witnesses.
//!
//! A log in memory (Go's stored-hash layout, hermetic-tlog) appends records
//! in batches; after each batch it signs a checkpoint and, with witnesses,
//! has it cosigned by a pool (K = 2 of 2) of in-process witnesses on
//! 127.0.0.1 that persist their state (temporary file, fsync, rename,
//! directory fsync) before answering. Checkpoint latency is from the end
//! of a batch to the cosigned checkpoint (signing, the two HTTP rounds in
//! parallel, the witnesses' checks and fsyncs); appends per second count
//! records over the whole run, so batching is what amortizes the round.
//!
//! Then the group mode the verifier's grants will use ([`Batcher`]):
//! CONCURRENCY tasks each append one record and wait until it is in a
//! cosigned checkpoint, then append the next; rounds run one at a time and
//! each covers every record appended while the previous one ran.
//!
//! What this does not include: the verifier's own store commit per record
//! (see the release_load bench) — this is the cost witnessing adds.
//!
//! `cargo bench -p hermetic-witness --bench cosign_latency`
//! (env HERMETIC_BENCH_CHECKPOINTS per row, default 200;
//! HERMETIC_BENCH_BATCHES, comma-separated records per checkpoint, default
//! 1,16,256; HERMETIC_BENCH_RECORDS for the group mode, default 2000, from
//! HERMETIC_BENCH_CONCURRENCY tasks, default 16).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::cosignature::Cosigner;
use hermetic_tlog::merkle::{self, Hash};
use hermetic_tlog::note::Signer;
use hermetic_tlog::witness::KnownLogs;
use hermetic_witness::{
    Batcher, CheckpointSource, PoolWitness, ProofSource, StateDir, Witness, WitnessPool,
};

const ORIGIN: &str = "bench.hermetic/log";

/// The log's stored hashes, shared with the proof source.
struct Hashes(std::sync::RwLock<Vec<Hash>>);

impl ProofSource for Hashes {
    fn prove(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        let hashes = self.0.read().ok()?;
        merkle::prove_tree(new, old, &*hashes).ok()
    }
}

/// The log for the group mode: appenders share it with the batcher.
struct Log {
    signer: Signer,
    hashes: Arc<Hashes>,
    /// Checkpoints signed: one per round.
    rounds: std::sync::atomic::AtomicUsize,
}

impl Log {
    fn append(&self) -> u64 {
        let mut h = self.hashes.0.write().unwrap();
        let n = leaves(&h);
        let record = format!("record {n}");
        let new = merkle::stored_hashes(n, record.as_bytes(), &*h).unwrap();
        h.extend(new);
        n + 1
    }
}

/// Records in a stored-hash list: the largest n with stored_hash_count(n)
/// equal to its length.
fn leaves(h: &[Hash]) -> u64 {
    let (mut lo, mut hi) = (0u64, h.len() as u64);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if merkle::stored_hash_count(mid) <= h.len() as u64 {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

impl CheckpointSource for Log {
    fn checkpoint(&self) -> Result<(String, u64), String> {
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let h = self.hashes.0.read().map_err(|e| e.to_string())?;
        let size = leaves(&h);
        let root = merkle::tree_hash(size, &*h).map_err(|e| e.to_string())?;
        let note = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root_hash: root,
            extensions: vec![],
        }
        .sign(&self.signer)
        .map_err(|e| e.to_string())?;
        Ok((note, size))
    }
    fn proofs(&self) -> Arc<dyn ProofSource> {
        self.hashes.clone()
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn start_witness(dir: &std::path::Path, name: &str, log: &Signer) -> PoolWitness {
    let cosigner = Cosigner::generate(name).unwrap();
    let key = cosigner.cosigner_key();
    let witness = Witness::open(
        cosigner,
        KnownLogs::new([log.verifier_key()]),
        StateDir::open(dir).unwrap(),
        hermetic_witness::system_clock(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(hermetic_witness::serve(
        listener,
        Arc::new(witness),
        std::future::pending(),
    ));
    PoolWitness { url, key }
}

#[tokio::main]
async fn main() {
    let checkpoints: usize = env_or("HERMETIC_BENCH_CHECKPOINTS", 200);
    let batches: Vec<u64> = std::env::var("HERMETIC_BENCH_BATCHES")
        .unwrap_or_else(|_| "1,16,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let signer = Signer::generate(ORIGIN).unwrap();

    println!("witnesses  batch  checkpoints  appends/s  checkpoint p50  p99");
    for witnesses in [0usize, 2] {
        for &batch in &batches {
            let mut pool_witnesses = Vec::new();
            for i in 0..witnesses {
                let dir = tmp.path().join(format!("w{witnesses}-{batch}-{i}"));
                pool_witnesses.push(start_witness(&dir, &format!("w{i}.bench"), &signer).await);
            }
            let pool =
                WitnessPool::new(pool_witnesses, witnesses, Duration::from_secs(10)).unwrap();
            let hashes = Arc::new(Hashes(std::sync::RwLock::new(Vec::new())));
            let proofs: Arc<dyn ProofSource> = hashes.clone();
            let mut size = 0u64;
            let mut latencies = Vec::with_capacity(checkpoints);
            let started = Instant::now();
            for _ in 0..checkpoints {
                {
                    let mut h = hashes.0.write().unwrap();
                    for _ in 0..batch {
                        let record = format!("record {size}");
                        let new = merkle::stored_hashes(size, record.as_bytes(), &*h).unwrap();
                        h.extend(new);
                        size += 1;
                    }
                }
                let t = Instant::now();
                let root = merkle::tree_hash(size, &*hashes.0.read().unwrap()).unwrap();
                let note = Checkpoint {
                    origin: ORIGIN.into(),
                    size,
                    root_hash: root,
                    extensions: vec![],
                }
                .sign(&signer)
                .unwrap();
                let cosigned = pool.cosign(&note, Arc::clone(&proofs)).await.unwrap();
                assert_eq!(cosigned.cosignatures.len(), witnesses);
                latencies.push(t.elapsed());
            }
            let elapsed = started.elapsed();
            latencies.sort();
            println!(
                "{witnesses:>9}  {batch:>5}  {checkpoints:>11}  {:>9.0}  {:>14.2?}  {:.2?}",
                size as f64 / elapsed.as_secs_f64(),
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
            );
        }
    }

    let records: usize = env_or("HERMETIC_BENCH_RECORDS", 2000);
    let concurrency: usize = env_or("HERMETIC_BENCH_CONCURRENCY", 16);
    println!();
    println!("group mode, {concurrency} appenders, {records} records");
    println!("witnesses  rounds  appends/s  wait p50  p99");
    for witnesses in [0usize, 2] {
        let mut pool_witnesses = Vec::new();
        for i in 0..witnesses {
            let dir = tmp.path().join(format!("group{witnesses}-{i}"));
            pool_witnesses.push(start_witness(&dir, &format!("w{i}.bench"), &signer).await);
        }
        let pool = WitnessPool::new(pool_witnesses, witnesses, Duration::from_secs(10)).unwrap();
        let log = Arc::new(Log {
            signer: Signer::from_private_key(&signer.private_key_string()).unwrap(),
            hashes: Arc::new(Hashes(std::sync::RwLock::new(Vec::new()))),
            rounds: Default::default(),
        });
        let batcher = Arc::new(Batcher::new(pool, log.clone()));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..concurrency {
            let (log, batcher) = (Arc::clone(&log), Arc::clone(&batcher));
            let mine = records / concurrency + usize::from(t < records % concurrency);
            tasks.spawn(async move {
                let mut waits = Vec::with_capacity(mine);
                for _ in 0..mine {
                    let size = log.append();
                    let t = Instant::now();
                    batcher.cosigned_through(size).await.unwrap();
                    waits.push(t.elapsed());
                }
                waits
            });
        }
        let mut waits = Vec::with_capacity(records);
        while let Some(joined) = tasks.join_next().await {
            waits.extend(joined.unwrap());
        }
        let elapsed = started.elapsed();
        waits.sort();
        println!(
            "{witnesses:>9}  {:>6}  {:>9.0}  {:>8.2?}  {:.2?}",
            log.rounds.load(std::sync::atomic::Ordering::Relaxed),
            records as f64 / elapsed.as_secs_f64(),
            percentile(&waits, 0.5),
            percentile(&waits, 0.99),
        );
    }
}
