//! Replays every saved fuzz input (the corpus and the regressions under `test_data/fuzz/`)
//! through the same checks the fuzz targets run, as ordinary tests.

use threads_tests::fuzz_inputs;

fn replay(target: &str, check: fn(&[u8])) {
    let inputs = fuzz_inputs(target);
    assert!(
        !inputs.is_empty(),
        "no saved inputs for fuzz target {target}"
    );
    for (path, bytes) in inputs {
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(
            outcome.is_ok(),
            "{target}: input {} breaks an invariant",
            path.display()
        );
    }
}

#[test]
fn thread_id_bytes() {
    replay("thread_id_bytes", threads_id::check::thread_id_bytes);
}

#[test]
fn thread_id_text() {
    replay("thread_id_text", threads_id::check::thread_id_text);
}

#[test]
fn thread_addr() {
    replay("thread_addr", threads_id::check::thread_addr);
}

#[test]
fn keyset_open() {
    replay("keyset_open", threads_crypto::check::keyset_open);
}

#[test]
fn record_decode() {
    replay("record_decode", threads_log::check::record_bytes);
}

#[test]
fn log_append() {
    replay("log_append", threads_log::check::append_model);
}
