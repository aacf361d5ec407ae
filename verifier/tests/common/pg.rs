//! A private PostgreSQL cluster for one test (stopped, restarted, or given
//! TLS), made by `scripts/test-postgres.sh` in a temporary directory; and
//! the rule every PostgreSQL test follows: skip without
//! `HERMETIC_TEST_POSTGRES`, except under `CI=true` (fail).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared test server's URL, or `None` (with a message) to skip.
pub fn test_postgres() -> Option<String> {
    match std::env::var("HERMETIC_TEST_POSTGRES") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("HERMETIC_TEST_POSTGRES is not set under CI=true (.ci/run sets it)")
        }
        Err(_) => {
            eprintln!("skipping: HERMETIC_TEST_POSTGRES not set");
            None
        }
    }
}

/// A private PostgreSQL cluster for one test (it stops and starts it), made
/// by `scripts/test-postgres.sh` in a temporary directory.
pub struct PrivateCluster {
    pub dir: PathBuf,
    pub url: String,
}

impl PrivateCluster {
    /// Starts (or restarts, on the port it had) the cluster in `dir`.
    pub fn start(dir: &Path) -> PrivateCluster {
        let port = std::fs::read_to_string(dir.join("hermetic-port"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test-postgres.sh");
        let out = Command::new(script)
            .arg(dir)
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::write(dir.join("hermetic-port"), port.to_string()).unwrap();
        PrivateCluster {
            dir: dir.to_owned(),
            url: String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        }
    }

    pub fn pg_ctl(&self, action: &str) {
        let as_postgres = is_root();
        let mut cmd = if as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pg_ctl"]);
            c
        } else {
            Command::new("pg_ctl")
        };
        let status = cmd
            .arg("-D")
            .arg(&self.dir)
            .args(["-w", "-m", "immediate", action])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {action}");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", "pg_ctl", "-D"])
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = Command::new("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Whether this process runs as root (PostgreSQL then runs as `postgres`).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

impl PrivateCluster {
    /// A cluster in `parent/pg` (`parent` a temporary directory), its owner
    /// able to reach it when the tests run as root.
    pub fn start_in(parent: &Path) -> PrivateCluster {
        let dir = parent.join("pg");
        if is_root() {
            std::fs::create_dir_all(&dir).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        PrivateCluster::start(&dir)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        std::fs::read_to_string(self.dir.join("hermetic-port"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Turns TLS on with this certificate chain and key (PEM): written as
    /// the data directory's `server.crt` and `server.key` (the defaults of
    /// `ssl_cert_file`/`ssl_key_file`, PostgreSQL manual §19.9), owned by
    /// the server's user, then `ssl = on` and a configuration reload (SSL
    /// settings take effect on reload, §20.1.3). Plaintext stays allowed by
    /// the server (`host ... trust`): refusing it is the client's job.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) {
        use std::os::unix::fs::PermissionsExt;
        let crt = self.dir.join("server.crt");
        let key = self.dir.join("server.key");
        std::fs::write(&crt, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            for f in [&crt, &key] {
                let status = Command::new("chown")
                    .arg("postgres")
                    .arg(f)
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
        let admin = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port()
        );
        let out = std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            let loaded = "SELECT pg_conf_load_time()::text";
            let before: String = c.query_one(loaded, &[]).unwrap().get(0);
            c.batch_execute("ALTER SYSTEM SET ssl = on").unwrap();
            c.batch_execute("SELECT pg_reload_conf()").unwrap();
            // The reload is a signal: wait until a new session was started
            // by a postmaster that reloaded (and so read the new files).
            for _ in 0..100 {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
                let now: String = c.query_one(loaded, &[]).unwrap().get(0);
                let on: String = c.query_one("SHOW ssl", &[]).unwrap().get(0);
                if now != before && on == "on" {
                    return Ok(());
                }
            }
            Err("the configuration was not reloaded")
        })
        .join()
        .unwrap();
        out.unwrap();
    }
}
