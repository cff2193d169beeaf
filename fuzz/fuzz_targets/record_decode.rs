//! Fuzz target: `threads_log::check::record_bytes`, record decode and verify on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threads_log::check::record_bytes(data));
