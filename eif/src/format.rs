//! On-disk structures of the EIF format: the fixed header and the per-section
//! header. Pure byte <-> struct conversions, no I/O.
//!
//! Source of every fact here: aws/aws-nitro-enclaves-image-format,
//! `src/defs/mod.rs` (`EifHeader`, `EifSectionHeader`, `EifSectionType`,
//! `EIF_MAGIC`, `MAX_NUM_SECTIONS`, `EIF_HDR_ARCH_ARM64`, `CURRENT_VERSION`).
//! All integers are big-endian.

use serde::Serialize;

use crate::error::{EifError, Result};

/// `.eif` in ASCII (`EIF_MAGIC` in src/defs/mod.rs).
pub const EIF_MAGIC: [u8; 4] = *b".eif";
/// Number of slots in the header's section offset/size tables (`MAX_NUM_SECTIONS`).
pub const MAX_NUM_SECTIONS: usize = 32;
/// Header flag bit 0: aarch64 when set, x86_64 when clear (`EIF_HDR_ARCH_ARM64`).
pub const EIF_HDR_ARCH_ARM64: u16 = 0x1;
/// Version written by the reference builder (`CURRENT_VERSION`; v2 added the CRC,
/// v3 the signature section, v4 the metadata section).
pub const CURRENT_VERSION: u16 = 4;
/// Oldest version we accept: the first one with a CRC (v1 -> v2 "Add support
/// to generate and check CRC").
pub const MIN_VERSION: u16 = 2;
/// Size of the serialized `EifHeader`: magic(4) version(2) flags(2) default_mem(8)
/// default_cpus(8) reserved(2) num_sections(2) offsets(32*8) sizes(32*8)
/// unused(4) eif_crc32(4) = 548 (`EifHeader::size()`, asserted by the
/// reference's `test_eif_header_size`).
pub const HEADER_SIZE: usize = 548;
/// Offset of the `eif_crc32` field: the last 4 bytes of the header. The CRC
/// covers everything in the file except these 4 bytes.
pub const CRC_FIELD_OFFSET: usize = HEADER_SIZE - 4;
/// Size of the serialized `EifSectionHeader`: type(2) flags(2) size(8) = 12.
pub const SECTION_HEADER_SIZE: usize = 12;

/// Default memory the reference builder writes (1 GiB, `EifBuilder::new`).
pub const DEFAULT_MEM: u64 = 1024 * 1024 * 1024;
/// Default vCPU count the reference builder writes (`EifBuilder::new`).
pub const DEFAULT_CPUS: u64 = 2;

/// Section types (`EifSectionType`, `#[repr(u16)]`, numbered from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SectionType {
    Kernel,
    Cmdline,
    Ramdisk,
    Signature,
    Metadata,
}

impl SectionType {
    /// 0 is `EifSectionInvalid`; 1..=5 are the valid types.
    pub fn from_u16(raw: u16) -> Option<Self> {
        match raw {
            1 => Some(SectionType::Kernel),
            2 => Some(SectionType::Cmdline),
            3 => Some(SectionType::Ramdisk),
            4 => Some(SectionType::Signature),
            5 => Some(SectionType::Metadata),
            _ => None,
        }
    }

    pub fn as_u16(self) -> u16 {
        match self {
            SectionType::Kernel => 1,
            SectionType::Cmdline => 2,
            SectionType::Ramdisk => 3,
            SectionType::Signature => 4,
            SectionType::Metadata => 5,
        }
    }
}

/// CPU architecture encoded in the header flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "aarch64")]
    Aarch64,
}

