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

/// The thread, key and writer identity of the crash test, shared by the writer process and
/// the checker.
pub fn crash_fixture() -> (
    threads_id::ThreadId,
    threads_crypto::ThreadKey,
    threads_crypto::Identity,
) {
    let thread = threads_id::ThreadId::from_parts(threads_id::Variant::Raw, [0xc5; 32]);
    let key = threads_crypto::ThreadKey::new(
        threads_crypto::ServiceKey::from_bytes([0xc6; 32]),
        threads_crypto::ReadKey::from_bytes([0xc7; 32]),
    );
    (
        thread,
        key,
        threads_crypto::Identity::from_secret_bytes(&[0xc8; 32]),
    )
}
