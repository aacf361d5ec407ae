//! Genesis: the master key is made, split K-of-N, and each share sealed to one custodian.
//! The [`GenesisRecord`] is public: the verifier stores and prints it; custodians read it.

use aws_lc_rs::rand::SecureRandom;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hermetic_envelope::{open_bound, seal_bound, SealedValue, ENC_LEN, TAG_LEN};
use serde::{Deserialize, Serialize};

use crate::binding;
use crate::key::{CustodianKey, CustodianPublicKey, MasterKey, MASTER_KEY_LEN};
use crate::rng::random;
use crate::shamir::{self, Share};
use crate::Error;

/// Most custodians in one genesis.
pub const MAX_CUSTODIANS: usize = 16;

/// Longest deployment id.
pub const MAX_DEPLOYMENT_LEN: usize = 256;

/// The `format` field of a genesis record.
pub const GENESIS_FORMAT: &str = "hermetic-genesis/v1";

const SEALED_SHARE_LEN: usize = MASTER_KEY_LEN + TAG_LEN;

/// What a genesis is asked for.
#[derive(Debug, Clone)]
pub struct GenesisParams {
    /// The verifier deployment's id (printable ASCII, 1..=[`MAX_DEPLOYMENT_LEN`]).
    pub deployment: String,
    /// The custodians, in share order (share `i` goes to `custodians[i - 1]`).
    pub custodians: Vec<CustodianPublicKey>,
    /// K: how many custodians restore the key.
    pub threshold: u8,
    /// Allows K = 1 (one custodian alone restores the key): development only.
    pub allow_single_custodian: bool,
}

/// One custodian's share, sealed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedShare {
    /// Share index, 1..=N.
    pub index: u8,
    /// Whose share it is.
    pub custodian: CustodianPublicKey,
    /// HPKE-sealed share bytes, bound to (deployment, genesis id, K, index, custodian key).
    pub sealed: SealedValue,
    /// The share's check value (HMAC-SHA256 keyed by the share; see the crate docs).
    pub check: [u8; 32],
}

/// The public outcome of a genesis. Always valid: built by [`genesis`] or parsed by
/// [`GenesisRecord::from_json`], which checks every field.
///
/// JSON (field order as written):
/// ```json
/// {"format": "hermetic-genesis/v1", "deployment": "hermetic-…", "genesis_id": "32 hex",
///  "threshold": 2, "commitment": "64 hex",
///  "shares": [{"index": 1, "custodian": "hermetic-custodian+FP+B64",
///              "enc": "B64 (32 bytes)", "ciphertext": "B64 (48 bytes)",
///              "check": "64 hex"}, …]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GenesisWire", into = "GenesisWire")]
pub struct GenesisRecord {
    deployment: String,
    genesis_id: [u8; 16],
    threshold: u8,
    commitment: [u8; 32],
    shares: Vec<SealedShare>,
}

impl GenesisRecord {
    /// The deployment id.
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// The random id of this genesis.
    pub fn genesis_id(&self) -> &[u8; 16] {
        &self.genesis_id
    }

    /// K.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// N.
    pub fn custodian_count(&self) -> usize {
        self.shares.len()
    }

    /// The sealed shares, index order.
    pub fn shares(&self) -> &[SealedShare] {
        &self.shares
    }

    /// HMAC-SHA256 of the master key over deployment and genesis id (see the crate docs).
    pub fn commitment(&self) -> &[u8; 32] {
        &self.commitment
    }

    /// The share held by `custodian`, if any.
    pub fn share_of(&self, custodian: &CustodianPublicKey) -> Option<&SealedShare> {
        self.shares.iter().find(|s| &s.custodian == custodian)
    }

    pub(crate) fn share_at(&self, index: u8) -> Option<&SealedShare> {
        self.shares.iter().find(|s| s.index == index)
    }

