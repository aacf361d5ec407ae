//! The store in PostgreSQL (issue 13): many verifier replicas on one
//! database. Real PostgreSQL (`HERMETIC_TEST_POSTGRES`, a URL without a
//! password, e.g. from `scripts/test-postgres.sh`), real binaries. Each
//! test makes its own database and drops it, so they run in parallel.
//! Without the variable they skip with a message, except under `CI=true`.

mod common;

use std::process::Command;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use hermetic_approval::{OwnerSet, Signer};
use hermetic_envelope::Zeroizing;
use hermetic_verifier::store::postgres::PgBackend;
use hermetic_verifier::store::{MasterKey, Store, StoreChange, StoreError};

/// A database of its own for one test, dropped at the end.
struct TestDb {
    base: String,
    name: String,
    url: String,
}

impl TestDb {
    fn new() -> Option<TestDb> {
        let Ok(base) = std::env::var("HERMETIC_TEST_POSTGRES") else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("HERMETIC_TEST_POSTGRES is not set under CI=true (.ci/run sets it)");
            }
            eprintln!("skipping: HERMETIC_TEST_POSTGRES not set");
            return None;
        };
        let mut id = [0u8; 8];
        SystemRandom::new().fill(&mut id).unwrap();
        let name = format!("hermetic_test_{}", hex::encode(id));
        let db = TestDb {
            url: with_database(&base, &name),
            base,
            name,
        };
        let sql = format!("CREATE DATABASE {}", db.name);
        db.admin(&sql);
        Some(db)
    }

    /// Runs `sql` on the base database (off any async runtime).
    fn admin(&self, sql: &str) {
        run_sql(&self.base, sql);
    }

    /// Runs `sql` on this test's database.
    fn sql(&self, sql: &str) {
        run_sql(&self.url, sql);
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let base = self.base.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = postgres::Client::connect(&base, postgres::NoTls) {
                let _ = c.batch_execute(&sql);
            }
        })
        .join();
    }
}

fn run_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(&sql).unwrap();
    })
    .join()
    .unwrap();
}

fn query_bytes(url: &str, sql: &str) -> Vec<Vec<u8>> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query(sql.as_str(), &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, Vec<u8>>(0))
            .collect()
    })
    .join()
    .unwrap()
}

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let path = head[scheme_end..].find('/').map(|i| i + scheme_end);
    let host = path.map_or(head, |i| &head[..i]);
    format!("{host}/{name}{query}")
}

fn owners() -> OwnerSet {
    OwnerSet::new(vec![Signer::generate("alice").unwrap().verifier_key()], 1).unwrap()
}

fn put_value(store: &Store, name: &str, version: u64, value: &[u8]) {
    store
        .apply_change(
            name,
            |_| {
                Ok::<_, StoreError>((
                    version,
                    StoreChange::Value(Zeroizing::new(value.to_vec())),
                    (),
                ))
            },
            |_, _, _| Ok(()),
        )
        .unwrap();
}

fn pg_store(url: &str, key: &MasterKey) -> Result<Store, StoreError> {
    Store::open_backend(Box::new(PgBackend::connect(url, None)?), key, None)
}

#[test]
fn replicas_share_sealed_rows_and_an_edited_row_is_refused() {
    let Some(db) = TestDb::new() else { return };
    let key = MasterKey::from_bytes([7; 32]);
    let first = pg_store(&db.url, &key).unwrap();
    first.create_secret("db-password", &owners()).unwrap();
    put_value(&first, "db-password", 1, b"hunter2-correct-horse");

    // A second replica with the same master key: same deployment, same rows.
    let second = pg_store(&db.url, &key).unwrap();
    assert_eq!(second.deployment(), first.deployment());
    let (version, value) = second.latest_secret("db-password").unwrap().unwrap();
    assert_eq!(
        (version, value.as_slice()),
        (1, &b"hunter2-correct-horse"[..])
    );
    // A change made at one replica is checked against the state the other
    // committed: the same change version cannot pass twice.
    let again = second.apply_change(
        "db-password",
        |state| {
            assert_eq!(state.version, 1);
            Ok::<_, StoreError>((1, StoreChange::Value(Zeroizing::new(b"x".to_vec())), ()))
        },
        |_, _, _| Ok(()),
    );
    assert!(again.is_err());

    // The database holds ciphertext only: no value, no owner key in clear.
    for val in query_bytes(&db.url, "SELECT val FROM hermetic_rows") {
        assert!(!val.windows(7).any(|w| w == b"hunter2"));
        assert!(!val.windows(5).any(|w| w == b"alice"));
    }
    // Whoever holds the database but not the master key opens nothing.
    let wrong = pg_store(&db.url, &MasterKey::from_bytes([8; 32]));
    assert!(matches!(wrong, Err(StoreError::MasterKey(_))), "{wrong:?}");

    // A value row edited by hand is refused, at every replica.
    db.sql("UPDATE hermetic_rows SET val = set_byte(val, 20, get_byte(val, 20) # 1) WHERE tbl = 2");
    for store in [&first, &second] {
        let err = store.latest_secret("db-password").unwrap_err();
        assert_eq!(err.reason(), "row_tampered", "{err}");
    }
    // A head row moved under another name is refused too.
    db.sql("INSERT INTO hermetic_rows (tbl, key, val) SELECT tbl, 'other'::bytea, val FROM hermetic_rows WHERE tbl = 1 AND key = 'db-password'::bytea");
    assert_eq!(
        first.secret_exists("other").unwrap_err().reason(),
        "row_tampered"
    );
}

