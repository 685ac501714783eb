//! BEP 9 `ut_metadata` against hostile bytes: decoding never panics, whatever decodes re-encodes
//! to a message that decodes the same, and the assembler keeps its counts straight under any
//! sequence of pieces and resets.
#![no_main]

use wire::{MetadataAssembler, MetadataMessage, METADATA_PIECE_SIZE};

/// Drives an assembler with steps taken from `data`: `<piece:u8><len:u16><byte:u8>` stores a piece
/// of `len` copies of `byte`; a piece byte of 0xff resets instead.
fn assemble(data: &[u8]) {
    let Some((size, mut steps)) = data.split_first_chunk::<2>() else {
        return;
    };
    // 1..=65536 bytes: up to four pieces, so whole downloads are reachable.
    let size = u64::from(u16::from_be_bytes(*size)) + 1;
    let mut asm = MetadataAssembler::new(size).expect("size within bounds");
    let mut scratch = Vec::new();
    while let Some((step, rest)) = steps.split_first_chunk::<4>() {
        steps = rest;
        if step[0] == 0xff {
            asm.reset();
            assert_eq!(asm.missing_count(), asm.piece_count());
            continue;
        }
        let len = usize::from(u16::from_be_bytes([step[1], step[2]]));
        scratch.clear();
        scratch.resize(len, step[3]);
        let before = asm.clone();
        match asm.handle_data(u32::from(step[0]), size, &scratch) {
            Ok(true) => assert_eq!(asm.missing_count() + 1, before.missing_count()),
            Ok(false) | Err(_) => assert_eq!(asm, before),
        }
        assert_eq!(asm.missing().count() as u32, asm.missing_count());
        assert_eq!(asm.is_complete(), asm.missing_count() == 0);
        if let Some(m) = asm.metadata() {
            assert_eq!(m.len() as u64, size);
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = MetadataMessage::decode(data) {
        if let MetadataMessage::Data { data, .. } = msg {
            assert!(!data.is_empty() && data.len() <= METADATA_PIECE_SIZE);
        }
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(MetadataMessage::decode(&out), Ok(msg));
    }
    assemble(data);
});
