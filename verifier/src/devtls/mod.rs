//! A throw-away CA and server certificate for the verifier's TLS listener,
//! for demos and test deployments. Production deployments use a CA of
//! their own; the enclave image pins whichever CA issued the certificate.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P384_SHA384,
};

#[derive(Debug, thiserror::Error)]
pub enum DevTlsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} exists; refusing to overwrite it")]
    Exists(PathBuf),
}

/// The files written: `ca.pem` (what an enclave pins), `server.pem` and
/// `server.key` (what `serve --tls-cert/--tls-key` take; the key mode 0600).
pub struct DevTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes a fresh CA and a server certificate for `names` (DNS names or IP
/// addresses) into `dir`, refusing to overwrite existing files.
pub fn generate(dir: &Path, names: &[String]) -> Result<DevTls, DevTlsError> {
    let out = DevTls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    for path in [&out.ca, &out.cert, &out.key] {
        if path.exists() {
            return Err(DevTlsError::Exists(path.clone()));
        }
    }
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "hermetic development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "hermetic verifier");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;

    std::fs::create_dir_all(dir).map_err(|source| DevTlsError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    write(&out.ca, ca_cert.pem().as_bytes(), 0o644)?;
    write(&out.cert, cert.pem().as_bytes(), 0o644)?;
    write(&out.key, key.serialize_pem().as_bytes(), 0o600)?;
    Ok(out)
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DevTlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| DevTlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_and_a_server_certificate_it_issued_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let tls = generate(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let ca = std::fs::read(&tls.ca).unwrap();
        let cert = std::fs::read(&tls.cert).unwrap();
        use rustls_pki_types::pem::PemObject;
        let ca_der = rustls_pki_types::CertificateDer::from_pem_slice(&ca).unwrap();
        let cert_der = rustls_pki_types::CertificateDer::from_pem_slice(&cert).unwrap();
        let (_, ca_x509) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
        assert_eq!(leaf.issuer(), ca_x509.subject());
        assert!(leaf.verify_signature(Some(ca_x509.public_key())).is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tls.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            generate(dir.path(), &["x".into()]),
            Err(DevTlsError::Exists(_))
        ));
    }
}
