//! Custody helpers shared by the genesis/unseal and forwarding tests: a
//! verifier image's describe JSON, custodians made and unsealing through
//! the real binary, waiting for the sealed listeners to give way.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hermetic_verifier::client::HttpClient;

use super::Server;

pub const PCR1: &str = "52c54c1ca2c2a4d46e2a0ac8c3f22d8897db2e8eadfc74789a295b1e783f6aab6b74345f7170e1379578cd08ae6121b5";
pub const PCR2: &str = "786c40a9643791cb5395c93a4b83ef80b89b29bdf67df421e938fbae5f3bcbf1ca7962c63ec7bfd22412512745c215bd";

/// `hermetic-eif describe` JSON of an image whose PCR0 is `pcr0_byte`
/// repeated (PCR1 and PCR2 fixed).
pub fn describe(pcr0_byte: &str) -> String {
    let pcr0 = pcr0_byte.repeat(48);
    format!(
        r#"{{"Measurements": {{"HashAlgorithm": "Sha384 {{ ... }}", "PCR0": "{pcr0}", "PCR1": "{PCR1}", "PCR2": "{PCR2}"}}}}"#
    )
}

/// The verifier binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
}

/// `custodian keygen --out path`; the printed public key.
pub fn keygen(path: &Path) -> String {
    let out = bin()
        .args(["custodian", "keygen", "--out"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `n` custodians' keys made in `dir` (`c1.key`...): their paths and
/// their public keys.
pub fn custodians(dir: &Path, n: usize) -> (Vec<PathBuf>, Vec<String>) {
    let keys: Vec<PathBuf> = (1..=n).map(|i| dir.join(format!("c{i}.key"))).collect();
    let pubs = keys.iter().map(|k| keygen(k)).collect();
    (keys, pubs)
}

/// `args` with `--custodian P` for each of `pubs` and
/// `--custodian-threshold k`: a genesis run.
pub fn with_custodians(args: &[OsString], pubs: &[String], k: usize) -> Vec<OsString> {
    let mut out = args.to_vec();
    for p in pubs {
        out.extend(["--custodian".into(), p.into()]);
    }
    out.extend(["--custodian-threshold".into(), k.to_string().into()]);
    out
}

/// `custodian unseal` against `server`'s public listener; exit code and
/// stderr.
pub fn unseal(server: &Server, key: &Path, measurements: &Path, root: &Path) -> (i32, String) {
    let out = bin()
        .args(["custodian", "unseal", "--verifier"])
        .arg(format!("http://{}", server.public))
        .arg("--key")
        .arg(key)
        .arg("--verifier-measurements")
        .arg(measurements)
        .arg("--trust-root")
        .arg(root)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// GET `url`: status and body as text.
pub async fn get(url: String) -> (u16, String) {
    let (s, b) = HttpClient::default()
        .send(hyper::Method::GET, &url, &[], vec![])
        .await
        .unwrap();
    (s.as_u16(), String::from_utf8_lossy(&b).into_owned())
}

/// Waits until `server` answers `/healthz` unsealed: the sealed listeners
/// close and the service binds the same addresses.
pub async fn wait_unsealed(server: &Server) {
    let url = format!("http://{}/healthz", server.public);
    for _ in 0..400 {
        if let Ok((s, body)) = HttpClient::new(Duration::from_secs(2))
            .send(hyper::Method::GET, &url, &[], vec![])
            .await
        {
            if s == 200 && !String::from_utf8_lossy(&body).contains("sealed") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the verifier did not unseal");
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
