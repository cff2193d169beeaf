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

/// The second writer of the views crash test.
pub fn crash_fixture_second() -> threads_crypto::Identity {
    threads_crypto::Identity::from_secret_bytes(&[0xc9; 32])
}

/// The views of the views crash test: a key-value view and an order-sensitive hash chain.
pub fn crash_views() -> Vec<std::sync::Arc<dyn threads_views::Reducer>> {
    vec![
        std::sync::Arc::new(threads_views::Kv::new("kv")),
        std::sync::Arc::new(Chain),
    ]
}

/// An order-sensitive view: a hash chain over every operation, and a count.
#[derive(Debug)]
pub struct Chain;

impl threads_views::Reducer for Chain {
    fn name(&self) -> &str {
        "chain"
    }

    fn kind(&self) -> threads_views::ViewKind {
        threads_views::ViewKind::Ordered
    }

    fn apply(
        &self,
        state: &mut threads_views::State,
        event: &threads_views::Event<'_>,
    ) -> Result<(), threads_views::Reject> {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(state.get(b"head").unwrap_or_default());
        hasher.update(threads_views::encode_order(&event.order));
        hasher.update(event.data);
        let head: [u8; 32] = hasher.finalize().into();
        state.put(b"head".to_vec(), head.to_vec());
        let count = state
            .get(b"count")
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes);
        state.put(b"count".to_vec(), (count + 1).to_be_bytes().to_vec());
        Ok(())
    }
}
