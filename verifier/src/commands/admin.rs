//! The client subcommands: `owner` (keys), `secret` and `policy` (through
//! the admin API) and `change` (propose, sign offline, submit).
//!
//! Exit codes: 0 done, 1 refused or invalid (the reason is printed), 2 usage
//! or I/O (a missing file, an unreachable service).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aws_lc_rs::rand::SystemRandom;
use base64::Engine as _;
use clap::{Args, Subcommand};
use hermetic_approval::{key_label, OwnerSet, Signer, StatementFile, MAX_FILE_LEN};
use hermetic_envelope::Zeroizing;
use hermetic_verifier::client::change::{self, Proposal, ProposeError};
use hermetic_verifier::client::identity::attest_verifier;
use hermetic_verifier::client::{AdminClient, ClientError};
use hermetic_verifier::policy::PolicyFile;
use hermetic_verifier::service::ChangeApplied;

/// A failed command: its exit code and message.
struct Failure {
    code: u8,
    message: String,
}

/// Refused or invalid: exit 1.
fn refused(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        message: message.to_string(),
    }
}

/// Usage or I/O: exit 2.
fn io(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 2,
        message: message.to_string(),
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { .. } => refused(e),
            ClientError::Transport { .. } | ClientError::Unexpected { .. } => io(e),
        }
    }
}

type Outcome = Result<(), Failure>;

fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("hermetic-verifier: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run_client(f: impl std::future::Future<Output = Outcome>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return finish(Err(io(format!("cannot start the runtime: {e}")))),
    };
    finish(runtime.block_on(f))
}

#[derive(Args)]
pub struct AdminArgs {
    /// Base URL of the admin API.
    #[arg(
        long,
        env = "HERMETIC_ADMIN_URL",
        default_value = "http://127.0.0.1:8444"
    )]
    admin_url: String,
    /// File holding an admin bearer token (e.g. DATA_DIR/admin.token).
    #[arg(long, env = "HERMETIC_ADMIN_TOKEN_FILE", value_name = "FILE")]
    token_file: PathBuf,
    #[command(flatten)]
    pins: VerifierPinArgs,
}

/// Checking the verifier's attested identity before anything is sent.
#[derive(Args, Clone, Default)]
pub struct VerifierPinArgs {
    /// The verifier's public (attested TLS) listener, HOST:PORT.
    #[arg(
        long = "verifier",
        value_name = "HOST:PORT",
        requires = "verifier_measurements"
    )]
    verifier: Option<String>,
    /// Pin the verifier enclave's measurements (`hermetic-eif describe`
    /// JSON of its image, or a policy file's measurement sets): before any
    /// admin call, the verifier at --verifier must prove, by its attestation
    /// document, that it runs that image (not in debug mode) and holds the
    /// TLS key it presents; the admin API's intake key must be the attested
    /// one, and values are sealed only to it. Refused: exit 1 with the
    /// reason (verifier_measurements_mismatch, verifier_debug_mode,
    /// verifier_key_not_bound, verifier_attestation_stale, ...).
    #[arg(long, value_name = "FILE", requires = "verifier")]
    verifier_measurements: Option<PathBuf>,
    /// Trust this root (PEM) for the verifier's documents INSTEAD of the
    /// pinned AWS root: a simulated verifier. Repeatable. Only in builds
    /// with the `test-roots` feature.
    #[cfg_attr(not(feature = "test-roots"), arg(hide = true))]
    #[arg(long, value_name = "PEM", requires = "verifier_measurements")]
    verifier_root: Vec<PathBuf>,
}

impl VerifierPinArgs {
    /// The attested intake key, after checking the verifier (`None` when
    /// nothing is pinned).
    async fn attest(&self) -> Result<Option<[u8; 32]>, Failure> {
        let (Some(addr), Some(file)) = (&self.verifier, &self.verifier_measurements) else {
            return Ok(None);
        };
        let (pins, roots) = hermetic_verifier::client::identity::load_pins(
            file,
            &self.verifier_root,
            "--verifier-root",
        )
        .map_err(io)?;
        let identity = attest_verifier(addr, &pins, roots, std::time::Duration::from_secs(30))
            .await
            .map_err(|e| Failure {
                code: e.exit_code(),
                message: e.to_string(),
            })?;
        Ok(Some(identity.intake_key))
    }
}

