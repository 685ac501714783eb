//! The `by_speed` extension (Speed market) against hostile bytes: decoding a message or a
//! handshake entry never panics, and whatever decodes re-encodes to bytes that decode the same.
#![no_main]

use speed::{Handshake, Message};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        let out = msg.encode_to_vec().expect("a decoded message encodes");
        assert_eq!(Message::decode(&out), Ok(msg));
    }
    if let Ok(Some(hs)) = Handshake::from_extended_handshake(data) {
        let _ = hs.encode_to_vec();
    }
});
