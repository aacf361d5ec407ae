//! Matching an allowed set against measured PCRs.

use hermetic_policy::{mismatches, PcrDiff, Pcrs};

#[test]
fn a_set_matches_when_every_named_pcr_is_equal() {
    let set: Pcrs = [(0, vec![0; 48]), (8, vec![8; 48])].into();
    let actual: Pcrs = [(0, vec![0; 48]), (1, vec![1; 48]), (8, vec![8; 48])].into();
    assert_eq!(mismatches(&set, &actual), []);
}

#[test]
fn mismatches_name_each_differing_or_absent_pcr_in_order() {
    let set: Pcrs = [(8, vec![8; 48]), (2, vec![2; 48]), (0, vec![0; 48])].into();
    let actual: Pcrs = [(0, vec![0; 48]), (2, vec![9; 48])].into();
    assert_eq!(
        mismatches(&set, &actual),
        [
            PcrDiff {
                index: 2,
                expected: vec![2; 48],
                actual: Some(vec![9; 48])
            },
            PcrDiff {
                index: 8,
                expected: vec![8; 48],
                actual: None
            },
        ]
    );
}
