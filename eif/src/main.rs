//! `hermetic-eif` CLI: parses arguments, calls the library, prints.
//! Exit codes: 0 success / match, 1 PCR mismatch, 2 usage, I/O or format error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hermetic_eif::{
    check, load_expectation, policy_stanza, read_eif, report, Arch, EifBuilder, EifError, Input,
    ReadOptions, Signer,
};

#[derive(Parser)]
#[command(
    name = "hermetic-eif",
    version,
    about = "Read, measure, check and build AWS Nitro Enclave Image Files"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate an EIF and print its header, sections and PCRs (nitro-cli describe-eif).
    Describe {
        image: PathBuf,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Report a CRC or signature failure instead of exiting with an error.
        #[arg(long)]
        lenient: bool,
    },
    /// Compare an EIF's PCRs with a describe JSON or a verifier policy TOML.
    Check {
        image: PathBuf,
        /// describe JSON (ours or nitro-cli's) or verifier policy TOML.
        #[arg(long)]
        expect: PathBuf,
        /// Only consider this secret of a policy file.
        #[arg(long)]
        secret: Option<String>,
    },
    /// PCR of a file's bytes, or PCR8 of a signing certificate (nitro-cli pcr).
    Pcr {
        #[arg(
            long,
            conflicts_with = "signing_certificate",
            required_unless_present = "signing_certificate"
        )]
        input: Option<PathBuf>,
        #[arg(long)]
        signing_certificate: Option<PathBuf>,
    },
    /// Print a verifier policy stanza that allows exactly this image.
    Policy {
        image: PathBuf,
        #[arg(long, default_value = "default")]
        secret: String,
    },
    /// Build an EIF (atomically: temp file + rename).
    Build {
        #[arg(long)]
        kernel: PathBuf,
        /// Kernel command line.
        #[arg(
            long,
            conflicts_with = "cmdline_file",
            required_unless_present = "cmdline_file"
        )]
        cmdline: Option<String>,
        /// Read the kernel command line from a file, verbatim.
        #[arg(long)]
        cmdline_file: Option<PathBuf>,
        /// Ramdisk (repeat, in order; the first one goes to PCR1, the rest to PCR2).
        #[arg(long, required = true)]
        ramdisk: Vec<PathBuf>,
        #[arg(long, requires = "sign_cert")]
        sign_key: Option<PathBuf>,
        #[arg(long, requires = "sign_key")]
        sign_cert: Option<PathBuf>,
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
        /// JSON file embedded verbatim as the metadata section.
        #[arg(long, conflicts_with = "no_metadata")]
        metadata: Option<PathBuf>,
        /// Omit the metadata section.
        #[arg(long)]
        no_metadata: bool,
        #[arg(long)]
        output: PathBuf,
    },
}

fn read_file(p: &PathBuf) -> Result<Vec<u8>, EifError> {
    std::fs::read(p).map_err(|e| EifError::Io {
        path: p.clone(),
        source: e,
    })
}

fn json_out(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn run(cli: Cli) -> Result<u8, EifError> {
    match cli.cmd {
        Cmd::Describe {
            image,
            format,
            lenient,
        } => {
            let opts = if lenient {
                ReadOptions::lenient()
            } else {
                ReadOptions::default()
            };
            let img = read_eif(&image, opts)?;
            match format {
                Format::Json => println!("{}", json_out(&report::describe(&img))),
                Format::Text => print!("{}", report::describe_text(&img)),
            }
            Ok(0)
        }
        Cmd::Check {
            image,
            expect,
            secret,
        } => {
            let exp = load_expectation(&expect)?;
            let img = read_eif(&image, ReadOptions::default())?;
            let rep = check(&img.measurements, &exp, secret.as_deref())?;
            print!("{rep}");
            Ok(if rep.matched() { 0 } else { 1 })
        }
        Cmd::Pcr {
            input,
            signing_certificate,
        } => {
            let mut out = std::collections::BTreeMap::new();
            if let Some(cert) = signing_certificate {
                let pcr = hermetic_eif::pcr8_of_pem(&read_file(&cert)?)?;
                out.insert("PCR8", hex::encode(pcr));
            } else if let Some(input) = input {
                out.insert(
                    "PCR",
                    hex::encode(hermetic_eif::pcr_of_bytes(&read_file(&input)?)),
                );
            }
            println!("{}", json_out(&out));
            Ok(0)
        }
        Cmd::Policy { image, secret } => {
            let img = read_eif(&image, ReadOptions::default())?;
            print!("{}", policy_stanza(&img.measurements, &secret)?);
            Ok(0)
        }
        Cmd::Build {
            kernel,
            cmdline,
            cmdline_file,
            ramdisk,
            sign_key,
            sign_cert,
            arch,
            metadata,
            no_metadata,
            output,
        } => {
            let cmdline = match (cmdline, cmdline_file) {
                (Some(c), _) => c.into_bytes(),
                (None, Some(f)) => read_file(&f)?,
                (None, None) => Vec::new(),
            };
            let mut b = EifBuilder::new(Input::File(kernel), cmdline).arch(arch);
            for r in ramdisk {
                b = b.ramdisk(Input::File(r));
            }
            if no_metadata {
                b = b.metadata(None);
            } else if let Some(m) = metadata {
                b = b.metadata(Some(read_file(&m)?));
            }
            if let (Some(k), Some(c)) = (sign_key, sign_cert) {
                b = b.signer(Signer::from_pem(&read_file(&k)?, &read_file(&c)?)?);
            }
            let out = b.write_file(&output)?;
            let v = serde_json::json!({ "Measurements": out.measurements.to_json() });
            println!("{}", json_out(&v));
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("hermetic-eif: error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
