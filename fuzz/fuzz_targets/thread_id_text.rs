//! Fuzz target: `threads_id::check::thread_id_text` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threads_id::check::thread_id_text(data));
