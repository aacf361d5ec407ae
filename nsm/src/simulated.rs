//! A simulated NSM for tests, the local demo and development.
//!
//! Its documents have the real NSM's layout byte for byte (see
//! ../shared/vectors/attestation): untagged COSE_Sign1 with protected header
//! `{1: -35}`, a 9-entry payload map in the NSM's key order, 48-byte SHA-384
//! PCRs for every locked PCR (0..16 from boot), `null` for absent optional
//! fields, a 4-certificate cabundle and a leaf valid about 3 hours. They are
//! signed by a local test PKI ([`TestPki`]) whose root is never AWS's, so a
//! verifier accepts them only when told to trust that root.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::digest::{digest, Context, SHA256, SHA384};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_nitro_enclaves_nsm_api::api::Request;
use hermetic_attestation::simulator::{Leaf, TestPki, LEAF_LIFETIME};
use hermetic_attestation::Document;
use serde_bytes::ByteBuf;

use super::{
    AttestationRequest, Measurements, Nsm, NsmDescription, NsmError, PcrDigest, PcrState,
    PkiOrigin, PkiStore,
};
use crate::Clock;

/// PCRs in the bank. AWS's nsm-check (nsm-test/src/bin/nsm-check.rs) asserts
/// `max_pcrs == 32` on real hardware.
pub const SIM_MAX_PCRS: u16 = 32;
/// PCRs `0..16` are locked from boot and cannot be locked again
/// (nsm-check.rs: "PCRs [0..16) should be locked").
const BOOT_LOCKED_PCRS: u16 = 16;
const PCR_LEN: usize = 48;

/// Largest `user_data` accepted: nsm-api docs/attestation_process.md
/// §3.2.2.2 (`user_data`: `$length ∈ [0, 512]`). Real hardware has been seen
/// to sign 1024 bytes (nsm-check.rs sends 1024; vector
/// blocky__nitrite__nitro_attestation carries 1024), but a verifier that
/// follows §3.2.2.2 refuses such a document, so the simulator refuses to
/// make one.
pub const MAX_USER_DATA_LEN: usize = 512;
/// Largest `nonce` accepted: §3.2.2.2 (`nonce`: `$length ∈ [0, 512]`); see
/// [`MAX_USER_DATA_LEN`].
pub const MAX_NONCE_LEN: usize = 512;
/// Largest `public_key` accepted: §3.2.2.2 (`public_key`: `$length ∈
/// [1, 1024]`; an empty key is refused as an invalid argument).
pub const MAX_PUBLIC_KEY_LEN: usize = 1024;
/// The nsm-api driver refuses a CBOR-encoded request longer than this with
/// `InputTooLarge` before it reaches the device (src/driver/mod.rs:
/// `NSM_REQUEST_MAX_SIZE = 0x1000`); the simulator encodes each request the
/// same way and applies the same limit.
pub const NSM_REQUEST_MAX_SIZE: usize = 0x1000;
/// Bytes returned by one `GetRandom`. The API promises only a non-empty byte
/// string; 256 is the simulator's choice.
pub const SIM_RANDOM_LEN: usize = 256;
/// A leaf certificate is reused for later documents until less than this is
/// left of its ~3 h lifetime, so a document is never signed by a leaf about
/// to expire.
pub const LEAF_REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// Real leaves start a few seconds before the first document they sign
/// (vector blocky__nitrite__nitro_attestation: leaf from 14:37:36, document
/// at 14:37:39.545).
const LEAF_BACKDATE_SECS: i64 = 3;

/// How to boot the simulated enclave.
#[derive(Debug, Clone, Default)]
pub struct SimulatorOptions {
    /// PCR0/1/2 (and 8) of a real image; without them placeholder values
    /// are used.
    pub measurements: Option<Measurements>,
    /// Boot in debug mode: PCR0, PCR1 and PCR2 read as zeros, as on real
    /// hardware (DESIGN.md, "Debug mode zeroes 0–2").
    pub debug_mode: bool,
}

struct Pcr {
    locked: bool,
    value: [u8; PCR_LEN],
}

struct CurrentLeaf {
    leaf: Leaf,
    not_before: i64,
    not_after: i64,
}

struct State {
    pcrs: Vec<Pcr>,
    leaf: Option<CurrentLeaf>,
}

/// The simulated NSM. Thread-safe; every request takes one lock.
pub struct SimulatedNsm {
    module_id: String,
    pki: TestPki,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    state: Mutex<State>,
}

impl std::fmt::Debug for SimulatedNsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedNsm")
            .field("module_id", &self.module_id)
            .finish_non_exhaustive()
    }
}

