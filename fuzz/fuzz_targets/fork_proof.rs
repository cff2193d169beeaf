//! Fuzz target: `threads_log::check::fork_proof_bytes`, fork proof decode and verify on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threads_log::check::fork_proof_bytes(data));
