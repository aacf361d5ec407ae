//! Truncated, corrupt and hostile files: each gets its exact error variant.

mod common;

use std::io::Cursor;
use std::path::Path;

use hermetic_eif::format::{CRC_FIELD_OFFSET, HEADER_SIZE, MAX_NUM_SECTIONS};
use hermetic_eif::reader::max_in_memory;
use hermetic_eif::{
    read_eif, read_eif_from, EifBuilder, EifError, Input, ReadOptions, SectionType,
};

/// A small valid image with kernel, cmdline, metadata, 2 ramdisks (unsigned).
fn image() -> Vec<u8> {
    EifBuilder::new(
        Input::Bytes(common::bytes(1, 4000)),
        b"console=ttyS0".to_vec(),
    )
    .ramdisk(Input::Bytes(common::bytes(2, 1500)))
    .ramdisk(Input::Bytes(common::bytes(3, 700)))
    .to_vec()
    .unwrap()
    .0
}

fn signed_image() -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let s = hermetic_eif::Signer::from_pem(key.serialize_pem().as_bytes(), cert.pem().as_bytes())
        .unwrap();
    EifBuilder::new(
        Input::Bytes(common::bytes(4, 3000)),
        b"console=ttyS0".to_vec(),
    )
    .ramdisk(Input::Bytes(common::bytes(5, 900)))
    .signer(s)
    .to_vec()
    .unwrap()
    .0
}

fn read(b: &[u8]) -> Result<hermetic_eif::EifImage, EifError> {
    read_eif_from(
        Cursor::new(b),
        Path::new("hostile.eif"),
        ReadOptions::default(),
    )
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}
fn off_at(i: usize) -> usize {
    28 + 8 * i
}
fn size_at(i: usize) -> usize {
    28 + 8 * MAX_NUM_SECTIONS + 8 * i
}
fn fix_crc(b: &mut [u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..CRC_FIELD_OFFSET]);
    h.update(&b[HEADER_SIZE..]);
    let c = h.finalize();
    b[CRC_FIELD_OFFSET..HEADER_SIZE].copy_from_slice(&c.to_be_bytes());
}
fn section(b: &[u8], kind: SectionType) -> hermetic_eif::SectionInfo {
    read(b)
        .unwrap()
        .sections
        .into_iter()
        .find(|s| s.kind == kind)
        .unwrap()
}

#[test]
fn baseline_is_valid() {
    let img = read(&image()).unwrap();
    assert!(img.crc_ok());
    assert_eq!(img.sections.len(), 5);
}

#[test]
fn truncated_header() {
    let b = image();
    for len in [0usize, 1, 4, 100, HEADER_SIZE - 1] {
        match read(&b[..len]) {
            Err(EifError::TruncatedHeader { len: l, needed }) => {
                assert_eq!(l, len as u64);
                assert_eq!(needed, HEADER_SIZE as u64);
            }
            other => panic!("len {len}: {other:?}"),
        }
    }
}

#[test]
fn truncated_sections() {
    let b = image();
    for cut in [1usize, 10, 700, 2000] {
        let t = &b[..b.len() - cut];
        assert!(
            matches!(read(t), Err(EifError::SectionOutOfBounds { .. })),
            "cut {cut}: {:?}",
            read(t).err()
        );
    }
    // Header only.
    assert!(matches!(
        read(&b[..HEADER_SIZE]),
        Err(EifError::SectionOutOfBounds { index: 0, .. })
    ));
}