/// An admin client; with pinned measurements, only after the verifier's
/// identity verified and its admin API's intake key is the attested one.
async fn checked_client(
    admin_url: &str,
    token_file: &Path,
    pins: &VerifierPinArgs,
) -> Result<AdminClient, Failure> {
    let token = std::fs::read_to_string(token_file)
        .map_err(|e| io(format!("--token-file {}: {e}", token_file.display())))?;
    let client = AdminClient::new(admin_url, token.trim());
    match pins.attest().await? {
        None => Ok(client),
        Some(intake) => {
            let client = client.with_attested_intake(intake);
            let info = client.deployment().await?;
            let identity_key = base64::engine::general_purpose::STANDARD.encode(intake);
            if info.intake_public_key != identity_key {
                return Err(refused(
                    hermetic_verifier::client::identity::AttestError::IntakeKeyMismatch {
                        admin: info.intake_public_key,
                        attested: identity_key,
                    },
                ));
            }
            Ok(client)
        }
    }
}

impl AdminArgs {
    async fn client(&self) -> Result<AdminClient, Failure> {
        checked_client(&self.admin_url, &self.token_file, &self.pins).await
    }
}

// ---------------------------------------------------------------- owner

#[derive(Subcommand)]
pub enum OwnerCommand {
    /// Generate an owner's Ed25519 signing key. Writes the private key to
    /// KEY (mode 0600, never overwritten) and prints the public verifier key
    /// (NAME+KEYID+BASE64, the C2SP signed-note form) on standard output:
    /// that string is what `secret create --owner` takes.
    Keygen {
        /// File to create for the private key.
        #[arg(long, value_name = "KEY")]
        out: PathBuf,
        /// The key's name, shown in signatures and the audit log
        /// (`NAME+KEYID`): 1 to 64 ASCII letters, digits and punctuation
        /// other than '+', '"' and '\'.
        #[arg(long, default_value = "owner")]
        name: String,
    },
}

pub fn owner(cmd: OwnerCommand) -> ExitCode {
    match cmd {
        OwnerCommand::Keygen { out, name } => finish(keygen(&out, &name)),
    }
}

fn keygen(out: &Path, name: &str) -> Outcome {
    hermetic_approval::check_owner_name(name).map_err(|e| io(format!("--name {name:?}: {e}")))?;
    let signer = Signer::generate(name).map_err(|e| refused(format!("--name {name:?}: {e}")))?;
    change::write_private_key(out, &signer)
        .map_err(|e| io(format!("--out {}: {e}", out.display())))?;
    println!("{}", signer.verifier_key());
    Ok(())
}

fn load_signer(path: &Path) -> Result<Signer, Failure> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| io(format!("--key {}: {e}", path.display())))?,
    );
    Signer::from_private_key(text.trim()).map_err(|e| {
        refused(format!(
            "--key {}: not an owner private key ({e})",
            path.display()
        ))
    })
}

