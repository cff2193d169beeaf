//! Fuzz target: `threads_net::check::invite_bytes`, a decoder reachable from the network.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threads_net::check::invite_bytes(data));
