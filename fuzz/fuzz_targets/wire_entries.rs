//! Fuzz target: `threads_net::check::wire_entries`, a decoder reachable from the network.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threads_net::check::wire_entries(data));
