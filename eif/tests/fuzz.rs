//! Fuzz-ish robustness: random flips, truncations and header-field rewrites
//! of real images must give Ok or a typed error, never a panic.

mod common;

use std::io::Cursor;
use std::path::Path;

use hermetic_eif::{read_eif_from, EifError, ReadOptions};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Some(dir) = common::vectors() {
        for name in ["one_ramdisk.eif", "two_ramdisks_signed.eif"] {
            out.push(std::fs::read(dir.join(name)).unwrap());
        }
    }
    // Also a self-built image so the test is meaningful without the vectors.
    out.push(
        hermetic_eif::EifBuilder::new(
            hermetic_eif::Input::Bytes(common::bytes(5, 2000)),
            b"x=y".to_vec(),
        )
        .ramdisk(hermetic_eif::Input::Bytes(common::bytes(6, 900)))
        .ramdisk(hermetic_eif::Input::Bytes(common::bytes(7, 300)))
        .to_vec()
        .unwrap()
        .0,
    );
    out
}

fn read(b: &[u8], lenient: bool) -> Result<hermetic_eif::EifImage, EifError> {
    let opts = if lenient {
        ReadOptions::lenient()
    } else {
        ReadOptions::default()
    };
    read_eif_from(Cursor::new(b), Path::new("fuzz"), opts)
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut outcomes = [0usize; 2];
    for base in corpus() {
        assert!(read(&base, false).is_ok());
        for iter in 0..1500 {
            let mut b = base.clone();
            match iter % 4 {
                0 => {
                    // Flip 1-8 random bits anywhere.
                    for _ in 0..1 + rng.below(8) {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    let n = rng.below(b.len());
                    b.truncate(n);
                }
                2 => {
                    // Random u64 into a header table slot or u16 into num_sections/version.
                    let slot = rng.below(64);
                    let at = 28 + 8 * slot;
                    let v = match rng.below(4) {
                        0 => rng.next(),
                        1 => u64::MAX - rng.below(16) as u64,
                        2 => rng.below(b.len() + 32) as u64,
                        _ => 0,
                    };
                    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
                    if rng.below(3) == 0 {
                        let n = rng.below(40) as u16;
                        b[26..28].copy_from_slice(&n.to_be_bytes());
                    }
                }
                _ => {
                    // Overwrite a random run in the body (signature / metadata / headers).
                    let start = rng.below(b.len());
                    let len = rng.below(64).min(b.len() - start);
                    for x in &mut b[start..start + len] {
                        *x = rng.next() as u8;
                    }
                }
            }
            let lenient = iter % 2 == 0;
            let r = std::panic::catch_unwind(|| read(&b, lenient).map(|_| ()));
            match r {
                Ok(Ok(())) => outcomes[0] += 1,
                Ok(Err(e)) => {
                    assert_eq!(e.exit_code(), 2);
                    assert!(!e.to_string().is_empty());
                    outcomes[1] += 1;
                }
                Err(_) => panic!("reader panicked on mutation {iter}"),
            }
        }
    }
    // Both outcomes must occur, or the mutations were not exercising anything.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
