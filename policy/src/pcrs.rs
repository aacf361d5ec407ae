use std::collections::BTreeMap;

/// PCR index → value: an allowed measurement set, or what an enclave or
/// image measured.
pub type Pcrs = BTreeMap<u8, Vec<u8>>;

/// Bytes of a SHA-384 PCR, the only kind Nitro Enclaves report.
pub const PCR_LEN: usize = 48;

/// A PCR value as the policy file spells it: exactly 96 lower-case hex
/// characters. One spelling per value, as `hermetic-eif describe` prints
/// it; upper case and other lengths are refused, not normalised.
pub fn pcr_from_hex(s: &str) -> Option<Vec<u8>> {
    let lower = s
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower || s.len() != 2 * PCR_LEN {
        return None;
    }
    hex::decode(s).ok()
}

/// Whether an allowed set identifies the enclave image: it names PCR0 (the
/// whole image), PCR8 (the certificate that signed the image), or both PCR1
/// and PCR2 (kernel, command line and bootstrap ramdisk; the application
/// ramdisks), which together cover every measured section
/// (aws-nitro-enclaves-image-format `eif_hasher.rs`; AWS Nitro Enclaves User
/// Guide, "Where to get an enclave's measurements"). PCR1 alone is the same
/// for every image built with the same tooling, and PCR3/PCR4 describe the
/// parent instance, not the image.
pub fn pins_image(set: &Pcrs) -> bool {
    set.contains_key(&0) || set.contains_key(&8) || (set.contains_key(&1) && set.contains_key(&2))
}

/// One expected PCR that was absent or different.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrDiff {
    pub index: u8,
    pub expected: Vec<u8>,
    /// `None` when `actual` has no such PCR.
    pub actual: Option<Vec<u8>>,
}

/// Every PCR `expected` names that `actual` lacks or holds with another
/// value, in index order. Empty: the set matches. PCRs `actual` has but
/// `expected` does not name are not compared.
pub fn mismatches(expected: &Pcrs, actual: &Pcrs) -> Vec<PcrDiff> {
    expected
        .iter()
        .filter(|(index, want)| actual.get(index) != Some(want))
        .map(|(index, want)| PcrDiff {
            index: *index,
            expected: want.clone(),
            actual: actual.get(index).cloned(),
        })
        .collect()
}
