//! Keys: the master key, custodian key pairs (HPKE X25519, hermetic-envelope's suite) and
//! their text forms.

use core::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hermetic_envelope::{EnclaveKey, RecipientPublicKey, PUBLIC_KEY_LEN};
use zeroize::{Zeroize, Zeroizing};

use crate::rng::random;
use crate::Error;

/// Length of the master key.
pub const MASTER_KEY_LEN: usize = 32;

/// First field of a custodian public key string.
pub const PUBLIC_KEY_PREFIX: &str = "hermetic-custodian";

/// First fields of a custodian private key file (in the manner of C2SP signed-note keys,
/// `PRIVATE+KEY+name+...`).
pub const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+hermetic-custodian";

/// The verifier's master key. Zeroized on drop; no `Clone`, `Display` or serde, and `Debug`
/// prints nothing of it.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl MasterKey {
    pub(crate) fn generate(rng: &dyn SecureRandom) -> Result<Self, Error> {
        let mut bytes = random::<MASTER_KEY_LEN>(rng)?;
        let key = MasterKey(Zeroizing::new(bytes));
        bytes.zeroize();
        Ok(key)
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; MASTER_KEY_LEN] = bytes.try_into().ok()?;
        Some(MasterKey(Zeroizing::new(array)))
    }

    /// The key's bytes, for the store's encryption inside the verifier enclave. Never to be
    /// written, logged or sent anywhere but sealed.
    pub fn expose_secret(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A custodian's fingerprint: the first 8 bytes of SHA-256 over
/// `"hermetic-custodian/v1\n" || public key`, as 16 lower-case hex characters. For people to
/// compare and for lookups; every binding uses the whole public key.
pub fn fingerprint(public_key: &[u8; PUBLIC_KEY_LEN]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"hermetic-custodian/v1\n");
    ctx.update(public_key);
    hex::encode(&ctx.finish().as_ref()[..8])
}

/// A custodian's public key: `hermetic-custodian+<fingerprint>+<base64 X25519 key>`.
#[derive(Clone, PartialEq, Eq)]
pub struct CustodianPublicKey {
    bytes: [u8; PUBLIC_KEY_LEN],
    recipient: RecipientPublicKey,
}

impl CustodianPublicKey {
    /// From the raw 32-byte X25519 key.
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Result<Self, Error> {
        let recipient = RecipientPublicKey::from_bytes(&bytes)
            .map_err(|_| Error::BadCustodianPublicKey("not an X25519 key"))?;
        Ok(CustodianPublicKey { bytes, recipient })
    }

    /// Parses the text form; the fingerprint must match the key.
    pub fn parse(text: &str) -> Result<Self, Error> {
        // Standard base64 may itself hold '+': only the first two separate fields (as in
        // C2SP signed-note keys).
        let mut parts = text.trim().splitn(3, '+');
        let (Some(prefix), Some(fp), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::BadCustodianPublicKey(
                "expected hermetic-custodian+FINGERPRINT+BASE64",
            ));
        };
        if prefix != PUBLIC_KEY_PREFIX {
            return Err(Error::BadCustodianPublicKey(
                "does not start with hermetic-custodian+",
            ));
        }
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| Error::BadCustodianPublicKey("key is not standard base64"))?;
        let bytes: [u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::BadCustodianPublicKey("key is not 32 bytes"))?;
        if fingerprint(&bytes) != fp {
            return Err(Error::BadCustodianPublicKey(
                "fingerprint does not match the key",
            ));
        }
        Self::from_bytes(bytes)
    }

    /// The raw key.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.bytes
    }

    /// Its fingerprint.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.bytes)
    }

    pub(crate) fn recipient(&self) -> &RecipientPublicKey {
        &self.recipient
    }
}

impl fmt::Display for CustodianPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PUBLIC_KEY_PREFIX}+{}+{}",
            self.fingerprint(),
            STANDARD.encode(self.bytes)
        )
    }
}

impl fmt::Debug for CustodianPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustodianPublicKey({self})")
    }
}

