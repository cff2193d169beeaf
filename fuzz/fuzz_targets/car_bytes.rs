//! Fuzz target: `threads_net::check::car_bytes`, CAR archive import on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threads_net::check::car_bytes(data));
