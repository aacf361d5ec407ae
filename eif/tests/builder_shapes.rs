//! Images of many shapes: the reader's PCRs must equal the builder's and an
//! independent computation of the recipe.

mod common;

use std::io::Cursor;
use std::path::Path;

use hermetic_eif::format::{EIF_HDR_ARCH_ARM64, HEADER_SIZE};
use hermetic_eif::{read_eif_from, Arch, EifBuilder, Input, ReadOptions, SectionType, Signer};

fn test_signer() -> (Signer, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["eif-test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_pem = cert.pem().into_bytes();
    let signer = Signer::from_pem(key.serialize_pem().as_bytes(), &cert_pem).unwrap();
    (signer, cert.der().to_vec())
}

struct Shape {
    kernel: Vec<u8>,
    cmdline: Vec<u8>,
    ramdisks: Vec<Vec<u8>>,
    signed: bool,
    arch: Arch,
    metadata: bool,
}

fn run(shape: &Shape) {
    let mut b =
        EifBuilder::new(Input::Bytes(shape.kernel.clone()), shape.cmdline.clone()).arch(shape.arch);
    for r in &shape.ramdisks {
        b = b.ramdisk(Input::Bytes(r.clone()));
    }
    if !shape.metadata {
        b = b.metadata(None);
    }
    let mut cert_der = None;
    if shape.signed {
        let (s, der) = test_signer();
        cert_der = Some(der);
        b = b.signer(s);
    }
    let (bytes, out) = b.to_vec().unwrap();
    assert_eq!(bytes.len() as u64, out.len);
    let img = read_eif_from(
        Cursor::new(&bytes),
        Path::new("mem.eif"),
        ReadOptions::default(),
    )
    .unwrap();

    // Reader == builder.
    assert_eq!(img.measurements, out.measurements);
    assert!(img.crc_ok());
    assert_eq!(img.header.eif_crc32, out.crc);

    // Reader == recipe computed here, independently.
    let mut all: Vec<&[u8]> = vec![&shape.kernel, &shape.cmdline];
    all.extend(shape.ramdisks.iter().map(|r| r.as_slice()));
    let m = img.measurements.to_json();
    assert_eq!(m.pcr0, common::recipe(&all));
    let boot_len = 2 + shape.ramdisks.len().min(1);
    assert_eq!(m.pcr1, common::recipe(&all[..boot_len]));
    assert_eq!(m.pcr2, common::recipe(&all[boot_len..]));
    match cert_der {
        Some(der) => {
            assert_eq!(m.pcr8.unwrap(), common::recipe(&[&der]));
            assert_eq!(img.signature_check, Some(Ok(())));
        }
        None => {
            assert!(m.pcr8.is_none());
            assert!(img.signature.is_none());
        }
    }

    // Header facts.
    assert_eq!(img.arch(), shape.arch);
    assert_eq!(
        img.header.flags & EIF_HDR_ARCH_ARM64 != 0,
        shape.arch == Arch::Aarch64
    );
    assert_eq!(img.ramdisk_count(), shape.ramdisks.len());
    assert_eq!(img.cmdline, shape.cmdline);
    assert_eq!(img.sections[0].offset, HEADER_SIZE as u64);
    let kinds: Vec<SectionType> = img.sections.iter().map(|s| s.kind).collect();
    let mut want = vec![SectionType::Kernel, SectionType::Cmdline];
    if shape.metadata {
        want.push(SectionType::Metadata);
    }
    want.extend(std::iter::repeat_n(
        SectionType::Ramdisk,
        shape.ramdisks.len(),
    ));
    if shape.signed {
        want.push(SectionType::Signature);
    }
    assert_eq!(kinds, want);
}

#[test]
fn one_to_four_ramdisks_signed_and_unsigned_both_arches() {
    let mut seed = 1;
    for n in 1..=4usize {
        for signed in [false, true] {
            for arch in [Arch::X86_64, Arch::Aarch64] {
                seed += 1;
                run(&Shape {
                    kernel: common::bytes(seed, 3000 + n * 17),
                    cmdline: b"console=ttyS0 quiet".to_vec(),
                    ramdisks: (0..n)
                        .map(|i| common::bytes(seed * 10 + i as u64, 500 * (i + 1)))
                        .collect(),
                    signed,
                    arch,
                    metadata: seed % 3 != 0,
                });
            }
        }
    }
}

#[test]
fn empty_sections() {
    for signed in [false, true] {
        run(&Shape {
            kernel: Vec::new(),
            cmdline: Vec::new(),
            ramdisks: vec![Vec::new(), Vec::new()],
            signed,
            arch: Arch::X86_64,
            metadata: false,
        });
        run(&Shape {
            kernel: common::bytes(7, 100),
            cmdline: Vec::new(),
            ramdisks: vec![common::bytes(8, 10), Vec::new(), common::bytes(9, 33)],
            signed,
            arch: Arch::Aarch64,
            metadata: true,
        });
    }
}

#[test]
fn large_image_uses_parallel_path_and_agrees() {
    // Over the 8 MiB threshold, with section boundaries inside 1 MiB chunks.
    run(&Shape {
        kernel: common::bytes(11, 3 * 1024 * 1024 + 123),
        cmdline: b"a=b".to_vec(),
        ramdisks: vec![
            common::bytes(12, 2 * 1024 * 1024 + 7),
            common::bytes(13, 5 * 1024 * 1024 + 999),
            common::bytes(14, 1),
        ],
        signed: true,
        arch: Arch::X86_64,
        metadata: true,
    });
}

#[test]
fn zero_ramdisks_is_readable() {
    run(&Shape {
        kernel: common::bytes(21, 64),
        cmdline: b"x".to_vec(),
        ramdisks: vec![],
        signed: false,
        arch: Arch::X86_64,
        metadata: true,
    });
}

#[test]
fn builder_rejects_bad_inputs() {
    let err = EifBuilder::new(Input::Bytes(vec![1]), b"a\0b".to_vec())
        .to_vec()
        .unwrap_err();
    assert!(
        matches!(err, hermetic_eif::EifError::BuildInput(_)),
        "{err:?}"
    );
    let err = EifBuilder::new(Input::Bytes(vec![1]), b"a".to_vec())
        .metadata(Some(b"not json".to_vec()))
        .to_vec()
        .unwrap_err();
    assert!(
        matches!(err, hermetic_eif::EifError::BuildInput(_)),
        "{err:?}"
    );
    let mut b = EifBuilder::new(Input::Bytes(vec![1]), b"a".to_vec());
    for _ in 0..31 {
        b = b.ramdisk(Input::Bytes(vec![2]));
    }
    assert!(matches!(
        b.to_vec().unwrap_err(),
        hermetic_eif::EifError::BuildInput(_)
    ));
    let err = EifBuilder::new(Input::File("/nonexistent/kernel".into()), b"a".to_vec())
        .to_vec()
        .unwrap_err();
    assert!(matches!(err, hermetic_eif::EifError::Io { .. }), "{err:?}");
}

#[test]
fn signer_rejects_mismatched_key_and_certificate() {
    let k1 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let k2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&k1)
        .unwrap();
    let err = Signer::from_pem(k2.serialize_pem().as_bytes(), cert.pem().as_bytes())
        .err()
        .unwrap();
    assert!(
        matches!(err, hermetic_eif::EifError::BadKeyOrCertificate(_)),
        "{err:?}"
    );
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let err = Signer::from_pem(p256.serialize_pem().as_bytes(), cert.pem().as_bytes())
        .err()
        .unwrap();
    assert!(
        matches!(err, hermetic_eif::EifError::BadKeyOrCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn vector_sec1_key_signs_with_reference_pcr8() {
    let Some(dir) = common::vectors() else { return };
    let i = dir.join("inputs");
    let signer = Signer::from_pem(
        &std::fs::read(i.join("sign_key.pem")).unwrap(),
        &std::fs::read(i.join("sign_cert.pem")).unwrap(),
    )
    .unwrap();
    let refj = common::reference(&dir, "two_ramdisks_signed");
    let (bytes, out) = EifBuilder::new(
        Input::File(i.join("kernel.bin")),
        std::fs::read(i.join("cmdline.txt")).unwrap(),
    )
    .ramdisk(Input::File(i.join("ramdisk0.cpio.gz")))
    .ramdisk(Input::File(i.join("ramdisk1.cpio.gz")))
    .signer(signer)
    .to_vec()
    .unwrap();
    let m = out.measurements.to_json();
    for k in ["PCR0", "PCR1", "PCR2", "PCR8"] {
        let got = match k {
            "PCR0" => m.pcr0.clone(),
            "PCR1" => m.pcr1.clone(),
            "PCR2" => m.pcr2.clone(),
            _ => m.pcr8.clone().unwrap(),
        };
        assert_eq!(got, refj["measurements"][k].as_str().unwrap(), "{k}");
    }
    let img = read_eif_from(Cursor::new(&bytes), Path::new("m"), ReadOptions::default()).unwrap();
    assert_eq!(img.measurements, out.measurements);
}
