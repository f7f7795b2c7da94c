//! TCP option bytes: the walker and the parser must never panic or loop,
//! and must agree on whether the bytes are legal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::tcp::TcpOptionsIter;
use stack::wire::TcpOptions;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(40)];
    let walked: Vec<_> = TcpOptionsIter::new(data).collect();
    assert!(
        walked.len() <= data.len(),
        "every option takes at least one byte"
    );
    let legal = walked.iter().all(Result::is_ok);
    match TcpOptions::parse(data) {
        Ok(options) => {
            assert!(legal);
            // What parses, emits and parses back the same (the emitter may
            // leave out SACK blocks that do not fit beside the others).
            let mut out = [0u8; 40];
            let n = options.buffer_len();
            assert!(n <= 40 && n % 4 == 0);
            options.emit(&mut out[..n]);
            let again = TcpOptions::parse(&out[..n]).expect("emitted options parse");
            assert_eq!(again.mss, options.mss);
            assert_eq!(again.timestamps, options.timestamps);
            assert_eq!(again.window_scale, options.window_scale);
            assert_eq!(again.sack_permitted, options.sack_permitted);
        }
        Err(_) => assert!(!legal),
    }
});
