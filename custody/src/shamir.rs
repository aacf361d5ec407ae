//! K-of-N Shamir sharing of the 32-byte master key over GF(256), through vsss-rs (byte-wise,
//! constant-time field arithmetic; the call Turnkey's QuorumOS makes in qos_crypto
//! `shamir.rs`). A share is its x-coordinate (1..=N) and 32 bytes of y-coordinates.

use aws_lc_rs::rand::SecureRandom;
use vsss_rs::Gf256;
use zeroize::{Zeroize, Zeroizing};

use crate::key::{MasterKey, MASTER_KEY_LEN};
use crate::rng::{aws_rng, check};
use crate::Error;

/// One share: index `1..=N` and its 32 bytes. Zeroized on drop; never leaves the crate in the
/// clear.
pub(crate) struct Share {
    pub(crate) index: u8,
    pub(crate) value: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl Share {
    pub(crate) fn from_slice(index: u8, bytes: &[u8]) -> Option<Share> {
        let value: [u8; MASTER_KEY_LEN] = bytes.try_into().ok()?;
        Some(Share {
            index,
            value: Zeroizing::new(value),
        })
    }
}

/// Splits `key` into `n` shares, any `k` of which restore it. `k = 1` gives every custodian
/// the key itself (a degree-0 polynomial; vsss-rs refuses it, so it is done here).
pub(crate) fn split(
    key: &MasterKey,
    k: u8,
    n: u8,
    rng: &dyn SecureRandom,
) -> Result<Vec<Share>, Error> {
    if k == 0 || k > n {
        return Err(Error::SharingFailed);
    }
    if k == 1 {
        return Ok((1..=n)
            .map(|index| Share {
                index,
                value: Zeroizing::new(*key.expose_secret()),
            })
            .collect());
    }
    let mut adapter = aws_rng(rng);
    let result = Gf256::split_array(
        usize::from(k),
        usize::from(n),
        key.expose_secret(),
        &mut adapter,
    );
    check(&adapter)?;
    let mut raw = result.map_err(|_| Error::SharingFailed)?;
    let shares = raw
        .iter()
        .map(|s| match s.split_first() {
            Some((index, value)) => Share::from_slice(*index, value),
            None => None,
        })
        .collect::<Option<Vec<Share>>>();
    raw.iter_mut().for_each(|s| s.zeroize());
    let shares = shares.ok_or(Error::SharingFailed)?;
    // vsss-rs numbers shares 1, 2, … (its default sequential participant ids); the record's
    // index is that x-coordinate, so it is checked rather than assumed.
    if shares.iter().zip(1..=n).any(|(s, i)| s.index != i) {
        return Err(Error::SharingFailed);
    }
    Ok(shares)
}

/// Lagrange interpolation at 0 over exactly the given shares (distinct indexes). Fewer shares
/// than the threshold give a wrong key, which the genesis commitment catches.
pub(crate) fn combine(shares: &[&Share]) -> Result<MasterKey, Error> {
    match shares {
        [] => Err(Error::SharingFailed),
        [one] => Ok(MasterKey::from_slice(one.value.as_slice()).ok_or(Error::SharingFailed)?),
        _ => {
            let mut raw: Vec<Vec<u8>> = shares
                .iter()
                .map(|s| {
                    let mut v = Vec::with_capacity(1 + MASTER_KEY_LEN);
                    v.push(s.index);
                    v.extend_from_slice(s.value.as_slice());
                    v
                })
                .collect();
            let result = Gf256::combine_array(&raw);
            raw.iter_mut().for_each(|s| s.zeroize());
            let secret = Zeroizing::new(result.map_err(|_| Error::SharingFailed)?);
            MasterKey::from_slice(&secret).ok_or(Error::SharingFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    #[test]
    fn any_k_restore_and_fewer_do_not() {
        let rng = SystemRandom::new();
        let key = MasterKey::generate(&rng).unwrap();
        let shares = split(&key, 3, 5, &rng).unwrap();
        assert_eq!(shares.len(), 5);
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let chosen: Vec<&Share> = pick.iter().map(|i| &shares[*i]).collect();
            let back = combine(&chosen).unwrap();
            assert_eq!(back.expose_secret(), key.expose_secret());
        }
        let two: Vec<&Share> = shares.iter().take(2).collect();
        assert_ne!(combine(&two).unwrap().expose_secret(), key.expose_secret());
    }

    #[test]
    fn threshold_one_and_bad_parameters() {
        let rng = SystemRandom::new();
        let key = MasterKey::generate(&rng).unwrap();
        let shares = split(&key, 1, 2, &rng).unwrap();
        assert_eq!(
            combine(&[&shares[1]]).unwrap().expose_secret(),
            key.expose_secret()
        );
        assert!(split(&key, 0, 2, &rng).is_err());
        assert!(split(&key, 3, 2, &rng).is_err());
        assert!(combine(&[]).is_err());
        // Two shares with one index: refused, not a wrong key.
        assert!(combine(&[&shares[0], &shares[0]]).is_err());
    }
}
