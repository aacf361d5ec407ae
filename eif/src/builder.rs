//! Building EIFs with the reference layout.
//!
//! Layout and order (aws/aws-nitro-enclaves-image-format `src/utils/mod.rs`,
//! `EifBuilder`): header; kernel; cmdline (the bytes of a `CString`, i.e. no
//! trailing NUL and no interior NUL); metadata (JSON `EifIdentityInfo`);
//! ramdisks in order; signature last when signing. `num_sections` counts
//! them; unused table slots are zero; version `CURRENT_VERSION` (4); flags bit
//! 0 = aarch64; default_mem 1 GiB and default_cpus 2. Measurement happens
//! before writing (`write_to` calls `measure` first) because the signature
//! covers PCR0; the CRC is then computed over everything written.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{EifError, Result};
use crate::format::*;
use crate::measure::{stream_measure, Measurements, PcrHasher, Region, Role};
use crate::signature::Signer;

/// Where a section's bytes come from.
#[derive(Clone, Debug)]
pub enum Input {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Input {
    fn len(&self) -> Result<u64> {
        match self {
            Input::Bytes(b) => Ok(b.len() as u64),
            Input::File(p) => std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| EifError::io(p, e)),
        }
    }

    fn open(&self) -> Result<Box<dyn Read + '_>> {
        match self {
            Input::Bytes(b) => Ok(Box::new(&b[..])),
            Input::File(p) => Ok(Box::new(File::open(p).map_err(|e| EifError::io(p, e))?)),
        }
    }

    fn name(&self) -> PathBuf {
        match self {
            Input::Bytes(_) => PathBuf::from("<memory>"),
            Input::File(p) => p.clone(),
        }
    }
}

/// Result of a build.
#[derive(Clone, Debug)]
pub struct BuildOutput {
    pub measurements: Measurements,
    pub crc: u32,
    pub len: u64,
}

/// EIF builder. Sections are written in the reference order.
pub struct EifBuilder {
    kernel: Input,
    cmdline: Vec<u8>,
    ramdisks: Vec<Input>,
    metadata: Option<Vec<u8>>,
    signer: Option<Signer>,
    arch: Arch,
    default_mem: u64,
    default_cpus: u64,
}

