//! The witness through HTTP on 127.0.0.1: the server, the client and the
//! pool, with logs and proofs built by hermetic-tlog in the test.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hermetic_testkit::log::TestLog;
use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::cosignature::{self, Cosigner, CosignerKey};
use hermetic_tlog::note::Signer;
use hermetic_tlog::witness::{AddCheckpoint, KnownLogs};
use hermetic_witness::client::Exchange;
use hermetic_witness::{
    BatchError, Batcher, CheckpointSource, PoolWitness, ProofSource, StartRefusal, StateDir,
    SubmitError, Witness, WitnessClient, WitnessPool,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ORIGIN: &str = "hermetic.test/log";

/// A witness running on 127.0.0.1 with a fixed clock.
struct Running {
    url: String,
    key: CosignerKey,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn start(dir: &Path, private_key: &str, log_keys: &[&Signer]) -> Running {
        let cosigner = Cosigner::from_private_key(private_key).unwrap();
        let key = cosigner.cosigner_key();
        let logs = KnownLogs::new(log_keys.iter().map(|s| s.verifier_key()));
        let witness = Witness::open(
            cosigner,
            logs,
            StateDir::open(dir).unwrap(),
            Arc::new(|| 1_700_000_000),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            hermetic_witness::serve(listener, Arc::new(witness), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Running {
            url,
            key,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

fn new_cosigner(name: &str) -> String {
    Cosigner::generate(name)
        .unwrap()
        .private_key_string()
        .to_string()
}

fn client() -> WitnessClient {
    WitnessClient::new(Duration::from_secs(10))
}

/// A URL where nothing listens.
async fn down_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A URL that accepts connections and never answers.
async fn hanging_url() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    (url, task)
}

/// One raw HTTP/1.1 exchange: status line, headers and body as text.
async fn raw_post(url: &str, body: &[u8]) -> String {
    let addr = url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /add-checkpoint HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn cosigns_a_consistent_sequence_and_refuses_what_it_must() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let w = Running::start(tmp.path(), &new_cosigner("w1.test"), &[&signer]).await;
    let c = client();
    let mut log = TestLog::new(Arc::clone(&signer), 5, "a");

    // First contact from 0, then each step with the proof from the last.
    let mut held = 0;
    for step in [0u64, 1, 3, 8, 0] {
        log.append(step, "a");
        let s = c
            .submit(
                &w.url,
                &w.key,
                &log.checkpoint(),
                held,
                log.proofs().as_ref(),
            )
            .await
            .unwrap();
        assert_eq!(s.size, log.size);
        assert_eq!(s.cosignature.timestamp, 1_700_000_000);
        let checked = cosignature::verify(s.note.as_bytes(), std::slice::from_ref(&w.key)).unwrap();
        assert_eq!(checked.len(), 1);
        held = log.size;
    }

    // An inconsistent checkpoint: another history from the held size.
    let fork = TestLog::new(Arc::clone(&signer), held + 4, "b");
    let err = c
        .add_checkpoint(&w.url, &fork.request(held))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SubmitError::Refused { status: 422, .. }),
        "{err}"
    );

    // The right origin signed by a key the witness does not know.
    let impostor = Arc::new(Signer::generate(ORIGIN).unwrap());
    let mut forged = TestLog::new(impostor, held, "a");
    forged.append(1, "a");
    let err = c
        .add_checkpoint(&w.url, &forged.request(held))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SubmitError::Refused { status: 403, .. }),
        "{err}"
    );

    // An origin it does not witness.
    let other = TestLog::new(
        Arc::new(Signer::generate("other.test/log").unwrap()),
        2,
        "a",
    );
    let mut req = other.request(0);
    req.note = other.checkpoint().replace(ORIGIN, "other.test/log");
    let body = raw_post(&w.url, req.to_body().as_bytes()).await;
    assert!(body.starts_with("HTTP/1.1 404"), "{body}");

    // Malformed: 400 with the reason.
    let body = raw_post(&w.url, b"old 01\n\nx\n").await;
    assert!(body.starts_with("HTTP/1.1 400"), "{body}");
    assert!(body.contains("old size"), "{body}");

    // Behind and ahead: 409, text/x.tlog.size, its size.
    for old in [held - 1, held + 1] {
        let mut ahead = log.clone();
        ahead.append(3, "a");
        let body = raw_post(&w.url, ahead.request(old).to_body().as_bytes()).await;
        assert!(body.starts_with("HTTP/1.1 409"), "{body}");
        assert!(
            body.to_ascii_lowercase()
                .contains("content-type: text/x.tlog.size"),
            "{body}"
        );
        assert!(body.ends_with(&format!("\r\n\r\n{held}\n")), "{body:?}");
    }
    w.stop().await;
}

#[tokio::test]
async fn a_fork_and_a_replay_do_not_move_the_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let w = Running::start(tmp.path(), &new_cosigner("w1.test"), &[&signer]).await;
    let c = client();
    let old = TestLog::new(Arc::clone(&signer), 4, "a");
    let log = TestLog::new(Arc::clone(&signer), 9, "a");
    c.submit(&w.url, &w.key, &log.checkpoint(), 0, log.proofs().as_ref())
        .await
        .unwrap();

    // The log operator signs another tree of the same size.
    let fork = TestLog::new(Arc::clone(&signer), 9, "evil");
    let err = c
        .submit(
            &w.url,
            &w.key,
            &fork.checkpoint(),
            9,
            fork.proofs().as_ref(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, SubmitError::Fork { size: 9 });
    // The log-signed fork is kept as evidence.
    let evidence: Vec<_> = std::fs::read_dir(tmp.path().join("evidence"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(evidence.len(), 1);
    let kept = AddCheckpoint::parse(evidence[0].as_bytes()).unwrap();
    assert_eq!(kept.note, fork.checkpoint());

    // Replaying the old checkpoint, with whatever old size.
    let err = c
        .submit(&w.url, &w.key, &old.checkpoint(), 0, old.proofs().as_ref())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SubmitError::Ahead {
            witness_size: 9,
            size: 4
        }
    );
    let err = c
        .add_checkpoint(
            &w.url,
            &AddCheckpoint {
                old_size: 9,
                ..old.request(0)
            },
        )
        .await;
    assert!(
        matches!(err, Err(SubmitError::Refused { status: 400, .. })),
        "{err:?}"
    );

    // Replays and requests not signed by the log are no evidence.
    let impostor = TestLog::new(Arc::new(Signer::generate(ORIGIN).unwrap()), 12, "a");
    let _ = c.add_checkpoint(&w.url, &impostor.request(9)).await;
    assert_eq!(
        std::fs::read_dir(tmp.path().join("evidence"))
            .unwrap()
            .count(),
        1
    );
    // Still at 9 with the first root: the same checkpoint is cosigned again.
    assert_eq!(
        c.add_checkpoint(&w.url, &log.request(9)).await.unwrap(),
        match c.add_checkpoint(&w.url, &log.request(9)).await.unwrap() {
            e @ Exchange::Cosigned(_) => e,
            other => panic!("{other:?}"),
        }
    );
    w.stop().await;
}

#[tokio::test]
async fn an_anonymous_client_cannot_move_or_stall_it_with_junk() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let w = Running::start(tmp.path(), &new_cosigner("w1.test"), &[&signer]).await;
    let log = TestLog::new(Arc::clone(&signer), 3, "a");
    // A body over the limit: refused before it is read whole.
    let mut big = log.request(0).to_body().into_bytes();
    big.extend(std::iter::repeat_n(b'x', 70 * 1024));
    let answer = raw_post(&w.url, &big).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A connection that sends half a request and hangs up.
    let addr = w.url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nold 0\n",
    )
    .await
    .unwrap();
    drop(conn);
    // The witness still holds nothing and cosigns the log.
    let c = client();
    let s = c
        .submit(&w.url, &w.key, &log.checkpoint(), 0, log.proofs().as_ref())
        .await
        .unwrap();
    assert_eq!(s.size, 3);
    w.stop().await;
}

