//! Reading and validating an EIF, and measuring it in one pass.
//!
//! Layout (aws/aws-nitro-enclaves-image-format `src/utils/mod.rs`,
//! `EifBuilder::sections_offsets` / `write_to`): the 548-byte header, then
//! the sections back to back in table order (kernel, cmdline, metadata,
//! ramdisks..., signature). `section_offsets[i]` points at section i's
//! 12-byte section header; `section_sizes[i]` is the size of its data only.
//! The reference reader (`src/utils/eif_reader.rs`, `EifReader::from_eif`)
//! ignores the table and walks section headers sequentially from byte 548 to
//! the end of the file, so this reader requires the table to describe exactly
//! that walk (contiguous, in order, ending at EOF): then both readings agree.
//! The CRC (`compute_crc` / `from_eif`) is CRC-32/ISO-HDLC (IEEE) over the
//! header without its last 4 bytes, then every section header and its data.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{EifError, Result};
use crate::format::*;
use crate::measure::{stream_measure, Measurements, Region, Role};
use crate::signature::{parse_signature_section, verify_pcr0, SignatureSection};

/// Largest section of each kind that is kept in memory and decoded. Real
/// values are far smaller (a command line is a few hundred bytes, the
/// signature section a few KiB, the metadata JSON tens of KiB); the limits
/// bound what a hostile file can make the decoders allocate (a CBOR array of
/// small integers or a JSON document expands several times when decoded).
pub fn max_in_memory(kind: SectionType) -> Option<u64> {
    match kind {
        SectionType::Cmdline => Some(1 << 20),
        SectionType::Signature => Some(1 << 20),
        SectionType::Metadata => Some(4 << 20),
        SectionType::Kernel | SectionType::Ramdisk => None,
    }
}

/// What a read insists on.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Fail with [`EifError::CrcMismatch`] when the CRC differs (else report it).
    pub verify_crc: bool,
    /// Fail with [`EifError::SignatureInvalid`] when a signature does not
    /// verify (else report it). A signature section that cannot be decoded is
    /// always an error: PCR8 cannot be computed without it.
    pub verify_signature: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            verify_crc: true,
            verify_signature: true,
        }
    }
}

impl ReadOptions {
    /// Report CRC and signature problems instead of failing on them.
    pub fn lenient() -> Self {
        ReadOptions {
            verify_crc: false,
            verify_signature: false,
        }
    }
}

/// One entry of the section table, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SectionInfo {
    #[serde(rename = "Index")]
    pub index: usize,
    #[serde(rename = "Type")]
    pub kind: SectionType,
    #[serde(rename = "Flags")]
    pub flags: u16,
    /// Offset of the 12-byte section header.
    #[serde(rename = "Offset")]
    pub offset: u64,
    /// Size of the data.
    #[serde(rename = "Size")]
    pub size: u64,
}

impl SectionInfo {
    pub fn data_start(&self) -> u64 {
        self.offset + SECTION_HEADER_SIZE as u64
    }
    pub fn data_end(&self) -> u64 {
        self.data_start() + self.size
    }
}

/// A read, validated and measured image.
#[derive(Clone, Debug)]
pub struct EifImage {
    pub path: PathBuf,
    pub header: EifHeader,
    pub file_len: u64,
    pub sections: Vec<SectionInfo>,
    pub crc_computed: u32,
    pub measurements: Measurements,
    pub cmdline: Vec<u8>,
    pub metadata: Option<serde_json::Value>,
    pub signature: Option<SignatureSection>,
    /// `None` when unsigned; otherwise whether the PCR0 signature verified.
    pub signature_check: Option<std::result::Result<(), String>>,
}

impl EifImage {
    pub fn crc_ok(&self) -> bool {
        self.crc_computed == self.header.eif_crc32
    }
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }
    pub fn arch(&self) -> Arch {
        self.header.arch()
    }
    pub fn ramdisk_count(&self) -> usize {
        self.sections
            .iter()
            .filter(|s| s.kind == SectionType::Ramdisk)
            .count()
    }
}

