//! The policy file format: what is accepted, with which defaults, and one
//! test per refusal with its exact message.

use std::time::Duration;

use hermetic_policy::{
    pins_image, stanza, Error, Pcrs, PolicyFile, SecretPolicy, DEFAULT_MAX_AGE, POLICY_PCRS,
};

fn pcr(b: u8) -> String {
    hex::encode([b; 48])
}

/// A one-secret file whose only set is `pcr0 = VALUE`.
fn with_pcr0(value: &str) -> String {
    format!("[secrets.a]\n[[secrets.a.measurements]]\npcr0 = \"{value}\"\n")
}

fn refusal(text: &str) -> String {
    PolicyFile::parse(text)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn parses_the_shared_format_with_defaults() {
    let text = format!(
        "[secrets.db-password]\n[[secrets.db-password.measurements]]\npcr0 = \"{}\"\npcr8 = \"{}\"\n[[secrets.db-password.measurements]]\npcr0 = \"{}\"\n",
        pcr(1),
        pcr(8),
        pcr(2)
    );
    let file = PolicyFile::parse(&text).unwrap();
    let p = &file.secrets["db-password"];
    assert_eq!(p.max_age_secs, None);
    assert_eq!(p.max_age(), DEFAULT_MAX_AGE);
    assert_eq!(DEFAULT_MAX_AGE, Duration::from_secs(300));
    assert!(p.nonce_required);
    assert!(!p.allow_debug);
    assert_eq!(p.measurements.len(), 2);
    assert_eq!(p.measurements[0][&0], vec![1; 48]);
    assert_eq!(p.measurements[0][&8], vec![8; 48]);
    assert_eq!(p.measurements[1].len(), 1);
    assert_eq!(PolicyFile::parse(&file.to_toml()).unwrap(), file);
}

#[test]
fn every_field_and_every_pcr_round_trips() {
    let text = format!(
        "[secrets.b]\nmax_age_secs = 60\nnonce_required = false\nallow_debug = true\n\
         [[secrets.b.measurements]]\npcr0 = \"{}\"\npcr1 = \"{}\"\npcr2 = \"{}\"\npcr3 = \"{}\"\npcr4 = \"{}\"\npcr8 = \"{}\"\n\
         [secrets.\"c.v2\"]\n[[secrets.\"c.v2\".measurements]]\npcr1 = \"{}\"\npcr2 = \"{}\"\npcr4 = \"{}\"\n",
        pcr(0),
        pcr(1),
        pcr(2),
        pcr(3),
        pcr(4),
        pcr(8),
        pcr(7),
        pcr(6),
        pcr(9)
    );
    let file = PolicyFile::parse(&text).unwrap();
    let b = &file.secrets["b"];
    assert_eq!(b.max_age(), Duration::from_secs(60));
    assert!(!b.nonce_required && b.allow_debug);
    assert_eq!(
        b.measurements[0].keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 8]
    );
    assert_eq!(file.secrets["c.v2"].measurements[0][&4], vec![9; 48]);
    assert_eq!(PolicyFile::parse(&file.to_toml()).unwrap(), file);
    assert_eq!(PolicyFile::parse(&b.to_toml("b")).unwrap().secrets["b"], *b);
}

#[test]
fn stanza_is_the_documented_text() {
    let set: Pcrs = [(0u8, vec![0xa0; 48]), (8, vec![0xa8; 48])].into();
    assert_eq!(
        stanza("db-password", set.clone()).unwrap(),
        format!(
            "[secrets.db-password]\nnonce_required = true\nallow_debug = false\n\n\
             [[secrets.db-password.measurements]]\npcr0 = \"{}\"\npcr8 = \"{}\"\n",
            hex::encode([0xa0; 48]),
            hex::encode([0xa8; 48])
        )
    );
    // A dotted name is quoted, and reads back as itself.
    let text = stanza("db.v2", set.clone()).unwrap();
    assert!(text.starts_with("[secrets.\"db.v2\"]\n"), "{text}");
    let file = PolicyFile::parse(&text).unwrap();
    assert_eq!(file.secrets["db.v2"], SecretPolicy::allowing(set));
}

#[test]
fn stanza_refuses_a_name_the_verifier_refuses() {
    assert_eq!(
        stanza("my secret", Pcrs::from([(0, vec![0; 48])]))
            .unwrap_err()
            .to_string(),
        "secrets.my secret: a secret name uses only A-Z, a-z, 0-9, '-', '_' and '.'"
    );
}

#[test]
fn refuses_text_that_is_not_toml() {
    assert_eq!(
        PolicyFile::parse("[secrets.a]\nnot toml at all ["),
        Err(Error::Syntax {
            line: Some(2),
            message: "expected `.`, `=`".into()
        })
    );
}

