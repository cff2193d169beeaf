//! Helpers shared by the cross-crate test suites in this folder.

use std::path::{Path, PathBuf};

/// The workspace's `test_data/` folder.
pub fn test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test_data")
}

/// Every file under `test_data/fuzz/<target>/corpus` and `.../regressions`, with its bytes.
pub fn fuzz_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut inputs = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = test_data().join("fuzz").join(target).join(kind);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(bytes) = std::fs::read(&path) {
                inputs.push((path, bytes));
            }
        }
    }
    inputs.sort();
    inputs
}
