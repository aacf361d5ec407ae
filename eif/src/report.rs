//! `describe` output: nitro-cli's `describe-eif` JSON shape (aws-nitro-enclaves-cli
//! `EifDescribeInfo`: `EifVersion`, flattened `Measurements`, `IsSigned`,
//! `SigningCertificate`, `CheckCRC`, `SignatureCheck`, `ImageName`,
//! `ImageVersion`, `Metadata`) plus header and section facts.

use serde_json::{json, Map, Value};

use crate::format::EIF_MAGIC;
use crate::reader::EifImage;

/// The describe JSON object.
pub fn describe_json(img: &EifImage) -> Value {
    let h = &img.header;
    let mut o = Map::new();
    o.insert("EifVersion".into(), json!(h.version));
    o.insert(
        "Measurements".into(),
        serde_json::to_value(img.measurements.to_json()).unwrap_or(Value::Null),
    );
    o.insert("IsSigned".into(), json!(img.is_signed()));
    if let Some(sig) = &img.signature {
        o.insert(
            "SigningCertificate".into(),
            serde_json::to_value(&sig.certificate).unwrap_or(Value::Null),
        );
    }
    o.insert("CheckCRC".into(), json!(img.crc_ok()));
    if let Some(check) = &img.signature_check {
        o.insert("SignatureCheck".into(), json!(check.is_ok()));
        if let Err(e) = check {
            o.insert("SignatureError".into(), json!(e));
        }
    }
    if let Some(md) = &img.metadata {
        for key in ["ImageName", "ImageVersion"] {
            if let Some(v) = md.get(key) {
                o.insert(key.into(), v.clone());
            }
        }
        o.insert("Metadata".into(), md.clone());
    }
    let magic = if h.magic == EIF_MAGIC {
        ".eif".to_string()
    } else {
        hex::encode(h.magic)
    };
    o.insert(
        "Header".into(),
        json!({
            "Magic": magic,
            "Version": h.version,
            "Flags": h.flags,
            "Arch": img.arch().as_str(),
            "DefaultMemory": h.default_mem,
            "DefaultCpus": h.default_cpus,
            "NumSections": h.num_sections,
            "Crc32": format!("{:08x}", h.eif_crc32),
            "ComputedCrc32": format!("{:08x}", img.crc_computed),
            "FileSize": img.file_len,
        }),
    );
    o.insert(
        "Sections".into(),
        serde_json::to_value(&img.sections).unwrap_or(Value::Null),
    );
    o.insert(
        "Cmdline".into(),
        json!(String::from_utf8_lossy(&img.cmdline)),
    );
    Value::Object(o)
}

/// A human-readable summary.
pub fn describe_text(img: &EifImage) -> String {
    let h = &img.header;
    let mut s = String::new();
    s.push_str(&format!("EIF file      {}\n", img.path.display()));
    s.push_str(&format!(
        "version       {}   flags {:#06x} ({})\n",
        h.version,
        h.flags,
        img.arch().as_str()
    ));
    s.push_str(&format!(
        "defaults      {} MiB memory, {} vCPUs\n",
        h.default_mem >> 20,
        h.default_cpus
    ));
    s.push_str(&format!(
        "CRC32         header {:08x}, computed {:08x}: {}\n",
        h.eif_crc32,
        img.crc_computed,
        if img.crc_ok() { "OK" } else { "MISMATCH" }
    ));
    s.push_str(&format!("sections      {}\n", img.sections.len()));
    for sec in &img.sections {
        s.push_str(&format!(
            "  [{}] {:<9} offset {:>12}  size {:>12}\n",
            sec.index,
            format!("{:?}", sec.kind),
            sec.offset,
            sec.size
        ));
    }
    s.push_str(&format!(
        "cmdline       {}\n",
        String::from_utf8_lossy(&img.cmdline)
    ));
    match (&img.signature, &img.signature_check) {
        (Some(sig), Some(check)) => {
            s.push_str(&format!(
                "signed        yes, by {} (valid {} .. {})\n",
                sig.certificate.subject, sig.certificate.not_before, sig.certificate.not_after
            ));
            match check {
                Ok(()) => s.push_str("signature     PCR0 signature verifies\n"),
                Err(e) => s.push_str(&format!("signature     INVALID: {e}\n")),
            }
        }
        _ => s.push_str("signed        no\n"),
    }
    s.push_str("measurements  (SHA-384)\n");
    for (idx, v) in img.measurements.iter() {
        s.push_str(&format!("  PCR{idx}  {}\n", hex::encode(v)));
    }
    s
}