fn extend(old: &[u8], data: &[u8]) -> [u8; PCR_LEN] {
    let mut ctx = Context::new(&SHA384);
    ctx.update(old);
    ctx.update(data);
    let mut out = [0u8; PCR_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn encoded_len(request: &Request) -> usize {
    let mut buf = Vec::new();
    // Encoding a `Request` into a Vec cannot fail; if it ever did, count the
    // request as too large rather than let it through.
    match ciborium::into_writer(request, &mut buf) {
        Ok(()) => buf.len(),
        Err(_) => usize::MAX,
    }
}

impl SimulatedNsm {
    /// Boots a simulated enclave whose PKI lives in `pki_dir` (generated on
    /// first use, see [`PkiStore`]).
    pub fn open(
        pki_dir: &Path,
        options: SimulatorOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, PkiOrigin), NsmError> {
        let (pki, origin) = PkiStore::new(pki_dir).load_or_generate(clock.now_secs())?;
        Ok((Self::with_pki(pki, options, clock)?, origin))
    }

    /// Boots a simulated enclave signing with `pki`.
    pub fn with_pki(
        pki: TestPki,
        options: SimulatorOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NsmError> {
        let rng = SystemRandom::new();
        // Real instance IDs are `i-` and 17 hex digits; ours is fixed per PKI
        // so the same directory always names the same "instance".
        let root_hash = digest(&SHA256, pki.root_der());
        let instance_id = format!("i-0{}", &hex::encode(root_hash.as_ref())[..16]);
        // Real enclave IDs are `enc` + the boot time in ms as 12 hex digits +
        // 4 more (vector blocky__nitrite__nitro_attestation: enc0191cceb4289903f
        // and 0x0191cceb4289 ms = 2024-09-07T14:37:35.753Z, 4 s before its
        // document).
        let mut tail = [0u8; 2];
        rng.fill(&mut tail)
            .map_err(|_| NsmError::SimulatorSigning("the system RNG failed".into()))?;
        let boot_ms = clock.now_ms() & 0xffff_ffff_ffff;
        let module_id = format!("{instance_id}-enc{boot_ms:012x}{}", hex::encode(tail));

        let zero = [0u8; PCR_LEN];
        let mut pcrs: Vec<Pcr> = (0..SIM_MAX_PCRS)
            .map(|i| Pcr {
                locked: i < BOOT_LOCKED_PCRS,
                value: zero,
            })
            .collect();
        for (i, pcr) in pcrs.iter_mut().enumerate().take(3) {
            pcr.value = extend(&zero, format!("hermetic simulated PCR{i}").as_bytes());
        }
        if let Some(m) = &options.measurements {
            for (index, value) in m.pcrs() {
                pcrs[usize::from(*index)].value = *value;
            }
        }
        // PCR3 (parent's IAM role) stays zero: no role. PCR4 measures the
        // parent instance ID.
        pcrs[4].value = extend(&zero, instance_id.as_bytes());
        if options.debug_mode {
            for pcr in &mut pcrs[..3] {
                pcr.value = zero;
            }
        }
        Ok(SimulatedNsm {
            module_id,
            pki,
            clock,
            rng,
            state: Mutex::new(State { pcrs, leaf: None }),
        })
    }

    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    /// The root a verifier must trust to accept this NSM's documents.
    pub fn root_pem(&self) -> String {
        self.pki.root_pem()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the PCR bank half
        // written (every update is one assignment), so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pcr_index(index: u16) -> Result<usize, NsmError> {
        if index < SIM_MAX_PCRS {
            Ok(usize::from(index))
        } else {
            Err(NsmError::InvalidIndex { index })
        }
    }

    fn ensure_leaf<'a>(&self, state: &'a mut State, now: i64) -> Result<&'a Leaf, NsmError> {
        let margin = i64::try_from(LEAF_REFRESH_MARGIN.as_secs()).unwrap_or(i64::MAX);
        let fresh = state
            .leaf
            .as_ref()
            .is_some_and(|l| l.not_before <= now && now.saturating_add(margin) < l.not_after);
        if !fresh {
            let not_before = now - LEAF_BACKDATE_SECS;
            let not_after = now + i64::try_from(LEAF_LIFETIME.as_secs()).unwrap_or(i64::MAX);
            let leaf = self
                .pki
                .issue_leaf(&self.module_id, not_before, not_after)
                .map_err(|e| NsmError::SimulatorSigning(e.to_string()))?;
            state.leaf = Some(CurrentLeaf {
                leaf,
                not_before,
                not_after,
            });
        }
        state
            .leaf
            .as_ref()
            .map(|l| &l.leaf)
            .ok_or_else(|| NsmError::SimulatorSigning("no leaf certificate".into()))
    }
}

fn check_len(
    field: &Option<Vec<u8>>,
    min: usize,
    max: usize,
    request: &'static str,
) -> Result<(), NsmError> {
    match field {
        Some(v) if v.len() > max => Err(NsmError::InputTooLarge { request }),
        Some(v) if v.len() < min => Err(NsmError::InvalidArgument { request }),
        _ => Ok(()),
    }
}

impl Nsm for SimulatedNsm {
    fn attestation(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        const REQ: &str = "Attestation";
        check_len(&request.user_data, 0, MAX_USER_DATA_LEN, REQ)?;
        check_len(&request.nonce, 0, MAX_NONCE_LEN, REQ)?;
        check_len(&request.public_key, 1, MAX_PUBLIC_KEY_LEN, REQ)?;
        let buf = |v: &Option<Vec<u8>>| v.as_ref().map(|b| ByteBuf::from(b.as_slice()));
        let wire = Request::Attestation {
            user_data: buf(&request.user_data),
            nonce: buf(&request.nonce),
            public_key: buf(&request.public_key),
        };
        if encoded_len(&wire) > NSM_REQUEST_MAX_SIZE {
            return Err(NsmError::InputTooLarge { request: REQ });
        }

        let now_ms = self.clock.now_ms();
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let mut state = self.state();
        // The document carries every locked PCR (attestation_process.md
        // §2.2: "map of all locked PCRs at the moment the attestation
        // document was generated").
        let pcrs: BTreeMap<u8, Vec<u8>> = state
            .pcrs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.locked)
            .filter_map(|(i, p)| Some((u8::try_from(i).ok()?, p.value.to_vec())))
            .collect();
        let leaf = self.ensure_leaf(&mut state, now)?;
        let document = Document {
            module_id: self.module_id.clone(),
            digest: "SHA384".into(),
            timestamp_ms: now_ms,
            pcrs,
            certificate: leaf.der.clone(),
            cabundle: self.pki.cabundle(),
            public_key: request.public_key.clone(),
            user_data: request.user_data.clone(),
            nonce: request.nonce.clone(),
            unknown_fields: Vec::new(),
        };
        leaf.sign(&document)
            .map_err(|e| NsmError::SimulatorSigning(e.to_string()))
    }

    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError> {
        let i = Self::pcr_index(index)?;
        let state = self.state();
        Ok(PcrState {
            locked: state.pcrs[i].locked,
            data: state.pcrs[i].value.to_vec(),
        })
    }

    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError> {
        let i = Self::pcr_index(index)?;
        let wire = Request::ExtendPCR {
            index,
            data: data.to_vec(),
        };
        if encoded_len(&wire) > NSM_REQUEST_MAX_SIZE {
            return Err(NsmError::InputTooLarge {
                request: "ExtendPCR",
            });
        }
        let mut state = self.state();
        let pcr = &mut state.pcrs[i];
        if pcr.locked {
            return Err(NsmError::PcrLocked { index });
        }
        pcr.value = extend(&pcr.value, data);
        Ok(pcr.value.to_vec())
    }

    fn lock_pcr(&self, index: u16) -> Result<(), NsmError> {
        let i = Self::pcr_index(index)?;
        let mut state = self.state();
        let pcr = &mut state.pcrs[i];
        // nsm-check.rs: locking an already locked PCR (0..16) is an error.
        if pcr.locked {
            return Err(NsmError::PcrLocked { index });
        }
        pcr.locked = true;
        Ok(())
    }

    fn lock_pcrs(&self, range: u16) -> Result<(), NsmError> {
        // nsm-check.rs: `range == max_pcrs` succeeds, `max_pcrs + 1` fails.
        if range > SIM_MAX_PCRS {
            return Err(NsmError::InvalidIndex { index: range });
        }
        let mut state = self.state();
        for pcr in &mut state.pcrs[..usize::from(range)] {
            pcr.locked = true;
        }
        Ok(())
    }

    fn describe_nsm(&self) -> Result<NsmDescription, NsmError> {
        let state = self.state();
        Ok(NsmDescription {
            // The real NSM's version numbers are not documented; the
            // simulator reports 1.0.0.
            version: (1, 0, 0),
            module_id: self.module_id.clone(),
            max_pcrs: SIM_MAX_PCRS,
            locked_pcrs: (0..SIM_MAX_PCRS)
                .filter(|i| state.pcrs[usize::from(*i)].locked)
                .collect(),
            digest: PcrDigest::Sha384,
        })
    }

    fn get_random(&self) -> Result<Vec<u8>, NsmError> {
        let mut out = vec![0u8; SIM_RANDOM_LEN];
        self.rng.fill(&mut out).map_err(|_| NsmError::Internal {
            request: "GetRandom",
        })?;
        Ok(out)
    }
}