#[test]
fn bad_magic() {
    let mut b = image();
    b[0..4].copy_from_slice(b"\x7fELF");
    match read(&b) {
        Err(EifError::BadMagic { found }) => assert_eq!(&found, b"\x7fELF"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_version() {
    for v in [0u16, 1, 5, 0xffff] {
        let mut b = image();
        b[4..6].copy_from_slice(&v.to_be_bytes());
        fix_crc(&mut b);
        assert!(
            matches!(read(&b), Err(EifError::UnsupportedVersion { version, .. }) if version == v)
        );
    }
}

#[test]
fn too_many_sections() {
    let mut b = image();
    b[26..28].copy_from_slice(&33u16.to_be_bytes());
    assert!(matches!(
        read(&b),
        Err(EifError::TooManySections { count: 33, max: 32 })
    ));
    b[26..28].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(read(&b), Err(EifError::TooManySections { .. })));
}

#[test]
fn bad_crc_strict_and_lenient() {
    let good = image();
    let mut b = good.clone();
    let k = section(&b, SectionType::Kernel);
    b[k.data_start() as usize + 5] ^= 0x40;
    match read(&b) {
        Err(EifError::CrcMismatch { expected, computed }) => assert_ne!(expected, computed),
        other => panic!("{other:?}"),
    }
    // Header CRC field itself corrupted.
    let mut c = good.clone();
    c[CRC_FIELD_OFFSET] ^= 1;
    assert!(matches!(read(&c), Err(EifError::CrcMismatch { .. })));
    // Lenient: reported, and the measurements reflect the changed kernel.
    let img = read_eif_from(Cursor::new(&b), Path::new("x"), ReadOptions::lenient()).unwrap();
    assert!(!img.crc_ok());
    assert_ne!(img.measurements, read(&good).unwrap().measurements);
}

#[test]
fn section_out_of_bounds_and_huge_sizes() {
    let good = image();
    let n = 5;
    // Last section one byte too long.
    let mut b = good.clone();
    {
        let v = get_u64(&b, size_at(n - 1)) + 1;
        set_u64(&mut b, size_at(n - 1), v);
    }
    assert!(matches!(
        read(&b),
        Err(EifError::SectionOutOfBounds { index: 4, .. })
    ));
    // Huge sizes and offsets: no overflow, no allocation.
    for (i, field) in [(0usize, true), (2, true), (1, false), (4, false)] {
        for v in [u64::MAX, u64::MAX - 11, 1 << 62, good.len() as u64] {
            let mut b = good.clone();
            if field {
                set_u64(&mut b, size_at(i), v);
            } else {
                set_u64(&mut b, off_at(i), v);
            }
            match read(&b) {
                Err(EifError::SectionOutOfBounds { index, .. }) => assert_eq!(index, i),
                other => panic!("section {i} value {v}: {other:?}"),
            }
        }
    }
}

#[test]
fn section_overlap() {
    let good = image();
    // Section 1 starts inside section 0.
    let mut b = good.clone();
    {
        let v = get_u64(&b, off_at(1)) - 1;
        set_u64(&mut b, off_at(1), v);
    }
    match read(&b) {
        Err(EifError::SectionOverlap {
            index,
            offset,
            prev_end,
        }) => {
            assert_eq!(index, 1);
            assert_eq!(offset + 1, prev_end);
        }
        other => panic!("{other:?}"),
    }
    // Section 0 overlapping the EIF header.
    let mut b = good.clone();
    set_u64(&mut b, off_at(0), 100);
    assert!(matches!(
        read(&b),
        Err(EifError::SectionOverlap {
            index: 0,
            prev_end: 548,
            ..
        })
    ));
    // Two table entries pointing at the same section.
    let mut b = good.clone();
    let o = get_u64(&b, off_at(3));
    let s = get_u64(&b, size_at(3));
    set_u64(&mut b, off_at(4), o);
    set_u64(&mut b, size_at(4), s);
    assert!(matches!(
        read(&b),
        Err(EifError::SectionOverlap { index: 4, .. })
    ));
}

#[test]
fn gaps_and_trailing_data() {
    let good = image();
    let mut b = good.clone();
    b.extend_from_slice(b"junk");
    match read(&b) {
        Err(EifError::TrailingData { offset, len }) => {
            assert_eq!(offset, good.len() as u64);
            assert_eq!(len, 4);
        }
        other => panic!("{other:?}"),
    }
    // Fewer sections declared than present: the rest is unaccounted.
    let mut b = good.clone();
    b[26..28].copy_from_slice(&4u16.to_be_bytes());
    assert!(matches!(read(&b), Err(EifError::TrailingData { .. })));
    // A section moved forward leaves a gap.
    let mut b = good.clone();
    {
        let v = get_u64(&b, off_at(4)) + 1;
        set_u64(&mut b, off_at(4), v);
    }
    {
        let v = get_u64(&b, size_at(4)) - 1;
        set_u64(&mut b, size_at(4), v);
    }
    assert!(matches!(read(&b), Err(EifError::Gap { len: 1, .. })));
}

#[test]
fn invalid_type_and_size_mismatch() {
    let good = image();
    let k = section(&good, SectionType::Kernel);
    for raw in [0u16, 6, 0xffff] {
        let mut b = good.clone();
        b[k.offset as usize..k.offset as usize + 2].copy_from_slice(&raw.to_be_bytes());
        fix_crc(&mut b);
        assert!(
            matches!(read(&b), Err(EifError::InvalidSectionType { index: 0, raw: r }) if r == raw)
        );
    }
    let mut b = good.clone();
    let at = k.offset as usize + 4;
    b[at..at + 8].copy_from_slice(&(k.size + 1).to_be_bytes());
    fix_crc(&mut b);
    assert!(matches!(
        read(&b),
        Err(EifError::SectionSizeMismatch { index: 0, table_size, header_size }) if header_size == table_size + 1
    ));
}

#[test]
fn duplicate_and_missing_sections() {
    let good = image();
    let c = section(&good, SectionType::Cmdline);
    let mut b = good.clone();
    b[c.offset as usize..c.offset as usize + 2].copy_from_slice(&1u16.to_be_bytes()); // Kernel
    fix_crc(&mut b);
    assert!(matches!(
        read(&b),
        Err(EifError::DuplicateSection {
            kind: SectionType::Kernel,
            index: 1
        })
    ));
    let mut b = good.clone();
    b[c.offset as usize..c.offset as usize + 2].copy_from_slice(&3u16.to_be_bytes()); // Ramdisk
    fix_crc(&mut b);
    assert!(matches!(
        read(&b),
        Err(EifError::MissingSection(SectionType::Cmdline))
    ));
}

#[test]
fn malformed_metadata() {
    let mut b = image();
    let m = section(&b, SectionType::Metadata);
    b[m.data_start() as usize] = b'!';
    fix_crc(&mut b);
    assert!(matches!(read(&b), Err(EifError::MalformedMetadata(_))));
}

#[test]
fn signature_over_other_pcr0_is_rejected() {
    let good = signed_image();
    assert_eq!(read(&good).unwrap().signature_check, Some(Ok(())));
    // Change the kernel and fix the CRC: PCR0 no longer matches the signed payload.
    let mut b = good.clone();
    let k = section(&b, SectionType::Kernel);
    b[k.data_start() as usize] ^= 1;
    fix_crc(&mut b);
    match read(&b) {
        Err(EifError::SignatureInvalid(m)) => assert!(m.contains("payload"), "{m}"),
        other => panic!("{other:?}"),
    }
    let img = read_eif_from(Cursor::new(&b), Path::new("x"), ReadOptions::lenient()).unwrap();
    assert!(matches!(img.signature_check, Some(Err(_))));
    assert!(img.crc_ok());
}

#[test]
fn tampered_cose_signature_is_rejected() {
    let good = signed_image();
    let s = section(&good, SectionType::Signature);
    // The COSE bytes are the tail of the section (an int array); the very last
    // element is the last byte of the ECDSA signature. Flipping bit 0 keeps
    // its CBOR encoding valid (values < 24 stay < 24, values >= 24 stay >= 24).
    let mut b = good.clone();
    let last = s.data_end() as usize - 1;
    b[last] ^= 1;
    fix_crc(&mut b);
    match read(&b) {
        Err(EifError::SignatureInvalid(m)) => assert!(m.contains("does not verify"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_signature_section() {
    let good = signed_image();
    let s = section(&good, SectionType::Signature);
    let mut b = good.clone();
    for x in &mut b[s.data_start() as usize..s.data_end() as usize] {
        *x = 0xff;
    }
    fix_crc(&mut b);
    assert!(matches!(read(&b), Err(EifError::MalformedSignature(_))));
    // Empty array.
    let mut b = good[..s.data_start() as usize].to_vec();
    let sh = s.offset as usize;
    b.push(0x80);
    b[sh + 4..sh + 12].copy_from_slice(&1u64.to_be_bytes());
    let n = u16::from_be_bytes([b[26], b[27]]) as usize;
    set_u64(&mut b, size_at(n - 1), 1);
    fix_crc(&mut b);
    match read(&b) {
        Err(EifError::MalformedSignature(m)) => assert!(m.contains("no PcrSignature"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversized_in_memory_section_is_refused() {
    // A cmdline section larger than the in-memory limit, in a file that is
    // really that large (so it passes the bounds check).
    let big = max_in_memory(SectionType::Cmdline).unwrap() as usize + 1;
    let mut b = image();
    let c = section(&b, SectionType::Cmdline);
    let insert_at = c.data_end() as usize;
    let extra = big - c.size as usize;
    b.splice(insert_at..insert_at, std::iter::repeat_n(b'a', extra));
    set_u64(&mut b, size_at(1), big as u64);
    let sh = c.offset as usize;
    b[sh + 4..sh + 12].copy_from_slice(&(big as u64).to_be_bytes());
    for i in 2..5 {
        {
            let v = get_u64(&b, off_at(i)) + extra as u64;
            set_u64(&mut b, off_at(i), v);
        }
    }
    assert!(matches!(
        read(&b),
        Err(EifError::SectionTooLarge {
            index: 1,
            kind: SectionType::Cmdline,
            ..
        })
    ));
}

#[test]
fn missing_file_is_io_error() {
    let err = read_eif("/nonexistent/dir/x.eif", ReadOptions::default()).unwrap_err();
    assert!(matches!(err, EifError::Io { .. }));
    assert_eq!(err.exit_code(), 2);
}