/// Reads, validates and measures the EIF at `path`.
pub fn read_eif(path: impl AsRef<Path>, opts: ReadOptions) -> Result<EifImage> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| EifError::io(path, e))?;
    read_eif_from(file, path, opts)
}

fn read_at<R: Read + Seek>(r: &mut R, path: &Path, at: u64, buf: &mut [u8]) -> Result<()> {
    r.seek(SeekFrom::Start(at))
        .map_err(|e| EifError::io(path, e))?;
    r.read_exact(buf).map_err(|e| EifError::io(path, e))
}

/// Validates the header's section table against the file length. Pure: no
/// size field is trusted before it is checked against `file_len`.
pub fn validate_table(header: &EifHeader, file_len: u64) -> Result<Vec<(u64, u64)>> {
    if header.version < MIN_VERSION || header.version > CURRENT_VERSION {
        return Err(EifError::UnsupportedVersion {
            version: header.version,
            min: MIN_VERSION,
            max: CURRENT_VERSION,
        });
    }
    let n = header.num_sections as usize;
    if n > MAX_NUM_SECTIONS {
        return Err(EifError::TooManySections {
            count: header.num_sections,
            max: MAX_NUM_SECTIONS,
        });
    }
    let mut prev_end = HEADER_SIZE as u64;
    let mut out = Vec::with_capacity(n);
    for index in 0..n {
        let offset = header.section_offsets[index];
        let size = header.section_sizes[index];
        let end = offset
            .checked_add(SECTION_HEADER_SIZE as u64)
            .and_then(|x| x.checked_add(size));
        let end = match end {
            Some(end) if end <= file_len => end,
            _ => {
                return Err(EifError::SectionOutOfBounds {
                    index,
                    offset,
                    size,
                    file_len,
                })
            }
        };
        if offset < prev_end {
            return Err(EifError::SectionOverlap {
                index,
                offset,
                prev_end,
            });
        }
        if offset > prev_end {
            return Err(EifError::Gap {
                offset: prev_end,
                len: offset - prev_end,
            });
        }
        out.push((offset, size));
        prev_end = end;
    }
    if prev_end < file_len {
        return Err(EifError::TrailingData {
            offset: prev_end,
            len: file_len - prev_end,
        });
    }
    Ok(out)
}

