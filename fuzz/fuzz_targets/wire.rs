//! Peer wire decoders against hostile bytes: single frames, handshakes, extended handshakes, and a
//! byte stream split into arbitrary chunks through `FrameDecoder`, checked against a direct parse.
#![no_main]

use wire::{ExtendedHandshake, FrameDecoder, Handshake, Message, HANDSHAKE_LEN};

/// Owned summary of one decode step, comparable across the two stream parsers.
type Step = Result<String, wire::Error>;

/// Walks `stream` frame by frame without any buffering: the reference for `FrameDecoder`.
fn reference(stream: &[u8], max: usize) -> Vec<Step> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(prefix) = rest.get(..4) {
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > max {
            out.push(Err(wire::Error::FrameTooLarge(len, max)));
            break;
        }
        let Some(frame) = rest.get(4..4 + len) else {
            break;
        };
        out.push(Message::decode(frame).map(|m| format!("{m:?}")));
        rest = &rest[4 + len..];
    }
    out
}

/// Feeds `stream` through a `FrameDecoder` in chunks whose sizes come from `seed`.
fn chunked(stream: &[u8], max: usize, seed: u8) -> Vec<Step> {
    let mut dec = FrameDecoder::new(max);
    let mut out = Vec::new();
    let mut rng = u32::from(seed);
    let mut pos = 0;
    loop {
        loop {
            match dec.next() {
                Ok(Some(m)) => out.push(Ok(format!("{m:?}"))),
                Ok(None) => break,
                Err(e @ wire::Error::FrameTooLarge(..)) => {
                    out.push(Err(e));
                    return out;
                }
                Err(e) => out.push(Err(e)),
            }
        }
        assert!(
            dec.capacity() <= max.saturating_add(4),
            "buffer above the frame limit"
        );
        if pos == stream.len() {
            return out;
        }
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let want = match seed % 4 {
            0 => 1,
            1 => 1 + (rng >> 16) as usize % 64,
            _ => 1 + (rng >> 8) as usize % 40_000,
        };
        let spare = dec.spare();
        assert!(!spare.is_empty(), "spare() empty after draining");
        let n = want.min(spare.len()).min(stream.len() - pos);
        spare[..n].copy_from_slice(&stream[pos..pos + n]);
        dec.advance(n);
        pos += n;
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The whole input as one frame: decoding then encoding gives back the same bytes.
    if let Ok(msg) = Message::decode(data) {
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(out.len(), msg.encoded_len());
        assert_eq!(&out[4..], data);
        assert_eq!(out[..4], (data.len() as u32).to_be_bytes());
    }

    if let Ok(buf) = <&[u8; HANDSHAKE_LEN]>::try_from(data) {
        if let Ok(hs) = Handshake::decode(buf) {
            assert_eq!(&hs.encode(), buf);
        }
    }

    if let Ok(hs) = ExtendedHandshake::decode(data) {
        assert_eq!(ExtendedHandshake::decode(&hs.encode()), Ok(hs));
    }

    // A stream: two bytes of frame limit, one byte of chunking seed, then the bytes.
    if data.len() >= 3 {
        let max = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let stream = &data[3..];
        assert_eq!(chunked(stream, max, data[2]), reference(stream, max));
    }
});
