//! A whole received frame: `parse_frame` must never panic, and whatever it
//! accepts must survive emit and parse again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::frame::parse_frame;
use stack::wire::Checksums;
use stack::Counters;

fuzz_target!(|data: &[u8]| {
    let mut counters = Counters::new();
    for checksums in [Checksums::Verify, Checksums::Trust] {
        if let Some(frame) = counters.record(parse_frame(data, checksums)) {
            let _ = frame.flow_key();
            let mut out = vec![0u8; frame.buffer_len()];
            frame.emit(&mut out);
            // Emitting computes every checksum, so the copy verifies.
            let again = parse_frame(&out, Checksums::Verify).expect("an emitted frame parses");
            assert_eq!(again.ethernet, frame.ethernet);
            assert_eq!(again.flow_key(), frame.flow_key());
        }
    }
});
