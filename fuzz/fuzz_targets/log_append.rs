//! Fuzz target: `threads_log::check::append_model`, appends, verifies and tampering against a model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threads_log::check::append_model(data));
