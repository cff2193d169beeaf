//! Runnable examples of threads-rs: `cargo run -p threads-examples --example <name>`.
//!
//! - `custom_view`: two peers share a thread with a view of the application's own (a todo
//!   list whose items only their author may close), written and read through `Db`.
