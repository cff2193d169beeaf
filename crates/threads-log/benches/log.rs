//! Benchmarks of threads-log (filled in below).
fn main() {}
