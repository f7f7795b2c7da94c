//! Captures libbpf's messages (the verifier log among them) while this thread
//! loads a program, so a load error can carry them.
//!
//! libbpf has one process-wide print callback; the first load installs ours.
//! Outside a capture it forwards warnings to stderr, as libbpf would.
use std::cell::RefCell;
use std::sync::Once;

use libbpf_rs::PrintLevel;

/// Keep at most this much of a log (the verifier's can be megabytes; its end
/// says what failed).
const MAX_LOG: usize = 64 * 1024;

thread_local! {
    static CAPTURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn print(level: PrintLevel, msg: String) {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(buf) => {
            buf.push_str(&msg);
            if buf.len() > MAX_LOG {
                let cut = buf.len() - MAX_LOG;
                let cut = (cut..buf.len())
                    .find(|&i| buf.is_char_boundary(i))
                    .unwrap_or(buf.len());
                buf.replace_range(..cut, "");
            }
        }
        None if matches!(level, PrintLevel::Warn) => eprint!("libbpf: {msg}"),
        None => {}
    });
}

/// Runs `f` and returns what libbpf printed (info and warnings) meanwhile on
/// this thread.
pub(crate) fn capture<T>(f: impl FnOnce() -> T) -> (T, String) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        libbpf_rs::set_print(Some((PrintLevel::Info, print)));
    });
    CAPTURE.with(|c| *c.borrow_mut() = Some(String::new()));
    let out = f();
    let log = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, log)
}