// ---------------------------------------------------------------- secret

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Create a secret with its owner set (the admin token can do this, and
    /// only this: every later change needs K of these owners).
    Create {
        /// Secret name (A-Z, a-z, 0-9, '-', '_', '.'; at most 128).
        name: String,
        /// An owner's verifier key (as `owner keygen` prints). Repeatable.
        #[arg(long = "owner", value_name = "PUBKEY", required = true)]
        owners: Vec<String>,
        /// How many distinct owners must sign each change (1..=owners).
        #[arg(long, value_name = "K")]
        threshold: u32,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// One owner's shortcut (threshold 1): propose a value change, sign it
    /// with KEY and submit it. The value is sealed to the verifier's intake
    /// key before it leaves this process.
    Put {
        /// Name of an existing secret.
        name: String,
        /// File holding the value, or - for standard input.
        #[arg(long, value_name = "FILE")]
        value_file: PathBuf,
        /// The owner's private key (`owner keygen --out`).
        #[arg(long = "sign", value_name = "KEY")]
        sign: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List secrets: names, value versions, change version, owners (never values).
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show one secret: owners, threshold, change version, value versions.
    Show {
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

pub fn secret(cmd: SecretCommand) -> ExitCode {
    run_client(async move {
        match cmd {
            SecretCommand::Create {
                name,
                owners,
                threshold,
                admin,
            } => {
                let created = admin
                    .client()
                    .await?
                    .create_secret(&name, &owners, threshold)
                    .await?;
                println!(
                    "{} created: {} of {} owners, version {}",
                    created.name,
                    created.threshold,
                    created.owners.len(),
                    created.version
                );
            }
            SecretCommand::Put {
                name,
                value_file,
                sign,
                admin,
            } => {
                let key = sign.ok_or_else(|| {
                    io("a value changes only by a statement its owners sign: pass --sign KEY (one owner, threshold 1) or use `change propose value`")
                })?;
                let signer = load_signer(&key)?;
                let value = read_value(&value_file)?;
                let client = admin.client().await?;
                let applied =
                    propose_sign_submit(&client, Proposal::Value { name, value }, &signer).await?;
                println!(
                    "{} value version {} (change version {})",
                    applied.name,
                    applied.value_version.unwrap_or_default(),
                    applied.version
                );
            }
            SecretCommand::List { admin } => {
                for s in admin.client().await?.list_secrets().await? {
                    let policy = if s.has_policy { "policy" } else { "NO POLICY" };
                    println!(
                        "{}\tlatest {}\tversions {:?}\t{policy}\tversion {}\towners {} of {}",
                        s.name,
                        s.latest_version,
                        s.versions,
                        s.version,
                        s.threshold,
                        s.owners.len()
                    );
                }
            }
            SecretCommand::Show { name, admin } => {
                let s = admin.client().await?.secret_info(&name).await?;
                println!("name: {}", s.name);
                println!("version: {}", s.version);
                println!("threshold: {} of {}", s.threshold, s.owners.len());
                for owner in &s.owners {
                    println!("owner: {owner}");
                }
                println!("value versions: {:?}", s.versions);
                println!("policy: {}", if s.has_policy { "yes" } else { "no" });
            }
        }
        Ok(())
    })
}

/// Reads a value into a wiped buffer.
fn read_value(path: &Path) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut buf = Zeroizing::new(Vec::new());
    let result = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf))
    };
    result.map_err(|e| io(format!("--value-file {}: {e}", path.display())))?;
    if buf.is_empty() {
        return Err(refused("the value is empty"));
    }
    Ok(buf)
}

