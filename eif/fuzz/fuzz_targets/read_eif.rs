//! Coverage-guided fuzzing of the EIF reader: any byte string must give an
//! image or a typed error, never a panic, hang or unbounded allocation.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use hermetic_eif::{read_eif_from, ReadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for opts in [ReadOptions::default(), ReadOptions::lenient()] {
        if let Ok(img) = read_eif_from(Cursor::new(data), Path::new("fuzz.eif"), opts) {
            // Everything an accepted image reports must be computable.
            let _ = hermetic_eif::report::describe_json(&img);
            let _ = hermetic_eif::report::describe_text(&img);
            let _ = hermetic_eif::policy_stanza(&img.measurements, "fuzz");
        }
    }
});