/// A custodian's private key: a 32-byte seed from which the HPKE key pair is derived
/// (RFC 9180 DeriveKeyPair, through [`EnclaveKey::from_ikm`]). Zeroized on drop; `Debug`
/// shows only the public key.
///
/// File form (one line, to be written with mode 0600):
/// `PRIVATE+KEY+hermetic-custodian+<fingerprint>+<base64 seed>`.
pub struct CustodianKey {
    seed: Zeroizing<[u8; 32]>,
    key: EnclaveKey,
    public: CustodianPublicKey,
}

impl CustodianKey {
    /// A fresh key from `rng`.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, Error> {
        let seed = Zeroizing::new(random::<32>(rng)?);
        Self::from_seed(seed)
    }

    fn from_seed(seed: Zeroizing<[u8; 32]>) -> Result<Self, Error> {
        let key = EnclaveKey::from_ikm(seed.as_slice())
            .map_err(|_| Error::BadCustodianKeyFile("seed rejected"))?;
        let public = CustodianPublicKey::from_bytes(key.public_key_bytes())?;
        Ok(CustodianKey { seed, key, public })
    }

    /// Parses the file form; the fingerprint must match the derived public key.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .and_then(|r| r.strip_prefix('+'))
            .ok_or(Error::BadCustodianKeyFile(
                "does not start with PRIVATE+KEY+hermetic-custodian+",
            ))?;
        let (fp, b64) = rest
            .split_once('+')
            .ok_or(Error::BadCustodianKeyFile("expected FINGERPRINT+BASE64"))?;
        let decoded = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| Error::BadCustodianKeyFile("seed is not standard base64"))?,
        );
        let seed: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| Error::BadCustodianKeyFile("seed is not 32 bytes"))?;
        let key = Self::from_seed(Zeroizing::new(seed))?;
        if key.public.fingerprint() != fp {
            return Err(Error::BadCustodianKeyFile(
                "fingerprint does not match the key",
            ));
        }
        Ok(key)
    }

    /// The file form, with a trailing newline.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let b64 = Zeroizing::new(STANDARD.encode(self.seed.as_slice()));
        Zeroizing::new(format!(
            "{PRIVATE_KEY_PREFIX}+{}+{}\n",
            self.public.fingerprint(),
            b64.as_str()
        ))
    }

    /// The public key.
    pub fn public_key(&self) -> &CustodianPublicKey {
        &self.public
    }

    pub(crate) fn hpke_key(&self) -> &EnclaveKey {
        &self.key
    }
}

impl fmt::Debug for CustodianKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustodianKey")
            .field("public", &self.public)
            .field("seed", &format_args!("<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    #[test]
    fn text_forms_round_trip_and_are_checked() {
        let key = CustodianKey::generate(&SystemRandom::new()).unwrap();
        let public = key.public_key().to_string();
        assert!(public.starts_with("hermetic-custodian+"));
        assert_eq!(
            CustodianPublicKey::parse(&public).unwrap(),
            *key.public_key()
        );
        let file = key.to_file_text();
        let again = CustodianKey::parse(&file).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert!(!format!("{key:?}").contains(file.split('+').next_back().unwrap().trim()));

        // A fingerprint that does not match, truncated keys, junk: refused, never a panic.
        let other = CustodianKey::generate(&SystemRandom::new()).unwrap();
        let (_, fp_other) = (0, other.public_key().fingerprint());
        let swapped = public.replace(&key.public_key().fingerprint(), &fp_other);
        for bad in [
            swapped.as_str(),
            "hermetic-custodian+00+AAAA",
            "hermetic-custodian",
            "",
            "x+y+z+w",
            "hermetic-custodian+0011223344556677+AAAA+AAAA",
            "other+0011223344556677+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert!(CustodianPublicKey::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "PRIVATE+KEY+hermetic-custodian+00+AAAA",
            "PRIVATE+KEY+other+00+AAAA",
            "PRIVATE+KEY+hermetic-custodian",
            "",
        ] {
            assert!(CustodianKey::parse(bad).is_err(), "{bad}");
        }
        let wrong_fp = file.replace(&key.public_key().fingerprint(), &fp_other);
        assert_eq!(
            CustodianKey::parse(&wrong_fp).unwrap_err().reason(),
            "bad_custodian_key_file"
        );
    }

    #[test]
    fn master_key_debug_is_redacted() {
        let key = MasterKey::generate(&SystemRandom::new()).unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
    }
}
