//! `describe` output: nitro-cli's `describe-eif` JSON shape (aws-nitro-enclaves-cli
//! `EifDescribeInfo`: `EifVersion`, flattened `Measurements`, `IsSigned`,
//! `SigningCertificate`, `CheckCRC`, `SignatureCheck`, `ImageName`,
//! `ImageVersion`, `Metadata`) plus header and section facts.

use serde::Serialize;
use serde_json::{json, Value};

use crate::format::EIF_MAGIC;
use crate::measure::MeasurementsJson;
use crate::reader::{EifImage, SectionInfo};
use crate::signature::CertificateInfo;

/// The describe JSON, fields in nitro-cli's order, then ours.
#[derive(Serialize)]
pub struct DescribeOutput<'a> {
    #[serde(rename = "EifVersion")]
    pub eif_version: u16,
    #[serde(rename = "Measurements")]
    pub measurements: MeasurementsJson,
    #[serde(rename = "IsSigned")]
    pub is_signed: bool,
    #[serde(rename = "SigningCertificate", skip_serializing_if = "Option::is_none")]
    pub signing_certificate: Option<&'a CertificateInfo>,
    #[serde(rename = "CheckCRC")]
    pub check_crc: bool,
    #[serde(rename = "SignatureCheck", skip_serializing_if = "Option::is_none")]
    pub signature_check: Option<bool>,
    #[serde(rename = "SignatureError", skip_serializing_if = "Option::is_none")]
    pub signature_error: Option<&'a str>,
    #[serde(rename = "ImageName", skip_serializing_if = "Option::is_none")]
    pub image_name: Option<&'a Value>,
    #[serde(rename = "ImageVersion", skip_serializing_if = "Option::is_none")]
    pub image_version: Option<&'a Value>,
    #[serde(rename = "Metadata", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a Value>,
    #[serde(rename = "Header")]
    pub header: Value,
    #[serde(rename = "Sections")]
    pub sections: &'a [SectionInfo],
    #[serde(rename = "Cmdline")]
    pub cmdline: String,
}

/// The describe JSON object.
pub fn describe_json(img: &EifImage) -> Value {
    serde_json::to_value(describe(img)).unwrap_or(Value::Null)
}

/// The describe output as a typed value.
pub fn describe(img: &EifImage) -> DescribeOutput<'_> {
    let h = &img.header;
    let magic = if h.magic == EIF_MAGIC {
        ".eif".to_string()
    } else {
        hex::encode(h.magic)
    };
    let md = img.metadata.as_ref();
    DescribeOutput {
        eif_version: h.version,
        measurements: img.measurements.to_json(),
        is_signed: img.is_signed(),
        signing_certificate: img.signature.as_ref().map(|s| &s.certificate),
        check_crc: img.crc_ok(),
        signature_check: img.signature_check.as_ref().map(|c| c.is_ok()),
        signature_error: img
            .signature_check
            .as_ref()
            .and_then(|c| c.as_ref().err())
            .map(String::as_str),
        image_name: md.and_then(|m| m.get("ImageName")),
        image_version: md.and_then(|m| m.get("ImageVersion")),
        metadata: md,
        header: json!({
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
        sections: &img.sections,
        cmdline: String::from_utf8_lossy(&img.cmdline).into_owned(),
    }
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