impl Arch {
    pub fn from_flags(flags: u16) -> Self {
        if flags & EIF_HDR_ARCH_ARM64 != 0 {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    pub fn flag_bits(self) -> u16 {
        match self {
            Arch::X86_64 => 0,
            Arch::Aarch64 => EIF_HDR_ARCH_ARM64,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "x86_64" => Ok(Arch::X86_64),
            "aarch64" => Ok(Arch::Aarch64),
            other => Err(format!("unknown arch {other:?} (x86_64 or aarch64)")),
        }
    }
}

/// The fixed EIF header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EifHeader {
    pub magic: [u8; 4],
    pub version: u16,
    pub flags: u16,
    pub default_mem: u64,
    pub default_cpus: u64,
    pub reserved: u16,
    pub num_sections: u16,
    pub section_offsets: [u64; MAX_NUM_SECTIONS],
    pub section_sizes: [u64; MAX_NUM_SECTIONS],
    pub unused: u32,
    pub eif_crc32: u32,
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl EifHeader {
    /// Decodes the 548 header bytes. Checks the magic; every other semantic
    /// check (version, table) is the reader's job so that each gets its own
    /// error variant in a well-defined order.
    pub fn parse(bytes: &[u8; HEADER_SIZE]) -> Result<Self> {
        let b = &bytes[..];
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&b[0..4]);
        if magic != EIF_MAGIC {
            return Err(EifError::BadMagic { found: magic });
        }
        let mut section_offsets = [0u64; MAX_NUM_SECTIONS];
        let mut section_sizes = [0u64; MAX_NUM_SECTIONS];
        let offsets_at = 28;
        let sizes_at = offsets_at + 8 * MAX_NUM_SECTIONS;
        for i in 0..MAX_NUM_SECTIONS {
            section_offsets[i] = be_u64(b, offsets_at + 8 * i);
            section_sizes[i] = be_u64(b, sizes_at + 8 * i);
        }
        let tail = sizes_at + 8 * MAX_NUM_SECTIONS;
        Ok(EifHeader {
            magic,
            version: be_u16(b, 4),
            flags: be_u16(b, 6),
            default_mem: be_u64(b, 8),
            default_cpus: be_u64(b, 16),
            reserved: be_u16(b, 24),
            num_sections: be_u16(b, 26),
            section_offsets,
            section_sizes,
            unused: be_u32(b, tail),
            eif_crc32: be_u32(b, tail + 4),
        })
    }

    /// Serializes in the same field order (`EifHeader::to_be_bytes`).
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..4].copy_from_slice(&self.magic);
        out[4..6].copy_from_slice(&self.version.to_be_bytes());
        out[6..8].copy_from_slice(&self.flags.to_be_bytes());
        out[8..16].copy_from_slice(&self.default_mem.to_be_bytes());
        out[16..24].copy_from_slice(&self.default_cpus.to_be_bytes());
        out[24..26].copy_from_slice(&self.reserved.to_be_bytes());
        out[26..28].copy_from_slice(&self.num_sections.to_be_bytes());
        let mut at = 28;
        for v in self.section_offsets.iter().chain(self.section_sizes.iter()) {
            out[at..at + 8].copy_from_slice(&v.to_be_bytes());
            at += 8;
        }
        out[at..at + 4].copy_from_slice(&self.unused.to_be_bytes());
        out[at + 4..at + 8].copy_from_slice(&self.eif_crc32.to_be_bytes());
        out
    }

    pub fn arch(&self) -> Arch {
        Arch::from_flags(self.flags)
    }
}

/// The 12-byte header in front of each section's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    pub section_type: SectionType,
    pub flags: u16,
    pub size: u64,
}

impl SectionHeader {
    /// Decodes a section header; `Err(raw)` carries an invalid type number.
    pub fn parse(b: &[u8; SECTION_HEADER_SIZE]) -> std::result::Result<Self, u16> {
        let raw = be_u16(b, 0);
        let section_type = SectionType::from_u16(raw).ok_or(raw)?;
        Ok(SectionHeader {
            section_type,
            flags: be_u16(b, 2),
            size: be_u64(b, 4),
        })
    }

    pub fn to_bytes(&self) -> [u8; SECTION_HEADER_SIZE] {
        let mut out = [0u8; SECTION_HEADER_SIZE];
        out[0..2].copy_from_slice(&self.section_type.as_u16().to_be_bytes());
        out[2..4].copy_from_slice(&self.flags.to_be_bytes());
        out[4..12].copy_from_slice(&self.size.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_layout() {
        let mut h = EifHeader {
            magic: EIF_MAGIC,
            version: 4,
            flags: 1,
            default_mem: 5,
            default_cpus: 6,
            reserved: 0,
            num_sections: 3,
            section_offsets: [0; MAX_NUM_SECTIONS],
            section_sizes: [0; MAX_NUM_SECTIONS],
            unused: 0,
            eif_crc32: 0xdead_beef,
        };
        h.section_offsets[31] = 0x0102_0304_0506_0708;
        h.section_sizes[0] = 9;
        let b = h.to_bytes();
        assert_eq!(&b[0..4], b".eif");
        assert_eq!(&b[CRC_FIELD_OFFSET..], &0xdead_beefu32.to_be_bytes());
        assert_eq!(&b[28 + 31 * 8..28 + 32 * 8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(EifHeader::parse(&b).unwrap(), h);
    }

    #[test]
    fn section_header_types() {
        for t in 1..=5u16 {
            let st = SectionType::from_u16(t).unwrap();
            let sh = SectionHeader {
                section_type: st,
                flags: 0,
                size: 77,
            };
            assert_eq!(SectionHeader::parse(&sh.to_bytes()).unwrap(), sh);
        }
        assert_eq!(SectionHeader::parse(&[0u8; 12]), Err(0));
        let mut b = [0u8; 12];
        b[1] = 6;
        assert_eq!(SectionHeader::parse(&b), Err(6));
    }
}
