//! The reader against the reference implementation's own output.

mod common;

use hermetic_eif::{read_eif, EifBuilder, Input, ReadOptions};

fn check_vector(name: &str) {
    let Some(dir) = common::vectors() else { return };
    let refj = common::reference(&dir, name);
    let img = read_eif(dir.join(format!("{name}.eif")), ReadOptions::default()).unwrap();
    let m = img.measurements.to_json();
    let rm = &refj["measurements"];
    assert_eq!(m.hash_algorithm, rm["HashAlgorithm"].as_str().unwrap());
    assert_eq!(m.pcr0, rm["PCR0"].as_str().unwrap(), "PCR0");
    assert_eq!(m.pcr1, rm["PCR1"].as_str().unwrap(), "PCR1");
    assert_eq!(m.pcr2, rm["PCR2"].as_str().unwrap(), "PCR2");
    assert_eq!(m.pcr8.as_deref(), rm["PCR8"].as_str(), "PCR8");
    let h = &refj["header"];
    assert_eq!(img.header.version as u64, h["version"].as_u64().unwrap());
    assert_eq!(img.header.flags as u64, h["flags"].as_u64().unwrap());
    assert_eq!(img.header.default_mem, h["default_mem"].as_u64().unwrap());
    assert_eq!(img.header.default_cpus, h["default_cpus"].as_u64().unwrap());
    assert_eq!(
        img.header.eif_crc32 as u64,
        h["eif_crc32"].as_u64().unwrap()
    );
    assert_eq!(
        img.header.num_sections as u64,
        h["num_sections"].as_u64().unwrap()
    );
    let offs: Vec<u64> = img.sections.iter().map(|s| s.offset).collect();
    let sizes: Vec<u64> = img.sections.iter().map(|s| s.size).collect();
    let roffs: Vec<u64> = h["section_offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let rsizes: Vec<u64> = h["section_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(offs, roffs);
    assert_eq!(sizes, rsizes);
    assert_eq!(img.crc_ok(), refj["crc_ok"].as_bool().unwrap());
    assert_eq!(img.is_signed(), refj["signed"].as_bool().unwrap());
    if img.is_signed() {
        assert_eq!(img.signature_check, Some(Ok(())));
    }
}

#[test]
fn one_ramdisk_matches_reference() {
    check_vector("one_ramdisk");
}

#[test]
fn two_ramdisks_signed_matches_reference() {
    check_vector("two_ramdisks_signed");
}

#[test]
fn recipe_from_inputs_matches_reference() {
    let Some(dir) = common::vectors() else { return };
    let i = dir.join("inputs");
    let k = std::fs::read(i.join("kernel.bin")).unwrap();
    let c = std::fs::read(i.join("cmdline.txt")).unwrap();
    let r0 = std::fs::read(i.join("ramdisk0.cpio.gz")).unwrap();
    let r1 = std::fs::read(i.join("ramdisk1.cpio.gz")).unwrap();
    let one = common::reference(&dir, "one_ramdisk");
    assert_eq!(
        common::recipe(&[&k, &c, &r0]),
        one["measurements"]["PCR0"].as_str().unwrap()
    );
    assert_eq!(
        common::recipe(&[]),
        one["measurements"]["PCR2"].as_str().unwrap()
    );
    let two = common::reference(&dir, "two_ramdisks_signed");
    assert_eq!(
        common::recipe(&[&k, &c, &r0, &r1]),
        two["measurements"]["PCR0"].as_str().unwrap()
    );
    assert_eq!(
        common::recipe(&[&r1]),
        two["measurements"]["PCR2"].as_str().unwrap()
    );
}

#[test]
fn builder_reproduces_unsigned_vector_byte_for_byte() {
    let Some(dir) = common::vectors() else { return };
    let i = dir.join("inputs");
    let vector = std::fs::read(dir.join("one_ramdisk.eif")).unwrap();
    let img = read_eif(dir.join("one_ramdisk.eif"), ReadOptions::default()).unwrap();
    // Reuse the vector's metadata bytes (they carry the reference's build info).
    let md = img
        .sections
        .iter()
        .find(|s| s.kind == hermetic_eif::SectionType::Metadata)
        .unwrap();
    let md_bytes = vector[md.data_start() as usize..md.data_end() as usize].to_vec();
    let (bytes, out) = EifBuilder::new(
        Input::File(i.join("kernel.bin")),
        std::fs::read(i.join("cmdline.txt")).unwrap(),
    )
    .ramdisk(Input::File(i.join("ramdisk0.cpio.gz")))
    .metadata(Some(md_bytes))
    .to_vec()
    .unwrap();
    assert_eq!(out.measurements, img.measurements);
    assert_eq!(bytes.len(), vector.len());
    assert!(
        bytes == vector,
        "builder output differs from the reference EIF"
    );
}