#[tokio::test]
async fn no_cosignature_leaves_without_its_state_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let w = Running::start(&state, &new_cosigner("w1.test"), &[&signer]).await;
    let c = client();
    let log = TestLog::new(Arc::clone(&signer), 3, "a");
    // The state directory vanishes: the write fails, and so does the request.
    std::fs::remove_dir_all(&state).unwrap();
    let err = c
        .submit(&w.url, &w.key, &log.checkpoint(), 0, log.proofs().as_ref())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SubmitError::Refused { status: 500, .. }),
        "{err}"
    );
    // It did not advance in memory either: once it can write, it cosigns
    // from size 0 again, and the file holds that checkpoint.
    std::fs::create_dir(&state).unwrap();
    let s = c
        .submit(&w.url, &w.key, &log.checkpoint(), 0, log.proofs().as_ref())
        .await
        .unwrap();
    assert_eq!(s.size, 3);
    let files: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let stored = std::fs::read_to_string(&files[0]).unwrap();
    assert!(stored.starts_with(&log.checkpoint()[..log.checkpoint().find("\n\n").unwrap()]));
    assert_eq!(
        cosignature::verify(stored.as_bytes(), std::slice::from_ref(&w.key))
            .unwrap()
            .len(),
        1
    );
    w.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let key = new_cosigner("w1.test");
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let c = client();
    let log = TestLog::new(Arc::clone(&signer), 12, "a");
    let w = Running::start(tmp.path(), &key, &[&signer]).await;
    c.submit(&w.url, &w.key, &log.checkpoint(), 0, log.proofs().as_ref())
        .await
        .unwrap();
    w.stop().await;

    let w = Running::start(tmp.path(), &key, &[&signer]).await;
    let old = TestLog::new(Arc::clone(&signer), 5, "a");
    match c.add_checkpoint(&w.url, &old.request(0)).await.unwrap() {
        Exchange::Conflict(size) => assert_eq!(size, 12),
        other => panic!("a restarted witness forgot its state: {other:?}"),
    }
    w.stop().await;
}