/// Reads, validates and measures an EIF from any seekable source (`path` is
/// only used in messages).
pub fn read_eif_from<R: Read + Seek>(
    mut src: R,
    path: &Path,
    opts: ReadOptions,
) -> Result<EifImage> {
    let file_len = src
        .seek(SeekFrom::End(0))
        .map_err(|e| EifError::io(path, e))?;
    if file_len < HEADER_SIZE as u64 {
        return Err(EifError::TruncatedHeader {
            len: file_len,
            needed: HEADER_SIZE as u64,
        });
    }
    let mut hbuf = [0u8; HEADER_SIZE];
    read_at(&mut src, path, 0, &mut hbuf)?;
    let header = EifHeader::parse(&hbuf)?;
    let table = validate_table(&header, file_len)?;

    // Section headers: type known, size consistent with the table.
    let mut sections = Vec::with_capacity(table.len());
    for (index, &(offset, size)) in table.iter().enumerate() {
        let mut sb = [0u8; SECTION_HEADER_SIZE];
        read_at(&mut src, path, offset, &mut sb)?;
        let sh =
            SectionHeader::parse(&sb).map_err(|raw| EifError::InvalidSectionType { index, raw })?;
        if sh.size != size {
            return Err(EifError::SectionSizeMismatch {
                index,
                table_size: size,
                header_size: sh.size,
            });
        }
        sections.push(SectionInfo {
            index,
            kind: sh.section_type,
            flags: sh.flags,
            offset,
            size,
        });
    }

    // Section multiplicity.
    let mut seen = std::collections::HashSet::new();
    for s in &sections {
        let once = matches!(
            s.kind,
            SectionType::Kernel
                | SectionType::Cmdline
                | SectionType::Signature
                | SectionType::Metadata
        );
        if once && !seen.insert(s.kind) {
            return Err(EifError::DuplicateSection {
                kind: s.kind,
                index: s.index,
            });
        }
        if let Some(max) = max_in_memory(s.kind) {
            if s.size > max {
                return Err(EifError::SectionTooLarge {
                    index: s.index,
                    kind: s.kind,
                    size: s.size,
                    max,
                });
            }
        }
    }
    for kind in [SectionType::Kernel, SectionType::Cmdline] {
        if !seen.contains(&kind) {
            return Err(EifError::MissingSection(kind));
        }
    }

    // Measured regions, in file order (EifReader::from_eif).
    let mut regions = Vec::new();
    let mut ramdisk_idx = 0usize;
    for s in &sections {
        let role = match s.kind {
            SectionType::Kernel | SectionType::Cmdline => Role::Boot,
            SectionType::Ramdisk => {
                ramdisk_idx += 1;
                if ramdisk_idx == 1 {
                    Role::Boot
                } else {
                    Role::App
                }
            }
            SectionType::Signature | SectionType::Metadata => continue,
        };
        if s.size > 0 {
            regions.push(Region {
                start: s.data_start(),
                end: s.data_end(),
                role,
            });
        }
    }
    // Small sections captured while streaming (sizes checked above).
    let mut captures: Vec<(SectionType, u64, u64, Vec<u8>)> = sections
        .iter()
        .filter(|s| max_in_memory(s.kind).is_some())
        .map(|s| {
            (
                s.kind,
                s.data_start(),
                s.data_end(),
                Vec::with_capacity(s.size as usize),
            )
        })
        .collect();

    // CRC: header minus its CRC field, then everything after the header.
    let mut crc = crc32fast::Hasher::new();
    crc.update(&hbuf[..CRC_FIELD_OFFSET]);
    src.seek(SeekFrom::Start(HEADER_SIZE as u64))
        .map_err(|e| EifError::io(path, e))?;
    let body_len = file_len - HEADER_SIZE as u64;
    let pcrs = stream_measure(
        &mut src,
        HEADER_SIZE as u64,
        body_len,
        &regions,
        |e| EifError::io(path, e),
        |off, chunk| {
            crc.update(chunk);
            let end = off + chunk.len() as u64;
            for (_, s, e, buf) in captures.iter_mut() {
                let a = (*s).max(off);
                let b = (*e).min(end);
                if a < b {
                    buf.extend_from_slice(&chunk[(a - off) as usize..(b - off) as usize]);
                }
            }
            Ok(())
        },
    )?;
    let crc_computed = crc.finalize();
    if opts.verify_crc && crc_computed != header.eif_crc32 {
        return Err(EifError::CrcMismatch {
            expected: header.eif_crc32,
            computed: crc_computed,
        });
    }

    let take = |kind: SectionType, captures: &mut Vec<(SectionType, u64, u64, Vec<u8>)>| {
        captures
            .iter_mut()
            .find(|c| c.0 == kind)
            .map(|c| std::mem::take(&mut c.3))
    };
    let cmdline = take(SectionType::Cmdline, &mut captures).unwrap_or_default();
    let metadata = match take(SectionType::Metadata, &mut captures) {
        Some(bytes) => Some(
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| EifError::MalformedMetadata(e.to_string()))?,
        ),
        None => None,
    };
    let signature = match take(SectionType::Signature, &mut captures) {
        Some(bytes) => Some(parse_signature_section(&bytes)?),
        None => None,
    };
    let measurements = Measurements {
        pcr0: pcrs.pcr0,
        pcr1: pcrs.pcr1,
        pcr2: pcrs.pcr2,
        pcr8: signature.as_ref().map(|s| s.pcr8),
    };
    let signature_check = match &signature {
        None => None,
        Some(sig) => match verify_pcr0(sig, &measurements.pcr0) {
            Ok(()) => Some(Ok(())),
            Err(e) if opts.verify_signature => return Err(e),
            Err(e) => Some(Err(e.to_string())),
        },
    };
    Ok(EifImage {
        path: path.to_path_buf(),
        header,
        file_len,
        sections,
        crc_computed,
        measurements,
        cmdline,
        metadata,
        signature,
        signature_check,
    })
}