#[test]
fn a_newer_schema_a_missing_table_and_a_password_in_the_url_are_refused() {
    let Some(db) = TestDb::new() else { return };
    let key = MasterKey::from_bytes([7; 32]);
    let store = pg_store(&db.url, &key).unwrap();

    // The table dropped under a running store: a clear error, no panic.
    db.sql("DROP TABLE hermetic_rows");
    let err = store.secret_exists("a").unwrap_err();
    assert!(err.to_string().contains("lacks a table"), "{err}");
    // And at the next start.
    let err = PgBackend::connect(&db.url, None).unwrap_err();
    assert!(err.to_string().contains("no table hermetic_rows"), "{err}");

    // A schema version this binary does not know: refused at start.
    db.sql("INSERT INTO hermetic_schema_migrations (version, name) VALUES (99, 'from the future')");
    let err = PgBackend::connect(&db.url, None).unwrap_err();
    assert!(err.to_string().contains("schema is version 99"), "{err}");
    // The real binary says so and stops (exit 2), before serving anything.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(common::production_genesis_args(&dir.path().join("data")))
        .args(["--store", &db.url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("schema is version 99"), "{stderr}");
    assert!(!stderr.contains("event=listening"), "{stderr}");

    // A password belongs in a file, never in argv or the environment.
    let with_password = db.url.replacen("://", "://user:hunter2@", 1);
    let err = PgBackend::connect(&with_password, None).unwrap_err();
    assert!(err.to_string().contains("--store-password-file"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// A call that panics inside the pool (a bug in a closure) is refused as an
/// error and gives its connection slot back: more panics than the pool has
/// slots, then an ordinary call still gets a connection.
#[test]
fn a_panicking_call_gives_its_pool_slot_back() {
    use hermetic_verifier::store::backend::Backend;
    let Some(db) = TestDb::new() else { return };
    let backend = PgBackend::connect(&db.url, None).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..40 {
            let r = backend.read(&mut |_| panic!("a bug in a store closure"));
            assert!(r.unwrap_err().to_string().contains("panicked"));
        }
        let ok = backend.read(&mut |rows| {
            rows.count(hermetic_verifier::store::backend::Table::Heads)
                .map(drop)
        });
        tx.send(ok.is_ok()).unwrap();
    });
    // A leaked slot would leave the last call waiting for ever.
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(60)),
        Ok(true)
    );
}