// ---------------------------------------------------------------- policy

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// One owner's shortcut (threshold 1): for NAME (or every
    /// [secrets.NAME] in the file) propose a policy change, sign it with KEY
    /// and submit it.
    Put {
        /// The secret whose [secrets.NAME] stanza to put.
        name: Option<String>,
        /// A policy file in the shared format (`hermetic-eif policy` writes it).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The owner's private key (`owner keygen --out`).
        #[arg(long = "sign", value_name = "KEY")]
        sign: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Print the policy of NAME (TOML).
    Get {
        /// Name of the secret.
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List the names that have a policy.
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

fn read_policy_file(file: &Path) -> Result<(String, PolicyFile), Failure> {
    let text =
        std::fs::read_to_string(file).map_err(|e| io(format!("--file {}: {e}", file.display())))?;
    let parsed =
        PolicyFile::parse(&text).map_err(|e| refused(format!("{}: {e}", file.display())))?;
    Ok((text, parsed))
}

pub fn policy(cmd: PolicyCommand) -> ExitCode {
    run_client(async move {
        match cmd {
            PolicyCommand::Put {
                name,
                file,
                sign,
                admin,
            } => {
                let key = sign.ok_or_else(|| {
                    io("policies change only by statements the secret's owners sign: pass --sign KEY (one owner, threshold 1) or use `change propose policy`")
                })?;
                let signer = load_signer(&key)?;
                let (text, parsed) = read_policy_file(&file)?;
                let names: Vec<String> = match name {
                    Some(n) => vec![n],
                    None => parsed.secrets.keys().cloned().collect(),
                };
                let client = admin.client().await?;
                for name in names {
                    let proposal = Proposal::Policy {
                        name: name.clone(),
                        toml: text.clone(),
                    };
                    let applied = propose_sign_submit(&client, proposal, &signer)
                        .await
                        .map_err(|f| Failure {
                            message: format!("{name}: {}", f.message),
                            ..f
                        })?;
                    println!("policy {name} applied (version {})", applied.version);
                }
            }
            PolicyCommand::Get { name, admin } => {
                print!("{}", admin.client().await?.get_policy(&name).await?);
            }
            PolicyCommand::List { admin } => {
                for n in admin.client().await?.list_policies().await? {
                    println!("{n}");
                }
            }
        }
        Ok(())
    })
}

// ---------------------------------------------------------------- change

#[derive(Subcommand)]
pub enum ChangeCommand {
    /// Write an unsigned change statement to --out, for the owners to sign.
    /// The deployment id and the next version are asked from the service
    /// (or given with --deployment and --version: then a policy, owners or
    /// delete statement needs no network). A value is sealed to the
    /// service's intake key: the file never holds it in the clear.
    #[command(subcommand)]
    Propose(ProposeCommand),
    /// Add this owner's signature to STATEMENT (replaced atomically). Checks
    /// first that the content is what the statement names and valid for its
    /// action, and prints what is being signed. Needs no network.
    Sign {
        /// The statement file.
        statement: PathBuf,
        /// The owner's private key (`owner keygen --out`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Send STATEMENT to the service. Exit 0 applied, 1 refused (the reason
    /// is printed: not_enough_approvals, unknown_owner, stale_version,
    /// bad_signature, wrong_deployment, content_mismatch, ...), 2 usage/I/O.
    Submit {
        /// The statement file.
        statement: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand)]
pub enum ProposeCommand {
    /// Replace NAME's release policy with its [secrets.NAME] stanza in FILE.
    Policy {
        name: String,
        /// A policy file in the shared format.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        common: ProposeArgs,
    },
    /// Store a new value of NAME (read from FILE, - for standard input).
    Value {
        name: String,
        #[arg(long, value_name = "FILE")]
        value_file: PathBuf,
        #[command(flatten)]
        common: ProposeArgs,
    },
    /// Replace NAME's owner set.
    Owners {
        name: String,
        /// A new owner's verifier key. Repeatable.
        #[arg(long = "owner", value_name = "PUBKEY", required = true)]
        owners: Vec<String>,
        /// How many distinct owners must sign each later change.
        #[arg(long, value_name = "K")]
        threshold: u32,
        #[command(flatten)]
        common: ProposeArgs,
    },
    /// Delete NAME: every value version, its policy and its owners.
    Delete {
        name: String,
        #[command(flatten)]
        common: ProposeArgs,
    },
}

#[derive(Args)]
pub struct ProposeArgs {
    /// Where to write the statement file (replaced atomically).
    #[arg(long, value_name = "STATEMENT")]
    out: PathBuf,
    /// The deployment id (default: asked from the service).
    #[arg(long, value_name = "ID", requires = "version")]
    deployment: Option<String>,
    /// The statement's version (default: the secret's current version + 1,
    /// asked from the service).
    #[arg(long, value_name = "N", requires = "deployment")]
    version: Option<u64>,
    /// Base URL of the admin API.
    #[arg(
        long,
        env = "HERMETIC_ADMIN_URL",
        default_value = "http://127.0.0.1:8444"
    )]
    admin_url: String,
    /// File holding an admin bearer token (needed unless --deployment and
    /// --version are given for a policy, owners or delete statement).
    #[arg(long, env = "HERMETIC_ADMIN_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    pins: VerifierPinArgs,
}

pub fn change(cmd: ChangeCommand) -> ExitCode {
    match cmd {
        ChangeCommand::Propose(what) => run_client(propose(what)),
        ChangeCommand::Sign { statement, key } => finish(sign(&statement, &key)),
        ChangeCommand::Submit { statement, admin } => run_client(async move {
            let file = read_statement(&statement)?;
            let applied = admin.client().await?.submit_change(&file).await?;
            print_applied(&applied);
            Ok(())
        }),
    }
}

async fn propose(what: ProposeCommand) -> Outcome {
    let (proposal, common) = match what {
        ProposeCommand::Policy { name, file, common } => {
            let (toml, _) = read_policy_file(&file)?;
            (Proposal::Policy { name, toml }, common)
        }
        ProposeCommand::Value {
            name,
            value_file,
            common,
        } => {
            let value = read_value(&value_file)?;
            (Proposal::Value { name, value }, common)
        }
        ProposeCommand::Owners {
            name,
            owners,
            threshold,
            common,
        } => {
            let owners = OwnerSet::from_strings(&owners, threshold)
                .map_err(|e| refused(format!("invalid_owner_set: {e}")))?;
            (Proposal::Owners { name, owners }, common)
        }
        ProposeCommand::Delete { name, common } => (Proposal::Delete { name }, common),
    };
    let needs_service = matches!(proposal, Proposal::Value { .. }) || common.version.is_none();
    let file = if needs_service {
        let token_file = common.token_file.as_ref().ok_or_else(|| {
            io("--token-file (or HERMETIC_ADMIN_TOKEN_FILE) is needed to ask the service for the deployment, version and intake key")
        })?;
        let client = checked_client(&common.admin_url, token_file, &common.pins).await?;
        build(
            &client,
            &proposal,
            common.deployment.as_deref(),
            common.version,
        )
        .await?
    } else {
        let deployment = common.deployment.as_deref().unwrap_or_default();
        let version = common.version.unwrap_or_default();
        change::propose(&proposal, deployment, version, None, &SystemRandom::new())
            .map_err(refused)?
    };
    change::write_atomic(&common.out, file.to_json().as_bytes())
        .map_err(|e| io(format!("--out {}: {e}", common.out.display())))?;
    let statement = hermetic_approval::statement_of(file.statement.as_bytes()).map_err(refused)?;
    println!(
        "{}: {} {} version {} for deployment {}; sign it with `hermetic-verifier change sign {} --key KEY`",
        common.out.display(),
        statement.action,
        statement.secret,
        statement.version,
        statement.deployment,
        common.out.display()
    );
    Ok(())
}

/// Asks the service for what the statement must name, then builds it.
async fn build(
    client: &AdminClient,
    proposal: &Proposal,
    deployment: Option<&str>,
    version: Option<u64>,
) -> Result<StatementFile, Failure> {
    client
        .propose(proposal, deployment, version)
        .await
        .map_err(|e| match e {
            ProposeError::Client(c) => Failure::from(c),
            other => refused(other),
        })
}

fn read_statement(path: &Path) -> Result<StatementFile, Failure> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_LEN as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| io(format!("{}: {e}", path.display())))?;
    StatementFile::from_json(&bytes)
        .map_err(|e| refused(format!("{}: {}: {e}", path.display(), e.reason())))
}

