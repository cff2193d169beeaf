//! Fuzz target: `threads_crypto::check::keyset_open` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threads_crypto::check::keyset_open(data));