#[tokio::test]
async fn concurrent_submissions_from_one_state_advance_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let w = Running::start(tmp.path(), &new_cosigner("w1.test"), &[&signer]).await;
    let c = client();
    let mut log = TestLog::new(Arc::clone(&signer), 5, "a");
    c.submit(&w.url, &w.key, &log.checkpoint(), 0, log.proofs().as_ref())
        .await
        .unwrap();
    // Eight checkpoints of growing size, each with a valid proof from 5.
    let mut requests = Vec::new();
    for _ in 0..8 {
        log.append(1, "a");
        requests.push(log.request(5));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for req in requests {
        let (c, url) = (c.clone(), w.url.clone());
        tasks.spawn(async move { (req.checkpoint.size, c.add_checkpoint(&url, &req).await) });
    }
    let mut cosigned = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (size, Ok(Exchange::Cosigned(_))) => cosigned.push(size),
            (_, Ok(Exchange::Conflict(_))) => {}
            (_, other) => panic!("{other:?}"),
        }
    }
    assert_eq!(
        cosigned.len(),
        1,
        "cosigned {cosigned:?} from one old state"
    );
    match c.add_checkpoint(&w.url, &log.request(0)).await.unwrap() {
        Exchange::Conflict(size) => assert_eq!(size, cosigned[0]),
        other => panic!("{other:?}"),
    }
    w.stop().await;
}

async fn three_witnesses(root: &Path, signer: &Signer) -> (Vec<Running>, Vec<PoolWitness>) {
    let mut running = Vec::new();
    let mut pool = Vec::new();
    for i in 1..=3 {
        let w = Running::start(
            &root.join(format!("w{i}")),
            &new_cosigner(&format!("w{i}.test")),
            &[signer],
        )
        .await;
        pool.push(PoolWitness {
            url: w.url.clone(),
            key: w.key.clone(),
        });
        running.push(w);
    }
    (running, pool)
}

#[tokio::test]
async fn two_of_three_go_on_with_one_down_and_fail_clearly_with_two() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let (mut running, mut witnesses) = three_witnesses(tmp.path(), &signer).await;
    let mut log = TestLog::new(Arc::clone(&signer), 3, "a");

    let pool = WitnessPool::new(witnesses.clone(), 2, Duration::from_secs(5)).unwrap();
    let first = pool.cosign(&log.checkpoint(), log.proofs()).await.unwrap();
    assert!(first.cosignatures.len() >= 2);
    // The cosigned note submitted again: fresh lines replace the old ones.
    let again = pool.cosign(&first.note, log.proofs()).await.unwrap();
    let names: Vec<&str> = again
        .note
        .lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{}", again.note);
    assert!(
        cosignature::verify(again.note.as_bytes(), &pool.keys())
            .unwrap()
            .len()
            >= 2
    );

    // w3 goes down: the next checkpoints still get two cosignatures, each
    // verified with the pinned keys.
    running.pop().unwrap().stop().await;
    for _ in 0..3 {
        log.append(2, "a");
        let cosigned = pool.cosign(&log.checkpoint(), log.proofs()).await.unwrap();
        let verified = cosignature::verify(cosigned.note.as_bytes(), &pool.keys()).unwrap();
        assert_eq!(verified.len(), 2, "{}", cosigned.note);
        assert!(verified.iter().all(|c| c.key != witnesses[2].key));
    }

    // w2 down too: one cosignature, and an error naming both failures.
    running.pop().unwrap().stop().await;
    log.append(1, "a");
    let err = pool
        .cosign(&log.checkpoint(), log.proofs())
        .await
        .unwrap_err();
    assert_eq!((err.needed, err.got), (2, 1));
    let names: Vec<&str> = err.failures.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.contains(&"w2.test") && names.contains(&"w3.test"),
        "{err}"
    );
    assert!(
        err.failures
            .iter()
            .all(|f| matches!(f.error, SubmitError::Transport { .. })),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("1 of the 2 witness cosignatures needed: "),
        "{msg}"
    );

    // A witness answering with another key than the pinned one does not count.
    let w4 = Running::start(&tmp.path().join("w4"), &new_cosigner("w4.test"), &[&signer]).await;
    witnesses[1] = PoolWitness {
        url: w4.url.clone(),
        key: Cosigner::generate("w4.test").unwrap().cosigner_key(),
    };
    witnesses[2].url = down_url().await;
    let pool = WitnessPool::new(witnesses, 2, Duration::from_secs(5)).unwrap();
    log.append(1, "a");
    let err = pool
        .cosign(&log.checkpoint(), log.proofs())
        .await
        .unwrap_err();
    assert_eq!(err.got, 1, "{err}");
    assert!(
        err.failures
            .iter()
            .any(|f| matches!(f.error, SubmitError::Response(_))),
        "{err}"
    );
    running.pop().unwrap().stop().await;
    w4.stop().await;
}