    pub(crate) fn key_matches(&self, key: &MasterKey) -> bool {
        binding::commitment_matches(key, &self.deployment, &self.genesis_id, &self.commitment)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&GenesisWire::from(self.clone()))
            .unwrap_or_else(|_| String::from("{}"))
    }

    /// Parses and checks a record.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let wire: GenesisWire = serde_json::from_slice(bytes)
            .map_err(|_| Error::BadGenesisRecord("not a genesis record (JSON)"))?;
        GenesisRecord::try_from(wire)
    }

    /// Opens `custodian`'s own share (inside [`reseal`](crate::reseal) only).
    pub(crate) fn open_share(&self, custodian: &CustodianKey) -> Result<Share, Error> {
        let public = custodian.public_key();
        let entry = self.share_of(public).ok_or_else(|| Error::NotACustodian {
            fingerprint: public.fingerprint(),
        })?;
        let ctx = binding::share(
            &self.deployment,
            &self.genesis_id,
            self.threshold,
            entry.index,
            public.as_bytes(),
        );
        let bytes = open_bound(custodian.hpke_key(), &entry.sealed, &ctx)
            .map_err(|_| Error::ShareOpenFailed)?;
        Share::from_slice(entry.index, &bytes).ok_or(Error::ShareOpenFailed)
    }
}

pub(crate) fn check_deployment(deployment: &str) -> Result<(), Error> {
    let ok = !deployment.is_empty()
        && deployment.len() <= MAX_DEPLOYMENT_LEN
        && deployment.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidDeployment {
            max: MAX_DEPLOYMENT_LEN,
        })
    }
}

fn check_custodians(custodians: &[CustodianPublicKey], threshold: usize) -> Result<(), Error> {
    let n = custodians.len();
    if threshold == 0 || threshold > n || n > MAX_CUSTODIANS {
        return Err(Error::InvalidThreshold {
            threshold,
            custodians: n,
            max: MAX_CUSTODIANS,
        });
    }
    for (i, c) in custodians.iter().enumerate() {
        if custodians[..i].contains(c) {
            return Err(Error::DuplicateCustodian {
                fingerprint: c.fingerprint(),
            });
        }
    }
    Ok(())
}

/// Makes the master key, splits it `threshold`-of-N among `params.custodians` and seals each
/// share to its custodian. The key is returned to the caller (the verifier enclave, which
/// keeps it in memory only); the record is public.
pub fn genesis(
    params: &GenesisParams,
    rng: &dyn SecureRandom,
) -> Result<(MasterKey, GenesisRecord), Error> {
    check_deployment(&params.deployment)?;
    check_custodians(&params.custodians, usize::from(params.threshold))?;
    if params.threshold == 1 && !params.allow_single_custodian {
        return Err(Error::SingleCustodianThreshold);
    }
    let n = u8::try_from(params.custodians.len()).map_err(|_| Error::SharingFailed)?;
    let key = MasterKey::generate(rng)?;
    let genesis_id = random::<16>(rng)?;
    let shares = shamir::split(&key, params.threshold, n, rng)?;
    let mut sealed = Vec::with_capacity(shares.len());
    for (share, custodian) in shares.iter().zip(&params.custodians) {
        let ctx = binding::share(
            &params.deployment,
            &genesis_id,
            params.threshold,
            share.index,
            custodian.as_bytes(),
        );
        let value = seal_bound(custodian.recipient(), &ctx, share.value.as_slice(), rng)
            .map_err(Error::Seal)?;
        sealed.push(SealedShare {
            index: share.index,
            custodian: custodian.clone(),
            sealed: value,
            check: binding::share_check(
                share.value.as_slice(),
                &params.deployment,
                &genesis_id,
                share.index,
            ),
        });
    }
    let commitment = binding::commitment(&key, &params.deployment, &genesis_id);
    Ok((
        key,
        GenesisRecord {
            deployment: params.deployment.clone(),
            genesis_id,
            threshold: params.threshold,
            commitment,
            shares: sealed,
        },
    ))
}

