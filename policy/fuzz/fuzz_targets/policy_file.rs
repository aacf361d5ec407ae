//! The policy file (TOML) on hostile text: parsing fails closed with a
//! typed error or gives a policy that writes back to text which parses to
//! the same policy, and writing is a fixed point (what the owners sign in
//! a `policy` change is that written text).
#![no_main]

use hermetic_policy::{pins_image, PolicyFile, PCR_LEN, POLICY_PCRS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = PolicyFile::parse(text) else {
        return;
    };
    assert!(!file.secrets.is_empty());
    for (name, policy) in &file.secrets {
        assert!(hermetic_policy::check_secret_name(name).is_ok());
        assert!(!policy.measurements.is_empty());
        for set in &policy.measurements {
            // Fail closed: every set pins the image, with known PCRs only.
            assert!(pins_image(set));
            for (index, value) in set {
                assert!(POLICY_PCRS.contains(index));
                assert_eq!(value.len(), PCR_LEN);
            }
        }
        let one = policy.to_toml(name);
        let reparsed = PolicyFile::parse(&one).unwrap();
        assert_eq!(reparsed.secrets.len(), 1);
        assert_eq!(&reparsed.secrets[name], policy);
        assert_eq!(reparsed.secrets[name].to_toml(name), one);
    }
    let written = file.to_toml();
    let again = PolicyFile::parse(&written).unwrap();
    assert_eq!(again, file);
    assert_eq!(again.to_toml(), written);
});