fn sign(path: &Path, key: &Path) -> Outcome {
    let file = read_statement(path)?;
    let signer = load_signer(key)?;
    let (signed, statement) =
        change::sign(&file, &signer).map_err(|e| refused(format!("{}: {e}", path.display())))?;
    change::write_atomic(path, signed.to_json().as_bytes())
        .map_err(|e| io(format!("{}: {e}", path.display())))?;
    print!("{}", change::describe(&signed, &statement));
    println!(
        "signed by {} ({} signature line(s))",
        key_label(&signer.verifier_key()),
        signed.statement.matches("\n\u{2014} ").count()
    );
    Ok(())
}

async fn propose_sign_submit(
    client: &AdminClient,
    proposal: Proposal,
    signer: &Signer,
) -> Result<ChangeApplied, Failure> {
    let file = build(client, &proposal, None, None).await?;
    let (signed, _) = change::sign(&file, signer).map_err(refused)?;
    Ok(client.submit_change(&signed).await?)
}

fn print_applied(applied: &ChangeApplied) {
    let mut line = format!(
        "applied: {} {} version {}",
        applied.action, applied.name, applied.version
    );
    if let Some(v) = applied.value_version {
        line.push_str(&format!(" (value version {v})"));
    }
    if !applied.deleted_versions.is_empty() {
        line.push_str(&format!(
            " (deleted value versions {:?})",
            applied.deleted_versions
        ));
    }
    line.push_str(&format!(
        "; approved by {}; statement sha256 {}",
        applied.approvers.join(", "),
        applied.statement_sha256
    ));
    println!("{line}");
}
