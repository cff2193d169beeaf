//! Invariant checks over arbitrary input, shared by the fuzz targets and the replay tests.

use threads_crypto::{Identity, ThreadKey};
use threads_id::{ThreadId, Variant};

use crate::{Block, Verifier};

/// The fixed thread, keys and writer the checks decode against; corpus seeds use them.
pub fn fixture() -> (ThreadId, ThreadKey, Identity) {
    let thread = ThreadId::from_parts(Variant::Raw, [0x11; 32]);
    let key = ThreadKey::new(
        threads_crypto::ServiceKey::from_bytes([0x22; 32]),
        threads_crypto::ReadKey::from_bytes([0x33; 32]),
    );
    (thread, key, Identity::from_secret_bytes(&[0x44; 32]))
}

/// Decodes and verifies arbitrary bytes as a record block of the fixture's log. Must never
/// panic; a record that verifies must have a self-consistent structure.
pub fn record_bytes(data: &[u8]) {
    let (thread, key, writer) = fixture();
    let Ok(verifier) = Verifier::new(thread, writer.log_id(), &key) else {
        return;
    };
    let block = Block::raw(data.to_vec());
    if let Ok(record) = verifier.open_record(&block) {
        assert!(record.counter() >= 1);
        assert_eq!(record.prev().is_none(), record.counter() == 1);
        assert_eq!(
            record.skip().is_some(),
            crate::skip_target(record.counter()).is_some()
        );
    }
    let _ = verifier.open_records(&[block]);
}
