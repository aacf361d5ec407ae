//! `../shared/vectors` beside the project (real AWS attestation documents,
//! the AWS root, reference EIFs; see its README). Absent in a user's fresh
//! clone: the tests that need it skip with a message. Under `CI=true` its
//! absence fails the test instead.

use std::path::{Path, PathBuf};

/// The shared vectors folder, found from the workspace member whose
/// `CARGO_MANIFEST_DIR` is `manifest_dir`, when `marker` (a path inside it,
/// e.g. `attestation/INDEX.json`) exists; else `None` after printing
/// `skipping: ../shared/vectors not found`, or a panic under `CI=true`.
pub fn find(manifest_dir: &str, marker: &str) -> Option<PathBuf> {
    let dir = Path::new(manifest_dir).join("../../shared/vectors");
    if dir.join(marker).exists() {
        return Some(dir);
    }
    assert!(
        !crate::in_ci(),
        "CI=true but the shared vectors are missing at {} ({marker} not found)",
        dir.display()
    );
    eprintln!(
        "skipping: ../shared/vectors not found ({} has no {marker})",
        dir.display()
    );
    None
}