#[test]
fn refuses_an_unknown_top_level_table() {
    assert_eq!(
        refusal("[secret.a]\n"),
        "not a policy file: line 1: unknown field `secret`, expected `secrets`"
    );
}

#[test]
fn refuses_an_unknown_secret_field() {
    assert_eq!(
        refusal(&format!(
            "[secrets.a]\nbogus = 1\n[[secrets.a.measurements]]\npcr0 = \"{}\"\n",
            pcr(1)
        )),
        "not a policy file: line 2: unknown field `bogus`, expected one of `max_age_secs`, `nonce_required`, `allow_debug`, `measurements`"
    );
}

#[test]
fn refuses_a_pcr_the_format_cannot_name() {
    assert_eq!(
        refusal(&format!(
            "[secrets.a]\n[[secrets.a.measurements]]\npcr5 = \"{}\"\n",
            pcr(1)
        )),
        "not a policy file: line 3: unknown field `pcr5`, expected one of `pcr0`, `pcr1`, `pcr2`, `pcr3`, `pcr4`, `pcr8`"
    );
}

#[test]
fn refuses_a_negative_max_age() {
    assert_eq!(
        refusal(&format!(
            "[secrets.a]\nmax_age_secs = -1\n[[secrets.a.measurements]]\npcr0 = \"{}\"\n",
            pcr(1)
        )),
        "not a policy file: line 2: invalid value: integer `-1`, expected u64"
    );
}

#[test]
fn refuses_a_flag_that_is_not_a_boolean() {
    assert_eq!(
        refusal(&format!(
            "[secrets.a]\nallow_debug = \"no\"\n[[secrets.a.measurements]]\npcr0 = \"{}\"\n",
            pcr(1)
        )),
        "not a policy file: line 2: invalid type: string \"no\", expected a boolean"
    );
}

#[test]
fn refuses_an_empty_file() {
    assert_eq!(PolicyFile::parse(""), Err(Error::Empty));
    assert_eq!(refusal(""), "the policy defines no [secrets.NAME]");
}

#[test]
fn refuses_an_empty_secrets_table() {
    assert_eq!(PolicyFile::parse("[secrets]\n"), Err(Error::Empty));
}

#[test]
fn refuses_a_secret_with_no_measurement_set() {
    assert_eq!(
        refusal("[secrets.a]\nallow_debug = true\n"),
        "secrets.a: no [[measurements]] set (a policy that names no image would match any enclave)"
    );
}

#[test]
fn refuses_an_empty_list_of_measurement_sets() {
    assert_eq!(
        PolicyFile::parse("[secrets.a]\nmeasurements = []\n"),
        Err(Error::NoMeasurementSet { name: "a".into() })
    );
}

#[test]
fn refuses_a_set_naming_no_pcr() {
    assert_eq!(
        refusal(&format!(
            "[secrets.a]\n[[secrets.a.measurements]]\npcr0 = \"{}\"\n[[secrets.a.measurements]]\n",
            pcr(1)
        )),
        "secrets.a.measurements[1]: names no PCR"
    );
}

/// A one-secret file whose sets name exactly these PCRs (value: the index).
fn with_sets(sets: &[&[u8]]) -> String {
    let mut text = String::from("[secrets.a]\n");
    for set in sets {
        text.push_str("[[secrets.a.measurements]]\n");
        for i in *set {
            text.push_str(&format!("pcr{i} = \"{}\"\n", pcr(*i)));
        }
    }
    text
}

#[test]
fn refuses_a_set_naming_only_pcr1() {
    // PCR1 is the same for every image built with the same tooling.
    assert_eq!(
        refusal(&with_sets(&[&[1]])),
        "secrets.a.measurements[0]: names only pcr1, which does not pin the enclave image \
         (pcr1 is shared by every image built with the same tooling, pcr2 by every image with the \
         same application, pcr3/pcr4 name the parent's role and instance: any image there would \
         receive the secret); name pcr0, pcr8, or both pcr1 and pcr2"
    );
}

#[test]
fn refuses_a_set_naming_only_the_parent() {
    for set in [&[3u8][..], &[4], &[3, 4]] {
        assert_eq!(
            PolicyFile::parse(&with_sets(&[set])),
            Err(Error::UnpinnedMeasurementSet {
                name: "a".into(),
                set: 0,
                named: set.to_vec()
            }),
            "{set:?}"
        );
    }
}

