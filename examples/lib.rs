//! Runnable examples of threads-rs: `cargo run -p threads-examples --example <name>`.
//!
//! - `log_alone`: threads-log on its own: write and verify a log in memory, refuse a
//!   changed byte, prove a fork.
//! - `store_alone`: threads-store on its own: a log in memory and in a SQLite file, pages,
//!   heads digests, compare-and-set appends, reopening.
//! - `replicate`: threads-net and threads-views without the database: two nodes replicate
//!   a thread and compute the same view of their own kind (a word tally).
//! - `custom_view`: two peers share a thread with a view of the application's own (a todo
//!   list whose items only their author may close), written and read through `Db`.
