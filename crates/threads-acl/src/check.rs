//! Invariant checks over arbitrary bytes that arrive in other members' events, shared by
//! the fuzz targets (`fuzz/`) and the replay tests (`tests/fuzz_replay.rs`). Each must
//! never panic, whatever the input.

use threads_id::{ThreadId, Variant};
use threads_log::{EventOrder, Hlc};
use threads_views::Stamp;

use crate::acl::Acl;
use crate::op::AclOp;

/// Decodes arbitrary bytes as an ACL operation; one that decodes encodes back to bytes
/// that decode to it, and counts in an access-controlled thread's ACL after its owner's
/// `init` (a compaction by the owner) or is refused there, without a panic; a
/// compaction's voided ranges then answer for their bounds.
pub fn acl_op_bytes(data: &[u8]) {
    let Ok(op) = AclOp::decode(data) else {
        return;
    };
    let again = AclOp::decode(&op.encode()).expect("an operation's encoding decodes");
    assert_eq!(again, op);
    let author = threads_crypto::Identity::from_secret_bytes(&[8; 32]).log_id();
    let salt = [9; crate::op::SALT_LEN];
    let thread = ThreadId::from_parts(
        Variant::AccessControlled,
        crate::op::owner_hash(&author, &salt),
    );
    let stamp = |counter| Stamp {
        order: EventOrder {
            time: Hlc::new(counter, 0),
            log: author,
            counter,
        },
        index: 0,
    };
    let acl = Acl::compute(
        thread,
        [
            (stamp(1), Ok(AclOp::Init { salt })),
            (stamp(2), Ok(op.clone())),
        ],
    );
    if let AclOp::Compact { log, ranges, .. } = &op {
        for &(first, last) in ranges {
            assert!(acl.voids(log, first) && acl.voids(log, last));
            assert!(!acl.voids(log, 0));
        }
        let mut previous_end = 0u64;
        for (first, last) in &acl.voided()[log] {
            assert!(*first > previous_end || previous_end == 0);
            assert!(first <= last);
            previous_end = *last;
        }
    }
}
