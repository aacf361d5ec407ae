//! The TOML form: serde types that mirror the text, checked into the model
//! by `parse` and produced from it by `to_toml`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{check_secret_name, pcr_from_hex, pins_image, Error, Pcrs, PolicyFile, SecretPolicy};

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawFile<S> {
    #[serde(default = "BTreeMap::new")]
    secrets: BTreeMap<String, RawSecret<S>>,
}

fn default_true() -> bool {
    true
}

/// `S` is [`RawSet`] when reading; when writing, a map, so that a PCR the
/// format cannot name is written (and refused when read back), never
/// silently dropped.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSecret<S> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age_secs: Option<u64>,
    #[serde(default = "default_true")]
    nonce_required: bool,
    #[serde(default)]
    allow_debug: bool,
    #[serde(default = "Vec::new")]
    measurements: Vec<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    pcr0: Option<String>,
    pcr1: Option<String>,
    pcr2: Option<String>,
    pcr3: Option<String>,
    pcr4: Option<String>,
    pcr8: Option<String>,
}

impl RawSet {
    fn entries(&self) -> [(u8, Option<&String>); 6] {
        [
            (0, self.pcr0.as_ref()),
            (1, self.pcr1.as_ref()),
            (2, self.pcr2.as_ref()),
            (3, self.pcr3.as_ref()),
            (4, self.pcr4.as_ref()),
            (8, self.pcr8.as_ref()),
        ]
    }
}

impl PolicyFile {
    /// Parses and validates a whole policy file.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let raw: RawFile<RawSet> = toml::from_str(text).map_err(|e| Error::Syntax {
            line: e
                .span()
                .map(|span| text[..span.start].matches('\n').count() + 1),
            message: e.message().to_owned(),
        })?;
        if raw.secrets.is_empty() {
            return Err(Error::Empty);
        }
        let mut secrets = BTreeMap::new();
        for (name, secret) in raw.secrets {
            let policy = SecretPolicy::from_raw(&name, secret)?;
            secrets.insert(name, policy);
        }
        Ok(PolicyFile { secrets })
    }

    /// The file in the shared format; [`PolicyFile::parse`] reads it back
    /// to an equal value. Panics only if `max_age_secs` exceeds what TOML
    /// can hold (`i64::MAX`), which `parse` never yields.
    pub fn to_toml(&self) -> String {
        let raw = RawFile {
            secrets: self
                .secrets
                .iter()
                .map(|(name, policy)| (name.clone(), policy.to_raw()))
                .collect(),
        };
        toml::to_string(&raw).expect("a TOML integer holds max_age_secs")
    }
}

impl SecretPolicy {
    fn from_raw(name: &str, raw: RawSecret<RawSet>) -> Result<Self, Error> {
        check_secret_name(name).map_err(|reason| Error::BadName {
            name: name.to_owned(),
            reason,
        })?;
        if raw.measurements.is_empty() {
            return Err(Error::NoMeasurementSet {
                name: name.to_owned(),
            });
        }
        let mut measurements = Vec::with_capacity(raw.measurements.len());
        for (set, entries) in raw.measurements.iter().enumerate() {
            let mut pcrs = Pcrs::new();
            for (index, value) in entries.entries() {
                let Some(value) = value else { continue };
                let bytes = pcr_from_hex(value).ok_or_else(|| Error::BadPcrHex {
                    name: name.to_owned(),
                    set,
                    index,
                })?;
                pcrs.insert(index, bytes);
            }
            check_set(name, set, &pcrs)?;
            measurements.push(pcrs);
        }
        Ok(SecretPolicy {
            max_age_secs: raw.max_age_secs,
            nonce_required: raw.nonce_required,
            allow_debug: raw.allow_debug,
            measurements,
        })
    }

    fn to_raw(&self) -> RawSecret<BTreeMap<String, String>> {
        RawSecret {
            max_age_secs: self.max_age_secs,
            nonce_required: self.nonce_required,
            allow_debug: self.allow_debug,
            measurements: self
                .measurements
                .iter()
                .map(|set| {
                    set.iter()
                        .map(|(index, value)| (format!("pcr{index}"), hex::encode(value)))
                        .collect()
                })
                .collect(),
        }
    }

    /// This policy alone, as a policy file with one `[secrets.NAME]`.
    pub fn to_toml(&self, name: &str) -> String {
        PolicyFile {
            secrets: BTreeMap::from([(name.to_owned(), self.clone())]),
        }
        .to_toml()
    }
}

/// The rules every allowed set follows: it names a PCR, and it pins the
/// image.
fn check_set(name: &str, set: usize, pcrs: &Pcrs) -> Result<(), Error> {
    if pcrs.is_empty() {
        return Err(Error::EmptyMeasurementSet {
            name: name.to_owned(),
            set,
        });
    }
    if !pins_image(pcrs) {
        return Err(Error::UnpinnedMeasurementSet {
            name: name.to_owned(),
            set,
            named: pcrs.keys().copied().collect(),
        });
    }
    Ok(())
}

/// What `hermetic-eif policy` prints: a policy file allowing exactly `set`
/// for the secret `name`, with every other field at its default. Refuses a
/// name or a set the verifier would refuse.
pub fn stanza(name: &str, set: Pcrs) -> Result<String, Error> {
    check_secret_name(name).map_err(|reason| Error::BadName {
        name: name.to_owned(),
        reason,
    })?;
    check_set(name, 0, &set)?;
    Ok(SecretPolicy::allowing(set).to_toml(name))
}