#[tokio::test]
async fn with_two_witnesses_silent_the_pool_waits_then_fails_with_a_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let (mut running, mut witnesses) = three_witnesses(tmp.path(), &signer).await;
    let (hang1, t1) = hanging_url().await;
    let (hang2, t2) = hanging_url().await;
    witnesses[1].url = hang1;
    witnesses[2].url = hang2;
    let pool = WitnessPool::new(witnesses, 2, Duration::from_millis(300)).unwrap();
    let log = TestLog::new(Arc::clone(&signer), 3, "a");
    let err = pool
        .cosign(&log.checkpoint(), log.proofs())
        .await
        .unwrap_err();
    assert_eq!(err.got, 1);
    assert_eq!(err.failures.len(), 2, "{err}");
    assert!(
        err.failures
            .iter()
            .all(|f| matches!(f.error, SubmitError::Timeout(_))),
        "{err}"
    );
    t1.abort();
    t2.abort();
    while let Some(w) = running.pop() {
        w.stop().await;
    }
}

#[tokio::test]
async fn a_restored_old_log_is_a_rollback_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let (mut running, witnesses) = three_witnesses(tmp.path(), &signer).await;
    let old = TestLog::new(Arc::clone(&signer), 6, "a");
    let log = TestLog::new(Arc::clone(&signer), 10, "a");
    let pool = WitnessPool::new(witnesses.clone(), 2, Duration::from_secs(5)).unwrap();
    // Witnesses that never saw the log hold 0: no rollback.
    let fresh = pool.check_start(&old.checkpoint()).await.unwrap();
    assert_eq!(
        fresh.sizes.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [0, 0, 0]
    );
    pool.cosign(&log.checkpoint(), log.proofs()).await.unwrap();
    // Let the third catch up too (the pool returned after two).
    let pool = WitnessPool::new(witnesses.clone(), 3, Duration::from_secs(5)).unwrap();
    pool.cosign(&log.checkpoint(), log.proofs()).await.unwrap();

    // A new pool (a restarted verifier) with the data directory of size 6.
    let pool = WitnessPool::new(witnesses.clone(), 2, Duration::from_secs(5)).unwrap();
    let err = pool.check_start(&old.checkpoint()).await.unwrap_err();
    match &err {
        StartRefusal::Rollback(r) => {
            assert_eq!((r.local_size, r.witness_size), (6, 10));
        }
        other => panic!("{other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(" 6 ") && msg.contains(" 10"), "{msg}");

    // Another tree of size 10 (a different data directory): a fork.
    let other = TestLog::new(Arc::clone(&signer), 10, "other");
    assert!(matches!(
        pool.check_start(&other.checkpoint()).await,
        Err(StartRefusal::Fork { size: 10, .. })
    ));

    // The true log: fine, and with one witness down it is listed.
    running.pop().unwrap().stop().await;
    let ok = pool.check_start(&log.checkpoint()).await.unwrap();
    assert_eq!(ok.sizes.len(), 2);
    assert_eq!(ok.not_answered.len(), 1);
    assert_eq!(ok.not_answered[0].name, "w3.test");
    while let Some(w) = running.pop() {
        w.stop().await;
    }
}

#[test]
fn pool_configuration_is_checked() {
    let key = Cosigner::generate("w.test").unwrap().cosigner_key();
    let w: PoolWitness = format!("http://127.0.0.1:1/prefix?a=b={key}")
        .parse()
        .unwrap();
    assert_eq!(w.url, "http://127.0.0.1:1/prefix?a=b");
    assert_eq!(w.key, key);
    assert!("http://127.0.0.1:1".parse::<PoolWitness>().is_err());
    assert!(format!("ftp://x={key}").parse::<PoolWitness>().is_err());
    let one = vec![w.clone()];
    assert!(WitnessPool::new(one.clone(), 2, Duration::from_secs(1)).is_err());
    assert!(WitnessPool::new(vec![w.clone(), w], 1, Duration::from_secs(1)).is_err());
    assert!(WitnessPool::new(one, 1, Duration::from_secs(1)).is_ok());
}

/// A log shared by concurrent appenders, counting the checkpoints signed.
struct SharedLog {
    log: std::sync::Mutex<TestLog>,
    signed: std::sync::atomic::AtomicUsize,
}

impl SharedLog {
    fn append(&self) -> u64 {
        let mut log = self.log.lock().unwrap();
        log.append(1, "r");
        log.size
    }
}

impl CheckpointSource for SharedLog {
    fn checkpoint(&self) -> Result<(String, u64), String> {
        self.signed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self.log.lock().unwrap();
        Ok((log.checkpoint(), log.size))
    }
    fn proofs(&self) -> Arc<dyn ProofSource> {
        self.log.lock().unwrap().proofs()
    }
}

#[tokio::test]
async fn concurrent_records_share_cosigning_rounds() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let (mut running, witnesses) = three_witnesses(tmp.path(), &signer).await;
    let shared = Arc::new(SharedLog {
        log: std::sync::Mutex::new(TestLog::new(Arc::clone(&signer), 0, "r")),
        signed: Default::default(),
    });
    let pool = WitnessPool::new(witnesses, 2, Duration::from_secs(5)).unwrap();
    let keys = pool.keys();
    let batcher = Arc::new(Batcher::new(pool, shared.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (b, shared) = (Arc::clone(&batcher), Arc::clone(&shared));
        tasks.spawn(async move {
            let size = shared.append();
            (size, b.cosigned_through(size).await)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (size, cosigned) = joined.unwrap();
        let cosigned = cosigned.unwrap();
        let parsed = hermetic_tlog::note::parse(cosigned.note.as_bytes()).unwrap();
        let checkpoint = Checkpoint::parse(&parsed.text).unwrap();
        assert!(
            checkpoint.size >= size,
            "record {size} not in {}",
            checkpoint.size
        );
        assert!(
            cosignature::verify(cosigned.note.as_bytes(), &keys)
                .unwrap()
                .len()
                >= 2
        );
    }
    let rounds = shared.signed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(rounds <= 10, "{rounds} rounds for 40 records");
    // Beyond the log: refused, and it does not poison the others.
    assert_eq!(
        batcher.cosigned_through(41).await.unwrap_err(),
        BatchError::NotInLog {
            wanted: 41,
            log: 40
        }
    );
    assert!(batcher.cosigned_through(40).await.is_ok());
    while let Some(w) = running.pop() {
        w.stop().await;
    }
}

#[tokio::test]
async fn with_two_of_three_silent_waiters_fail_together_and_nothing_is_cosigned() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let (mut running, mut witnesses) = three_witnesses(tmp.path(), &signer).await;
    let (hang1, t1) = hanging_url().await;
    let (hang2, t2) = hanging_url().await;
    witnesses[1].url = hang1;
    witnesses[2].url = hang2;
    let shared = Arc::new(SharedLog {
        log: std::sync::Mutex::new(TestLog::new(Arc::clone(&signer), 10, "r")),
        signed: Default::default(),
    });
    let pool = WitnessPool::new(witnesses, 2, Duration::from_millis(500)).unwrap();
    let batcher = Arc::new(Batcher::new(pool, shared.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for size in 1..=10 {
        let b = Arc::clone(&batcher);
        tasks.spawn(async move { b.cosigned_through(size).await });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Err(BatchError::Quorum(e)) => {
                assert_eq!((e.got, e.needed), (1, 2));
                assert!(e.to_string().contains("no answer within"), "{e}");
            }
            other => panic!("a record was answered without K cosignatures: {other:?}"),
        }
    }
    assert!(batcher.latest().is_none());
    let rounds = shared.signed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        rounds <= 2,
        "{rounds} rounds: waiters did not share the failure"
    );
    t1.abort();
    t2.abort();
    while let Some(w) = running.pop() {
        w.stop().await;
    }
}
