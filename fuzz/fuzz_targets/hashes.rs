//! BEP 52 hash messages against hostile frames: decoding never panics, agrees with the general
//! message decoder, and whatever decodes encodes back to the same frame.
#![no_main]

use wire::{HashMessage, Message, HASH_LEN};

libfuzzer_sys::fuzz_target!(|frame: &[u8]| {
    let Some((&id, payload)) = frame.split_first() else {
        return;
    };
    let direct = HashMessage::decode(id, payload);
    if let Ok(msg) = Message::decode(frame) {
        assert_eq!(HashMessage::from_message(&msg), direct);
    }
    if let Some(Ok(msg)) = direct {
        if let HashMessage::Hashes { hashes, .. } = msg {
            assert_eq!(hashes.len() % HASH_LEN, 0);
        }
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(out.len(), msg.encoded_len());
        assert_eq!(&out[4..], frame);
        assert_eq!(out[..4], (frame.len() as u32).to_be_bytes());
    }
});