/// The JSON shape of a [`GenesisRecord`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisWire {
    format: String,
    deployment: String,
    genesis_id: String,
    threshold: u8,
    commitment: String,
    shares: Vec<ShareWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareWire {
    index: u8,
    custodian: String,
    enc: String,
    ciphertext: String,
    check: String,
}

impl From<GenesisRecord> for GenesisWire {
    fn from(r: GenesisRecord) -> Self {
        GenesisWire {
            format: GENESIS_FORMAT.into(),
            deployment: r.deployment,
            genesis_id: hex::encode(r.genesis_id),
            threshold: r.threshold,
            commitment: hex::encode(r.commitment),
            shares: r
                .shares
                .into_iter()
                .map(|s| ShareWire {
                    index: s.index,
                    custodian: s.custodian.to_string(),
                    enc: STANDARD.encode(&s.sealed.enc),
                    ciphertext: STANDARD.encode(&s.sealed.ciphertext),
                    check: hex::encode(s.check),
                })
                .collect(),
        }
    }
}

pub(crate) fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

pub(crate) fn b64_len(s: &str, len: usize) -> Option<Vec<u8>> {
    // Bound the work before decoding a string from the network.
    if s.len() > 4 * len.div_ceil(3) {
        return None;
    }
    let v = STANDARD.decode(s).ok()?;
    (v.len() == len).then_some(v)
}

impl TryFrom<GenesisWire> for GenesisRecord {
    type Error = Error;

    fn try_from(w: GenesisWire) -> Result<Self, Error> {
        if w.format != GENESIS_FORMAT {
            return Err(Error::BadGenesisRecord("format is not hermetic-genesis/v1"));
        }
        check_deployment(&w.deployment)
            .map_err(|_| Error::BadGenesisRecord("invalid deployment id"))?;
        let genesis_id = hex_array::<16>(&w.genesis_id).ok_or(Error::BadGenesisRecord(
            "genesis_id is not 32 lower-case hex",
        ))?;
        let commitment = hex_array::<32>(&w.commitment).ok_or(Error::BadGenesisRecord(
            "commitment is not 64 lower-case hex",
        ))?;
        let mut shares = Vec::with_capacity(w.shares.len());
        for (i, s) in w.shares.iter().enumerate() {
            if usize::from(s.index) != i + 1 {
                return Err(Error::BadGenesisRecord("share indexes must be 1, 2, … N"));
            }
            let custodian = CustodianPublicKey::parse(&s.custodian)
                .map_err(|_| Error::BadGenesisRecord("invalid custodian key"))?;
            let enc = b64_len(&s.enc, ENC_LEN)
                .ok_or(Error::BadGenesisRecord("enc is not 32 bytes of base64"))?;
            let ciphertext = b64_len(&s.ciphertext, SEALED_SHARE_LEN).ok_or(
                Error::BadGenesisRecord("ciphertext is not 48 bytes of base64"),
            )?;
            let check = hex_array::<32>(&s.check)
                .ok_or(Error::BadGenesisRecord("check is not 64 lower-case hex"))?;
            shares.push(SealedShare {
                index: s.index,
                custodian,
                sealed: SealedValue { enc, ciphertext },
                check,
            });
        }
        let custodians: Vec<CustodianPublicKey> =
            shares.iter().map(|s| s.custodian.clone()).collect();
        check_custodians(&custodians, usize::from(w.threshold)).map_err(|e| match e {
            Error::DuplicateCustodian { .. } => {
                Error::BadGenesisRecord("a custodian is listed twice")
            }
            _ => Error::BadGenesisRecord("threshold or custodian count out of range"),
        })?;
        Ok(GenesisRecord {
            deployment: w.deployment,
            genesis_id,
            threshold: w.threshold,
            commitment,
            shares,
        })
    }
}
