//! BEP 11 `ut_pex` against hostile bytes: decoding never panics, never returns more than the cap,
//! and whatever decodes re-encodes to a message that decodes the same.
#![no_main]

use wire::{PexMessage, MAX_PEX_PEERS};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(pex) = PexMessage::decode(data) {
        assert!(pex.added.len() <= MAX_PEX_PEERS);
        assert!(pex.dropped.len() <= MAX_PEX_PEERS);
        let mut out = Vec::new();
        pex.encode(&mut out);
        assert_eq!(PexMessage::decode(&out), Ok(pex));
    }
});