/// Real replicas (simulated enclaves: the test-roots build).
#[cfg(feature = "test-roots")]
mod replicas {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::common::pg::{is_root, PrivateCluster};
    use crate::common::release_at as release;
    use crate::common::{self, create_owned, good_pcrs, policy_toml, spawn, Enclave, Server};
    use hermetic_envelope::wire::{ChallengeResponse, ReleaseRequest};
    use hermetic_verifier::client::{AdminClient, HttpClient};
    use hyper::Method;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }

    /// Two real replicas on one database: what one acknowledges the other
    /// serves (secrets, policies, admin tokens), and a value changed at one is
    /// the value released by the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_serve_one_store() {
        let Some(db) = TestDb::new() else { return };
        let dir = tempfile::tempdir().unwrap();
        let enclave = Enclave::new();
        let root = enclave.write_root(dir.path());
        let args = |store: &str| -> Vec<std::ffi::OsString> {
            vec![
                "--trust-root".into(),
                root.clone().into(),
                "--store".into(),
                store.into(),
            ]
        };
        let first_data = dir.path().join("replica-1");
        let a1 = args(&db.url);
        let a1: Vec<&std::ffi::OsStr> = a1.iter().map(|a| a.as_os_str()).collect();
        let first = spawn(&first_data, &a1);
        let token = std::fs::read_to_string(first_data.join("admin.token")).unwrap();
        let admin = AdminClient::new(&format!("http://{}", first.admin), token.trim());
        let owner = Signer::generate("owner").unwrap();
        let policy = policy_toml("api-key", &good_pcrs(), "");
        create_owned(&admin, &owner, "api-key", Some(policy), b"value one").await;

        // Replica 2 starts from the same custody state (genesis and development
        // custodian copied, so the same master key); the store is the database.
        let second_data = dir.path().join("replica-2");
        copy_dir(&first_data, &second_data);
        for f in [
            "audit.jsonl",
            "audit.hashes",
            "audit.checkpoint",
            "hermetic.redb",
        ] {
            let _ = std::fs::remove_file(second_data.join(f));
        }
        let second = spawn(&second_data, &a1);
        let http = HttpClient::default();
        assert_eq!(
            release(&http, &second, &enclave, "api-key").await,
            (200, Some(b"value one".to_vec()))
        );
        // The admin token made by replica 1 is accepted by replica 2.
        let admin2 = AdminClient::new(&format!("http://{}", second.admin), token.trim());
        let listed = admin2.list_secrets().await.unwrap();
        assert_eq!(listed.len(), 1);
        // A value changed through replica 2 is what replica 1 releases next.
        common::owner_change(
            &admin2,
            common::value_change("api-key", b"value two"),
            &[&owner],
        )
        .await
        .unwrap();
        assert_eq!(
            release(&http, &first, &enclave, "api-key").await,
            (200, Some(b"value two".to_vec()))
        );
        // The embedded file was never created: the store is the database.
        assert!(!first_data.join("hermetic.redb").exists());
        // Behind a load balancer one address (a parent instance) takes its
        // challenges at one replica and releases at the other, many more
        // times than the per-address bound on outstanding challenges (64):
        // the issuing replica learns from the table that they were used.
        for round in 0..80 {
            let nonce = challenge(&http, &first).await;
            let document = enclave.document(&nonce);
            assert_eq!(
                release_with(&http, &second, &document, "api-key").await,
                (200, String::new()),
                "round {round}"
            );
        }
    }

    /// A challenge from `server`: the raw nonce.
    async fn challenge(http: &HttpClient, server: &Server) -> Vec<u8> {
        let (status, body) = http
            .send(
                Method::POST,
                &format!("http://{}/v1/challenge", server.public),
                &[],
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice::<ChallengeResponse>(&body)
            .unwrap()
            .nonce_bytes()
            .unwrap()
    }

    /// A release at `server` answering `nonce`: the status and refusal reason.
    async fn release_with(
        http: &HttpClient,
        server: &Server,
        document: &[u8],
        name: &str,
    ) -> (u16, String) {
        let req = ReleaseRequest::new(document, vec![name.to_owned()]);
        let (status, body) = http
            .send(
                Method::POST,
                &format!("http://{}/v1/release", server.public),
                &[],
                serde_json::to_vec(&req).unwrap(),
            )
            .await
            .unwrap();
        let reason = if status == 200 {
            String::new()
        } else {
            common::reason(&body)
        };
        (status.as_u16(), reason)
    }

    /// Three real replicas on one database: a nonce issued by replica 1 and
    /// consumed at replica 2 is refused at replica 3; one nonce sent to all
    /// three at once is granted exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_replicas_accept_a_nonce_once() {
        let Some(db) = TestDb::new() else { return };
        let dir = tempfile::tempdir().unwrap();
        let enclave = Enclave::new();
        let root = enclave.write_root(dir.path());
        let args: Vec<std::ffi::OsString> = vec![
            "--trust-root".into(),
            root.clone().into(),
            "--store".into(),
            db.url.clone().into(),
        ];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let first_data = dir.path().join("replica-1");
        let first = spawn(&first_data, &args);
        let token = std::fs::read_to_string(first_data.join("admin.token")).unwrap();
        let admin = AdminClient::new(&format!("http://{}", first.admin), token.trim());
        let owner = Signer::generate("owner").unwrap();
        let policy = policy_toml("api-key", &good_pcrs(), "");
        create_owned(&admin, &owner, "api-key", Some(policy), b"value").await;
        let mut replicas = vec![first];
        for i in 2..=3 {
            let data = dir.path().join(format!("replica-{i}"));
            copy_dir(&first_data, &data);
            for f in ["audit.jsonl", "audit.hashes", "audit.checkpoint"] {
                let _ = std::fs::remove_file(data.join(f));
            }
            replicas.push(spawn(&data, &args));
        }
        let http = HttpClient::default();

        // Issued by 1, consumed at 2, refused at 3 (and at 1).
        let nonce = challenge(&http, &replicas[0]).await;
        let document = enclave.document(&nonce);
        assert_eq!(
            release_with(&http, &replicas[1], &document, "api-key").await,
            (200, String::new())
        );
        for r in [&replicas[2], &replicas[0]] {
            assert_eq!(
                release_with(&http, r, &document, "api-key").await,
                (403, "nonce_replayed".to_owned())
            );
        }
        // A nonce no replica issued is unknown everywhere.
        let forged = enclave.document(&[0x5a; 32]);
        assert_eq!(
            release_with(&http, &replicas[2], &forged, "api-key")
                .await
                .1,
            "nonce_unknown"
        );

        // One nonce to all three at once, many rounds: exactly one grant each.
        for round in 0..20 {
            let nonce = challenge(&http, &replicas[round % 3]).await;
            let document = Arc::new(enclave.document(&nonce));
            let mut tasks = Vec::new();
            for r in &replicas {
                let (http, document) = (http.clone(), document.clone());
                let url = format!("http://{}/v1/release", r.public);
                tasks.push(tokio::spawn(async move {
                    let req = ReleaseRequest::new(&document, vec!["api-key".to_owned()]);
                    let (status, _) = http
                        .send(Method::POST, &url, &[], serde_json::to_vec(&req).unwrap())
                        .await
                        .unwrap();
                    status.as_u16()
                }));
            }
            let mut statuses = Vec::new();
            for t in tasks {
                statuses.push(t.await.unwrap());
            }
            statuses.sort();
            assert_eq!(statuses, vec![200, 403, 403], "round {round}");
        }
    }

    /// A release at `server` of `name`; the receipt when granted.
    async fn release_receipt(
        http: &HttpClient,
        server: &Server,
        enclave: &Enclave,
        name: &str,
    ) -> Result<hermetic_envelope::wire::Receipt, (u16, String)> {
        let granted =
            common::release_with(http, server.public, &[name], |n| enclave.document(n)).await?;
        let resp = granted.response;
        Ok(resp.receipt.expect("a grant carries its receipt"))
    }

    /// `hermetic-verifier log verify --url` against `server` (and `--since
    /// FILE`): the exit code and what it printed.
    async fn log_verify(server: &Server, key: &str, since: Option<&Path>) -> (i32, String) {
        let url = format!("http://{}", server.public);
        let (key, since) = (key.to_owned(), since.map(Path::to_owned));
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"));
            cmd.args(["log", "verify", "--url", &url, "--log-key", &key]);
            if let Some(since) = since {
                cmd.arg("--since").arg(since);
            }
            let out = cmd.output().unwrap();
            (
                out.status.code().unwrap_or(-1),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        })
        .await
        .unwrap()
    }

    /// "audit log intact: N records, signed checkpoint of M (root R)" → (N, M, R).
    fn intact(text: &str) -> (u64, u64, String) {
        let line = text
            .lines()
            .find(|l| l.starts_with("audit log intact: "))
            .unwrap_or_else(|| panic!("not intact:\n{text}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        (
            words[3].parse().unwrap(),
            words[8].parse().unwrap(),
            words[10].trim_end_matches(&[')', ','][..]).to_owned(),
        )
    }

    /// The server's stderr once it holds `needle` (its lines are read by
    /// another thread: give it a moment); fails after 10 s.
    async fn logged(server: &Server, needle: &str) -> String {
        for _ in 0..100 {
            let log = server.log.lock().unwrap().join("\n");
            if log.contains(needle) {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let log = server.log.lock().unwrap().join("\n");
        panic!("no {needle:?} in:\n{log}");
    }

    /// The log's rows in the database: (index, leaf), in order.
    fn log_rows(url: &str) -> Vec<(i64, Vec<u8>)> {
        let url = url.to_owned();
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.query(
                "SELECT idx, leaf FROM hermetic_log_leaves ORDER BY idx",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
        })
        .join()
        .unwrap()
    }

    /// The log's public key as replica `data` wrote it.
    fn log_key(data: &Path) -> String {
        std::fs::read_to_string(data.join("log-key.pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Starts `n` replicas on `db_url`: the first makes the genesis and the
    /// secret `api-key` (one owner), the others start from copies of its
    /// custody files (the same master key), with no log of their own.
    async fn replicas(
        dir: &Path,
        enclave: &Enclave,
        db_url: &str,
        n: usize,
    ) -> (Vec<Server>, AdminClient, Arc<Signer>) {
        let root = enclave.write_root(dir);
        let args: Vec<std::ffi::OsString> = vec![
            "--trust-root".into(),
            root.into(),
            "--store".into(),
            db_url.into(),
        ];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let first_data = dir.join("replica-1");
        let first = spawn(&first_data, &args);
        let token = std::fs::read_to_string(first_data.join("admin.token")).unwrap();
        let admin = AdminClient::new(&format!("http://{}", first.admin), token.trim());
        let owner = Arc::new(Signer::generate("owner").unwrap());
        let policy = policy_toml("api-key", &good_pcrs(), "");
        create_owned(&admin, &owner, "api-key", Some(policy), b"value").await;
        let mut out = vec![first];
        for i in 2..=n {
            let data = dir.join(format!("replica-{i}"));
            copy_dir(&first_data, &data);
            out.push(spawn(&data, &args));
        }
        (out, admin, owner)
    }

    /// The serve command line of a replica (for starts that must fail).
    fn serve_output(root: &Path, data: &Path, db_url: &str) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data)
            .arg("--trust-root")
            .arg(root)
            .args(["--store", db_url])
            .output()
            .unwrap()
    }

    /// Three replicas under concurrent releases and owners' changes keep one
    /// log: `log verify --url` against each finds the same tree (same size,
    /// same root, records 0..n with no gap), and every grant's receipt
    /// verifies on its own and is consistent with every replica's later
    /// checkpoint.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_replicas_keep_one_log_with_no_gap() {
        let Some(db) = TestDb::new() else { return };
        let dir = tempfile::tempdir().unwrap();
        let enclave = Arc::new(Enclave::new());
        let (servers, _admin, owner) = replicas(dir.path(), &enclave, &db.url, 3).await;
        let servers = Arc::new(servers);
        let http = HttpClient::default();
        let mut tasks = Vec::new();
        for r in 0..3 {
            for _ in 0..3 {
                let (http, servers, enclave) = (http.clone(), servers.clone(), enclave.clone());
                tasks.push(tokio::spawn(async move {
                    let mut receipts = Vec::new();
                    for _ in 0..8 {
                        let got = release_receipt(&http, &servers[r], &enclave, "api-key").await;
                        receipts.push(got.unwrap_or_else(|e| panic!("refused at {r}: {e:?}")));
                    }
                    receipts
                }));
            }
        }
        // Owners' changes through replica 2 meanwhile.
        let token =
            std::fs::read_to_string(dir.path().join("replica-1").join("admin.token")).unwrap();
        let admin2 = AdminClient::new(&format!("http://{}", servers[1].admin), token.trim());
        for i in 0..4 {
            let value = format!("value {i}");
            common::owner_change(
                &admin2,
                common::value_change("api-key", value.as_bytes()),
                &[&owner],
            )
            .await
            .unwrap();
        }
        let mut receipts = Vec::new();
        for t in tasks {
            receipts.extend(t.await.unwrap());
        }
        assert_eq!(receipts.len(), 72);

        let key_text = log_key(&dir.path().join("replica-1"));
        let key: hermetic_tlog::note::VerifierKey = key_text.parse().unwrap();
        // The database's leaves: records 0..n, each's seq its index.
        let rows = log_rows(&db.url);
        for (i, (idx, leaf)) in rows.iter().enumerate() {
            assert_eq!(*idx, i as i64);
            let record: serde_json::Value = serde_json::from_slice(leaf).unwrap();
            assert_eq!(record["seq"], i as u64, "record {i}");
        }
        // Every receipt: its proof under its own checkpoint, its leaf the
        // database's leaf at its index.
        let mut largest: Option<(u64, String)> = None;
        let mut indexes = std::collections::BTreeSet::new();
        for r in &receipts {
            let cp =
                hermetic_tlog::checkpoint::open(r.checkpoint.as_bytes(), key.name(), &key).unwrap();
            let proof: Vec<hermetic_tlog::merkle::Hash> =
                r.proof.iter().map(|h| h.parse().unwrap()).collect();
            hermetic_tlog::merkle::check_record(
                &proof,
                cp.size,
                &cp.root_hash,
                r.index,
                &hermetic_tlog::merkle::record_hash(r.leaf.as_bytes()),
            )
            .unwrap();
            assert_eq!(rows[r.index as usize].1, r.leaf.as_bytes());
            assert!(
                indexes.insert(r.index),
                "two grants share record {}",
                r.index
            );
            if largest.as_ref().is_none_or(|(s, _)| cp.size > *s) {
                largest = Some((cp.size, r.checkpoint.clone()));
            }
        }
        let (since_size, since_note) = largest.unwrap();
        let since = dir.path().join("receipt.checkpoint");
        std::fs::write(&since, since_note).unwrap();
        let mut seen = Vec::new();
        for server in servers.iter() {
            let (code, text) = log_verify(server, &key_text, Some(&since)).await;
            assert_eq!(code, 0, "{text}");
            assert!(
                text.contains(&format!(
                    "consistent with the earlier checkpoint of {since_size} records"
                )),
                "{text}"
            );
            seen.push(intact(&text));
        }
        let total = rows.len() as u64;
        for s in &seen {
            assert_eq!((s.0, s.1), (total, total), "{seen:?}");
            assert_eq!(s.2, seen[0].2, "{seen:?}");
        }
    }

    /// The verifier's operator owns the database. Rolling the checkpoint row
    /// back is not followed by a running replica; a leaf row rewritten or
    /// deleted is named by `log verify --url` and refuses the start of a
    /// replica; the tail deleted (the log rolled back) refuses every later
    /// grant. Never a panic.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operator_rewriting_the_log_rows_is_caught() {
        let Some(db) = TestDb::new() else { return };
        let dir = tempfile::tempdir().unwrap();
        let enclave = Enclave::new();
        let (servers, _admin, _owner) = replicas(dir.path(), &enclave, &db.url, 1).await;
        let server = &servers[0];
        let http = HttpClient::default();
        let key = log_key(&dir.path().join("replica-1"));
        release_receipt(&http, server, &enclave, "api-key")
            .await
            .unwrap();
        let old = query_bytes(&db.url, "SELECT note::bytea FROM hermetic_log_checkpoint").remove(0);
        let old_size = log_rows(&db.url).len();
        for _ in 0..3 {
            release_receipt(&http, server, &enclave, "api-key")
                .await
                .unwrap();
        }
        let checkpoint = |server: &Server| {
            let http = http.clone();
            let url = format!("http://{}/checkpoint", server.public);
            async move {
                let (status, body) = http.send(Method::GET, &url, &[], vec![]).await.unwrap();
                assert_eq!(status, 200);
                String::from_utf8(body.to_vec()).unwrap()
            }
        };
        let before = checkpoint(server).await;

        // 1. The checkpoint row rolled back to an older, genuinely signed one.
        db.sql(&format!(
            "UPDATE hermetic_log_checkpoint SET size = {old_size}, note = convert_from('\\x{}'::bytea, 'UTF8')",
            hex::encode(&old)
        ));
        assert_eq!(checkpoint(server).await, before, "the replica went back");
        let log = logged(server, "audit_log_checkpoint_refused").await;
        assert!(log.contains("rolled back"), "{log}");

        // 2. A leaf rewritten by hand (its hash rows left as they were).
        let rows = log_rows(&db.url);
        let (idx, original) = rows[2].clone();
        let edited = String::from_utf8(original.clone())
            .unwrap()
            .replacen("\"verdict\":\"done\"", "\"verdict\":\"undone\"", 1)
            .replacen("\"verdict\":\"granted\"", "\"verdict\":\"refused\"", 1);
        assert_ne!(edited.as_bytes(), original.as_slice());
        db.sql(&format!(
            "UPDATE hermetic_log_leaves SET leaf = '\\x{}'::bytea WHERE idx = {idx}",
            hex::encode(edited.as_bytes())
        ));
        let (code, text) = log_verify(server, &key, None).await;
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("BROKEN") && text.contains(&idx.to_string()),
            "{text}"
        );
        let data = dir.path().join("replica-2");
        copy_dir(&dir.path().join("replica-1"), &data);
        let root = enclave.write_root(dir.path());
        let out = serve_output(&root, &data, &db.url);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("leaf {idx} does not match")),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        db.sql(&format!(
            "UPDATE hermetic_log_leaves SET leaf = '\\x{}'::bytea WHERE idx = {idx}",
            hex::encode(&original)
        ));

        // 3. A leaf row deleted: a gap.
        db.sql("DELETE FROM hermetic_log_leaves WHERE idx = 1");
        // The replica cannot serve the tile holding it (HTTP 500, the
        // auditor's fetch fails: exit 2) and says which leaf is gone.
        let (code, text) = log_verify(server, &key, None).await;
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("HTTP 500"), "{text}");
        logged(server, "leaf 1 is missing from the database").await;
        let out = serve_output(&root, &data, &db.url);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("leaf 1 is missing"), "{stderr}");
        db.sql(&format!(
            "INSERT INTO hermetic_log_leaves (idx, leaf) VALUES (1, '\\x{}'::bytea)",
            hex::encode(&rows[1].1)
        ));
        let (code, text) = log_verify(server, &key, None).await;
        assert_eq!(code, 0, "{text}");

        // 4. The tail deleted (the log rolled back behind what was signed):
        // no grant is answered from then on.
        let keep = rows.len() - 2;
        db.sql(&format!(
            "DELETE FROM hermetic_log_leaves WHERE idx >= {keep}"
        ));
        match release_receipt(&http, server, &enclave, "api-key").await {
            Err((500, reason)) => assert_eq!(reason, "audit_log_unavailable"),
            other => panic!("granted over a rolled-back log: {other:?}"),
        }
        let log = logged(server, "fewer than the").await;
        assert!(!log.contains("panicked"), "{log}");
    }

    /// The genesis record lives in the database: a replica started with an
    /// empty data directory does not make a second genesis but starts sealed
    /// against the database's (same genesis, `/healthz` sealed, nothing
    /// released); given its custodian's share it unseals and serves the
    /// same store and log. A data directory of another deployment is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_replica_starts_sealed_against_the_databases_genesis() {
        let Some(db) = TestDb::new() else { return };
        let dir = tempfile::tempdir().unwrap();
        let enclave = Enclave::new();
        let (servers, _admin, _owner) = replicas(dir.path(), &enclave, &db.url, 1).await;
        let first_data = dir.path().join("replica-1");
        let stored = query_bytes(&db.url, "SELECT record::bytea FROM hermetic_genesis");
        let genesis = std::fs::read_to_string(first_data.join("genesis.json")).unwrap();
        assert_eq!(
            String::from_utf8(stored[0].clone()).unwrap().trim(),
            genesis.trim()
        );

        let root = enclave.write_root(dir.path());
        let args: Vec<std::ffi::OsString> = vec![
            "--trust-root".into(),
            root.clone().into(),
            "--store".into(),
            db.url.clone().into(),
        ];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let data = dir.path().join("empty");
        let mut sealed = spawn(&data, &args);
        let http = HttpClient::default();
        let (status, body) = http
            .send(
                Method::GET,
                &format!("http://{}/healthz", sealed.public),
                &[],
                vec![],
            )
            .await
            .unwrap();
        let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(health["state"], "sealed", "{status} {health}");
        assert_eq!(
            std::fs::read_to_string(data.join("genesis.json"))
                .unwrap()
                .trim(),
            genesis.trim()
        );
        assert!(!data
            .join(hermetic_verifier::service::DEV_CUSTODIAN_FILE)
            .exists());
        let log = sealed.log.lock().unwrap().join("\n");
        assert!(log.contains("genesis_from_database"), "{log}");
        assert_eq!(release(&http, &sealed, &enclave, "api-key").await.0, 503);
        sealed.child.kill().unwrap();
        sealed.child.wait().unwrap();

        // Its custodian's key handed over: it unseals, and serves the store.
        std::fs::copy(
            first_data.join(hermetic_verifier::service::DEV_CUSTODIAN_FILE),
            data.join(hermetic_verifier::service::DEV_CUSTODIAN_FILE),
        )
        .unwrap();
        let unsealed = spawn(&data, &args);
        assert_eq!(
            release(&http, &unsealed, &enclave, "api-key").await,
            (200, Some(b"value".to_vec()))
        );
        let key = log_key(&first_data);
        let a = intact(&log_verify(&servers[0], &key, None).await.1);
        let b = intact(&log_verify(&unsealed, &key, None).await.1);
        assert_eq!(a, b);

        // A data directory with another deployment's genesis is refused.
        let other = tempfile::tempdir().unwrap();
        let other_db = TestDb::new().unwrap();
        let other_first = spawn(&other.path().join("a"), &{
            let mut a = args.clone();
            a.pop();
            a.push(std::ffi::OsStr::new(&other_db.url));
            a
        });
        drop(other_first);
        let out = serve_output(&root, &other.path().join("a"), &db.url);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("belongs to another deployment"), "{stderr}");
    }

    /// PostgreSQL stopped under a running replica: challenges and releases fail
    /// fast with 503 `store_unavailable` (never a grant); once it is back the
    /// replica serves again without a restart of its own, and a grant's
    /// nonce stayed consumed through the crash.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_database_answers_503_and_the_replica_recovers() {
        let Some(_shared) = TestDb::new() else { return };
        let dir = tempfile::tempdir().unwrap();
        let pgdir = dir.path().join("pg");
        if is_root() {
            std::fs::create_dir_all(&pgdir).unwrap();
            // The cluster's owner must reach its directory.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let cluster = PrivateCluster::start(&pgdir);
        let enclave = Enclave::new();
        let root = enclave.write_root(dir.path());
        let args: Vec<std::ffi::OsString> = vec![
            "--trust-root".into(),
            root.clone().into(),
            "--store".into(),
            cluster.url.clone().into(),
        ];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let data = dir.path().join("replica");
        let server = spawn(&data, &args);
        let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
        let admin = AdminClient::new(&format!("http://{}", server.admin), token.trim());
        let owner = Signer::generate("owner").unwrap();
        let policy = policy_toml("api-key", &good_pcrs(), "");
        create_owned(&admin, &owner, "api-key", Some(policy), b"value").await;
        let http = HttpClient::default();
        assert_eq!(release(&http, &server, &enclave, "api-key").await.0, 200);

        // Releases under load through the stop and the restart: every grant
        // answered has its record in the database afterwards.
        let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server = Arc::new(server);
        let enclave = Arc::new(enclave);
        let mut load = Vec::new();
        for _ in 0..4 {
            let (http, server, enclave, stop) = (
                http.clone(),
                server.clone(),
                enclave.clone(),
                stop_load.clone(),
            );
            load.push(tokio::spawn(async move {
                let (mut granted, mut refused) = (Vec::new(), Vec::new());
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match release_receipt(&http, &server, &enclave, "api-key").await {
                        Ok(r) => granted.push(r),
                        Err(e) => {
                            refused.push(e);
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    }
                }
                (granted, refused)
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        // A grant answered just before the crash (`pg_ctl -m immediate`
        // loses what the server had not yet written): its nonce was consumed
        // by an asynchronous commit, flushed with the grant's record (a
        // synchronous commit), so after the restart the same request is
        // refused as a replay.
        let replay_nonce = challenge(&http, &server).await;
        let replay = enclave.document(&replay_nonce);
        assert_eq!(
            release_with(&http, &server, &replay, "api-key").await,
            (200, String::new())
        );
        // A nonce issued before the stop, answered while the database is down.
        let nonce = challenge(&http, &server).await;
        cluster.pg_ctl("stop");
        let started = std::time::Instant::now();
        let (status, reason) =
            release_with(&http, &server, &enclave.document(&nonce), "api-key").await;
        assert_eq!((status, reason.as_str()), (503, "store_unavailable"));
        let (status, body) = http
            .send(
                Method::POST,
                &format!("http://{}/v1/challenge", server.public),
                &[],
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, 503);
        assert_eq!(common::reason(&body), "store_unavailable");
        // Fast: no connection timeout is waited out for a refused connection.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));

        // Started again on its port (stopping it twice at the end is harmless).
        let again = PrivateCluster::start(&pgdir);
        assert_eq!(again.url, cluster.url);
        // The same replica process serves again (its pool reconnects).
        let mut last = (0, None);
        for _ in 0..50 {
            last = release(&http, &server, &enclave, "api-key").await;
            if last.0 == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let log = server.log.lock().unwrap().join("\n");
        assert_eq!(
            last,
            (200, Some(b"value".to_vec())),
            "not recovered:\n{log}"
        );
        assert_eq!(
            release_with(&http, &server, &replay, "api-key").await,
            (403, "nonce_replayed".to_owned())
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stop_load.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut done = Vec::new();
        for t in load {
            done.push(t.await.unwrap());
        }
        let rows = log_rows(&cluster.url);
        let (mut granted, mut refused) = (0, Vec::new());
        for (g, r) in done {
            for receipt in &g {
                assert!(
                    rows.get(receipt.index as usize).map(|r| r.1.as_slice())
                        == Some(receipt.leaf.as_bytes()),
                    "grant {} answered without its record in the database",
                    receipt.index
                );
            }
            granted += g.len();
            refused.extend(r);
        }
        assert!(granted > 0);
        // While it was down: 503 store_unavailable (or a connection the
        // stop cut), never a grant and never another reason.
        for (status, reason) in &refused {
            assert!(
                (*status == 503 && reason == "store_unavailable") || *status == 0,
                "{status} {reason}: {}",
                server
                    .log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|l| l.contains("audit_log"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        assert!(!refused.is_empty());
    }

    /// A replica SIGKILLed while owners' changes go through it and enclaves
    /// are served by another: every acknowledged secret is still there, at the
    /// other replica, which goes on serving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replica_killed_under_load_loses_no_acknowledged_change() {
        let Some(db) = TestDb::new() else { return };
        let dir = tempfile::tempdir().unwrap();
        let enclave = Enclave::new();
        let root = enclave.write_root(dir.path());
        let args: Vec<std::ffi::OsString> = vec![
            "--trust-root".into(),
            root.clone().into(),
            "--store".into(),
            db.url.clone().into(),
        ];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let first_data = dir.path().join("replica-1");
        let mut first = spawn(&first_data, &args);
        let token = std::fs::read_to_string(first_data.join("admin.token")).unwrap();
        let admin = AdminClient::new(&format!("http://{}", first.admin), token.trim());
        let owner = Arc::new(Signer::generate("owner").unwrap());
        let policy = policy_toml("api-key", &good_pcrs(), "");
        create_owned(&admin, &owner, "api-key", Some(policy), b"value").await;
        let second_data = dir.path().join("replica-2");
        copy_dir(&first_data, &second_data);
        for f in ["audit.jsonl", "audit.hashes", "audit.checkpoint"] {
            let _ = std::fs::remove_file(second_data.join(f));
        }
        let second = spawn(&second_data, &args);

        let acked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let mut writers = Vec::new();
        for w in 0..3 {
            let (admin, acked, owner) = (admin.clone(), acked.clone(), owner.clone());
            writers.push(tokio::spawn(async move {
                let key = owner.verifier_key().to_string();
                for i in 0..10_000 {
                    let name = format!("w{w}-s{i}");
                    if admin
                        .create_secret(&name, std::slice::from_ref(&key), 1)
                        .await
                        .is_err()
                    {
                        break; // the replica is gone
                    }
                    let change = common::value_change(&name, name.as_bytes());
                    match common::owner_change(&admin, change, &[&owner]).await {
                        Ok(_) => acked.lock().unwrap().push(name),
                        Err(_) => break,
                    }
                }
            }));
        }
        while acked.lock().unwrap().len() < 30 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        first.child.kill().unwrap(); // SIGKILL
        first.child.wait().unwrap();
        for w in writers {
            w.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();

        let admin2 = AdminClient::new(&format!("http://{}", second.admin), token.trim());
        let listed = admin2.list_secrets().await.unwrap();
        let held: std::collections::BTreeMap<&str, u64> = listed
            .iter()
            .map(|s| (s.name.as_str(), s.latest_version))
            .collect();
        for name in &acked {
            assert_eq!(
                held.get(name.as_str()),
                Some(&1),
                "acknowledged {name} was lost"
            );
        }
        // The other replica goes on: releases and changes.
        let http = HttpClient::default();
        assert_eq!(
            release(&http, &second, &enclave, "api-key").await,
            (200, Some(b"value".to_vec()))
        );
        common::owner_change(
            &admin2,
            common::value_change("api-key", b"after"),
            &[&owner],
        )
        .await
        .unwrap();
        assert_eq!(
            release(&http, &second, &enclave, "api-key").await,
            (200, Some(b"after".to_vec()))
        );
        // A change and its record commit together: every logged change is
        // in the store, and every change the store holds is logged.
        let mut logged = std::collections::BTreeMap::new();
        for (_, leaf) in log_rows(&db.url) {
            let record: serde_json::Value = serde_json::from_slice(&leaf).unwrap();
            let entry = &record["entry"];
            if entry["action"] == "change_applied" {
                let name = entry["secrets"][0]["name"].as_str().unwrap().to_owned();
                logged.insert(name, entry["secrets"][0]["version"].as_u64());
            }
        }
        for (name, version) in &logged {
            if name.starts_with('w') {
                assert_eq!(held.get(name.as_str()), version.as_ref(), "{name}");
            }
        }
        for (name, version) in &held {
            if name.starts_with('w') && *version >= 1 {
                assert!(logged.contains_key(*name), "{name} is held but not logged");
            }
        }
        // Replica 1 restarted on its data directory continues the same tree
        // and finds no change logged but not committed.
        let first = spawn(&first_data, &args);
        let key = log_key(&first_data);
        let a = intact(&log_verify(&first, &key, None).await.1);
        let b = intact(&log_verify(&second, &key, None).await.1);
        assert_eq!(a, b);
        let log = first.log.lock().unwrap().join("\n");
        assert!(!log.contains("change_unconfirmed"), "{log}");
        eprintln!(
            "{} changes acknowledged before SIGKILL, all held and logged; {} records",
            acked.len(),
            a.0
        );
    }
}
