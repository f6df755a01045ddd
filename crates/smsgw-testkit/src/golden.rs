//! privacyIDEA's golden files: each provider crate keeps a copy of its cases in `tests/golden/`
//! (so that its tests run anywhere); where the shared originals sit beside the checkout
//! (`../shared/golden`, as in CI), the copies must be identical.

use std::path::Path;

/// Asserts that every file in `<manifest_dir>/tests/golden` equals its original in
/// `<manifest_dir>/../../../shared/golden`, when that folder exists. Returns how many were compared.
pub fn assert_copies_current(manifest_dir: &Path) -> usize {
    let copies = manifest_dir.join("tests/golden");
    let shared = manifest_dir.join("../../../shared/golden");
    if !shared.is_dir() {
        return 0;
    }
    let mut compared = 0;
    for entry in std::fs::read_dir(&copies).expect("tests/golden exists") {
        let copy = entry.expect("readable directory").path();
        let original = shared.join(copy.file_name().expect("a file name"));
        if original.exists() {
            assert!(
                std::fs::read(&copy).ok() == std::fs::read(&original).ok(),
                "{} differs from the shared golden file {}: copy it again",
                copy.display(),
                original.display()
            );
            compared += 1;
        }
    }
    compared
}