/// A deterministic `EifIdentityInfo` JSON (src/defs/mod.rs field names), so
/// that the same inputs always give the same bytes.
pub fn default_metadata(image_name: &str) -> Vec<u8> {
    let v = serde_json::json!({
        "ImageName": image_name,
        "ImageVersion": "1.0",
        "BuildMetadata": {
            "BuildTime": "1970-01-01T00:00:00+00:00",
            "BuildTool": "hermetic-eif",
            "BuildToolVersion": env!("CARGO_PKG_VERSION"),
            "OperatingSystem": "",
            "KernelVersion": "",
        },
        "DockerInfo": null,
        "CustomMetadata": null,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

struct Plan<'a> {
    kind: SectionType,
    size: u64,
    source: PlanSource<'a>,
}

enum PlanSource<'a> {
    Input(&'a Input),
    Owned(Vec<u8>),
}

impl EifBuilder {
    pub fn new(kernel: Input, cmdline: impl Into<Vec<u8>>) -> Self {
        EifBuilder {
            kernel,
            cmdline: cmdline.into(),
            ramdisks: Vec::new(),
            metadata: Some(default_metadata("hermetic-eif")),
            signer: None,
            arch: Arch::X86_64,
            default_mem: DEFAULT_MEM,
            default_cpus: DEFAULT_CPUS,
        }
    }

    pub fn ramdisk(mut self, r: Input) -> Self {
        self.ramdisks.push(r);
        self
    }

    /// Metadata section bytes; `None` omits the section.
    pub fn metadata(mut self, m: Option<Vec<u8>>) -> Self {
        self.metadata = m;
        self
    }

    pub fn signer(mut self, s: Signer) -> Self {
        self.signer = Some(s);
        self
    }

    pub fn arch(mut self, a: Arch) -> Self {
        self.arch = a;
        self
    }

    pub fn default_mem(mut self, m: u64) -> Self {
        self.default_mem = m;
        self
    }

    pub fn default_cpus(mut self, c: u64) -> Self {
        self.default_cpus = c;
        self
    }

    fn check(&self) -> Result<()> {
        if self.cmdline.contains(&0) {
            return Err(EifError::BuildInput(
                "the command line contains a NUL byte".into(),
            ));
        }
        if let Some(m) = &self.metadata {
            serde_json::from_slice::<serde_json::Value>(m)
                .map_err(|e| EifError::BuildInput(format!("metadata is not JSON: {e}")))?;
        }
        let n = 2
            + self.ramdisks.len()
            + usize::from(self.metadata.is_some())
            + usize::from(self.signer.is_some());
        if n > MAX_NUM_SECTIONS {
            return Err(EifError::BuildInput(format!(
                "{n} sections, the format allows {MAX_NUM_SECTIONS}"
            )));
        }
        Ok(())
    }

    /// PCR0/1/2 (+PCR8) of the inputs, in one streaming pass over them.
    pub fn measure(&self) -> Result<Measurements> {
        self.check()?;
        let mut lens = vec![self.kernel.len()?, self.cmdline.len() as u64];
        for r in &self.ramdisks {
            lens.push(r.len()?);
        }
        let mut regions = Vec::new();
        let mut at = 0u64;
        for (i, len) in lens.iter().enumerate() {
            let role = if i <= 2 { Role::Boot } else { Role::App };
            regions.push(Region {
                start: at,
                end: at + len,
                role,
            });
            at += len;
        }
        let mut reader: Box<dyn Read + '_> = Box::new(self.kernel.open()?.take(lens[0]));
        reader = Box::new(reader.chain(&self.cmdline[..]));
        for (r, len) in self.ramdisks.iter().zip(&lens[2..]) {
            reader = Box::new(reader.chain(r.open()?.take(*len)));
        }
        let pcrs = stream_measure(
            reader,
            0,
            at,
            &regions,
            |e| {
                EifError::BuildInput(format!(
                    "an input changed or could not be read while measuring: {e}"
                ))
            },
            |_, _| Ok(()),
        )?;
        Ok(Measurements {
            pcr0: pcrs.pcr0,
            pcr1: pcrs.pcr1,
            pcr2: pcrs.pcr2,
            pcr8: self.signer.as_ref().map(|s| s.pcr8()),
        })
    }

    /// Writes the image to `out` (which must be positioned at its start) in
    /// one pass over the inputs: every byte is hashed as it is written, so
    /// the PCRs (and the PCR0 signature) describe exactly the bytes in the
    /// file even if an input changes meanwhile. The header, whose table and
    /// CRC depend on the signature's size, is written last; the CRC of the
    /// body is combined with the header's (CRC-32 is linear).
    pub fn write_to<W: Write + Seek>(&self, out: &mut W, out_name: &Path) -> Result<BuildOutput> {
        self.check()?;
        let mut plan = vec![
            Plan {
                kind: SectionType::Kernel,
                size: self.kernel.len()?,
                source: PlanSource::Input(&self.kernel),
            },
            Plan {
                kind: SectionType::Cmdline,
                size: self.cmdline.len() as u64,
                source: PlanSource::Owned(self.cmdline.clone()),
            },
        ];
        if let Some(m) = &self.metadata {
            plan.push(Plan {
                kind: SectionType::Metadata,
                size: m.len() as u64,
                source: PlanSource::Owned(m.clone()),
            });
        }
        for r in &self.ramdisks {
            plan.push(Plan {
                kind: SectionType::Ramdisk,
                size: r.len()?,
                source: PlanSource::Input(r),
            });
        }

        let werr = |e| EifError::io(out_name, e);
        out.write_all(&[0u8; HEADER_SIZE]).map_err(werr)?;
        let mut body_crc = crc32fast::Hasher::new();
        // Recipe as in measure.rs: kernel, cmdline, first ramdisk -> PCR0 and
        // PCR1; later ramdisks -> PCR0 and PCR2. The boot sections come first
        // in this layout, so PCR1 is PCR0's state before the second ramdisk.
        let mut p0 = PcrHasher::new();
        let mut p1: Option<PcrHasher> = None;
        let mut p2 = PcrHasher::new();
        let mut ramdisks_seen = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let mut write_section = |kind: SectionType,
                                 size: u64,
                                 src: &mut dyn Read,
                                 name: &Path,
                                 out: &mut W,
                                 hashers: &mut [&mut PcrHasher]|
         -> Result<()> {
            let sh = SectionHeader {
                section_type: kind,
                flags: 0,
                size,
            }
            .to_bytes();
            body_crc.update(&sh);
            out.write_all(&sh).map_err(werr)?;
            let changed = |what: &str| {
                EifError::BuildInput(format!("{}: {what} while building", name.display()))
            };
            let mut left = size;
            while left > 0 {
                let n = (buf.len() as u64).min(left) as usize;
                src.read_exact(&mut buf[..n])
                    .map_err(|e| changed(&format!("shrank or became unreadable ({e})")))?;
                body_crc.update(&buf[..n]);
                for h in hashers.iter_mut() {
                    h.update(&buf[..n]);
                }
                out.write_all(&buf[..n]).map_err(werr)?;
                left -= n as u64;
            }
            let mut probe = [0u8; 1];
            match src.read(&mut probe) {
                Ok(0) => Ok(()),
                Ok(_) => Err(changed("grew")),
                Err(e) => Err(changed(&format!("became unreadable ({e})"))),
            }
        };
        for p in &plan {
            let boot = match p.kind {
                SectionType::Kernel | SectionType::Cmdline => true,
                SectionType::Ramdisk => {
                    ramdisks_seen += 1;
                    ramdisks_seen == 1
                }
                _ => false,
            };
            if p.kind == SectionType::Ramdisk && !boot && p1.is_none() {
                p1 = Some(p0.clone());
            }
            let mut hashers: Vec<&mut PcrHasher> = match (p.kind, boot) {
                (SectionType::Metadata | SectionType::Signature, _) => vec![],
                (_, true) => vec![&mut p0],
                (_, false) => vec![&mut p0, &mut p2],
            };
            match &p.source {
                PlanSource::Owned(b) => {
                    let name = PathBuf::from(format!("<{:?}>", p.kind));
                    write_section(p.kind, p.size, &mut &b[..], &name, out, &mut hashers)?
                }
                PlanSource::Input(inp) => {
                    let mut r = inp.open()?;
                    write_section(p.kind, p.size, &mut r, &inp.name(), out, &mut hashers)?
                }
            }
        }
        let pcr1 = p1.unwrap_or_else(|| p0.clone()).finish();
        let measurements = Measurements {
            pcr0: p0.finish(),
            pcr1,
            pcr2: p2.finish(),
            pcr8: self.signer.as_ref().map(|s| s.pcr8()),
        };
        if let Some(s) = &self.signer {
            let sig = s.signature_section(&measurements.pcr0)?;
            let size = sig.len() as u64;
            write_section(
                SectionType::Signature,
                size,
                &mut &sig[..],
                Path::new("<signature>"),
                out,
                &mut [],
            )?;
            plan.push(Plan {
                kind: SectionType::Signature,
                size,
                source: PlanSource::Owned(Vec::new()),
            });
        }

        let mut header = EifHeader {
            magic: EIF_MAGIC,
            version: CURRENT_VERSION,
            flags: self.arch.flag_bits(),
            default_mem: self.default_mem,
            default_cpus: self.default_cpus,
            reserved: 0,
            num_sections: plan.len() as u16,
            section_offsets: [0; MAX_NUM_SECTIONS],
            section_sizes: [0; MAX_NUM_SECTIONS],
            unused: 0,
            eif_crc32: 0,
        };
        let mut at = HEADER_SIZE as u64;
        for (i, p) in plan.iter().enumerate() {
            header.section_offsets[i] = at;
            header.section_sizes[i] = p.size;
            at += SECTION_HEADER_SIZE as u64 + p.size;
        }
        let total_len = at;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header.to_bytes()[..CRC_FIELD_OFFSET]);
        crc.combine(&body_crc);
        header.eif_crc32 = crc.finalize();
        out.seek(SeekFrom::Start(0)).map_err(werr)?;
        out.write_all(&header.to_bytes()).map_err(werr)?;
        out.seek(SeekFrom::Start(total_len)).map_err(werr)?;
        out.flush().map_err(werr)?;
        Ok(BuildOutput {
            measurements,
            crc: header.eif_crc32,
            len: total_len,
        })
    }

    /// Builds the image in memory.
    pub fn to_vec(&self) -> Result<(Vec<u8>, BuildOutput)> {
        let mut cur = std::io::Cursor::new(Vec::new());
        let out = self.write_to(&mut cur, Path::new("<memory>"))?;
        Ok((cur.into_inner(), out))
    }

    /// Writes the image to `path` atomically: a temporary file in the same
    /// directory, synced, then renamed over `path`. On any failure the
    /// temporary file is removed and `path` is untouched.
    pub fn write_file(&self, path: &Path) -> Result<BuildOutput> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".hermetic-eif-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| EifError::io(&dir, e))?;
        let out = {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            let out = self.write_to(&mut w, path)?;
            w.flush().map_err(|e| EifError::io(path, e))?;
            out
        };
        tmp.as_file()
            .sync_all()
            .map_err(|e| EifError::io(path, e))?;
        tmp.persist(path).map_err(|e| EifError::io(path, e.error))?;
        Ok(out)
    }
}
