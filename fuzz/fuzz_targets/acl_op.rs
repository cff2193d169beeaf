//! Fuzz target: `threads_acl::check::acl_op_bytes`, ACL operation decode, encode and the
//! ACL computed from it, on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threads_acl::check::acl_op_bytes(data));