#[test]
fn refuses_an_unpinned_set_after_a_good_one_naming_its_index() {
    let err = PolicyFile::parse(&with_sets(&[&[0, 1, 2], &[1, 3, 4]])).unwrap_err();
    assert_eq!(
        err,
        Error::UnpinnedMeasurementSet {
            name: "a".into(),
            set: 1,
            named: vec![1, 3, 4]
        }
    );
    assert!(
        err.to_string()
            .starts_with("secrets.a.measurements[1]: names only pcr1, pcr3, pcr4, which"),
        "{err}"
    );
    assert_eq!(err.reason(), "invalid_policy");
}

#[test]
fn a_set_is_accepted_exactly_when_it_names_pcr0_pcr8_or_pcr1_and_pcr2() {
    // Every non-empty subset of the PCRs the format can name.
    for mask in 1u32..(1 << POLICY_PCRS.len()) {
        let set: Vec<u8> = POLICY_PCRS
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, i)| *i)
            .collect();
        let pinned = set.contains(&0) || set.contains(&8) || set.contains(&1) && set.contains(&2);
        let parsed = PolicyFile::parse(&with_sets(&[&set]));
        assert_eq!(parsed.is_ok(), pinned, "{set:?}: {parsed:?}");
        let as_pcrs: Pcrs = set.iter().map(|i| (*i, vec![*i; 48])).collect();
        assert_eq!(pins_image(&as_pcrs), pinned, "{set:?}");
    }
}

#[test]
fn stanza_refuses_a_set_that_does_not_pin_the_image() {
    assert!(matches!(
        stanza("a", Pcrs::from([(1, vec![1; 48]), (4, vec![4; 48])])),
        Err(Error::UnpinnedMeasurementSet { set: 0, .. })
    ));
    assert!(matches!(
        stanza("a", Pcrs::new()),
        Err(Error::EmptyMeasurementSet { set: 0, .. })
    ));
    // What `hermetic-eif policy` passes: PCR0/1/2 (unsigned image), + PCR8.
    let unsigned: Pcrs = [0, 1, 2].map(|i| (i, vec![i; 48])).into();
    assert!(PolicyFile::parse(&stanza("a", unsigned).unwrap()).is_ok());
}

#[test]
fn refuses_upper_case_hex() {
    assert_eq!(
        refusal(&with_pcr0(&pcr(0xab).to_uppercase())),
        "secrets.a.measurements[0].pcr0: expected 96 lower-case hex characters"
    );
}

#[test]
fn refuses_a_short_pcr() {
    assert_eq!(
        PolicyFile::parse(&with_pcr0(&"a".repeat(95))),
        Err(Error::BadPcrHex {
            name: "a".into(),
            set: 0,
            index: 0
        })
    );
}

#[test]
fn refuses_a_long_pcr() {
    assert_eq!(
        PolicyFile::parse(&with_pcr0(&"a".repeat(98))),
        Err(Error::BadPcrHex {
            name: "a".into(),
            set: 0,
            index: 0
        })
    );
}

#[test]
fn refuses_a_sha256_sized_pcr() {
    assert_eq!(
        PolicyFile::parse(&with_pcr0(&"a".repeat(64))),
        Err(Error::BadPcrHex {
            name: "a".into(),
            set: 0,
            index: 0
        })
    );
}

#[test]
fn refuses_non_hex() {
    assert_eq!(
        refusal(&format!(
            "[secrets.a]\n[[secrets.a.measurements]]\npcr0 = \"{}\"\npcr8 = \"{}g\"\n",
            pcr(1),
            "a".repeat(95)
        )),
        "secrets.a.measurements[0].pcr8: expected 96 lower-case hex characters"
    );
}

#[test]
fn refuses_a_name_with_a_space() {
    assert_eq!(
        refusal(&format!(
            "[secrets.\"a b\"]\n[[secrets.\"a b\".measurements]]\npcr0 = \"{}\"\n",
            pcr(1)
        )),
        "secrets.a b: a secret name uses only A-Z, a-z, 0-9, '-', '_' and '.'"
    );
}

#[test]
fn refuses_an_empty_name() {
    assert_eq!(
        refusal(&format!(
            "[secrets.\"\"]\n[[secrets.\"\".measurements]]\npcr0 = \"{}\"\n",
            pcr(1)
        )),
        "secrets.: a secret name is 1 to 128 characters"
    );
}

#[test]
fn refuses_a_long_name() {
    let name = "n".repeat(129);
    assert_eq!(
        PolicyFile::parse(&format!(
            "[secrets.{name}]\n[[secrets.{name}.measurements]]\npcr0 = \"{}\"\n",
            pcr(1)
        )),
        Err(Error::BadName {
            name,
            reason: "a secret name is 1 to 128 characters"
        })
    );
}

#[test]
fn every_refusal_has_the_api_reason() {
    assert_eq!(Error::Empty.reason(), "invalid_policy");
}
