//! Block, header and receipt decoding must never panic; whatever decodes re-encodes to the same
//! bytes (so hashes cannot be malleated), and root and signature checks on decoded blocks are
//! total.
#![no_main]

use std::num::NonZeroUsize;

use chain_types::{Block, Header, Receipt, TxRules};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(block) = Block::decode(data) {
        assert_eq!(
            block.encoded(),
            data,
            "decoded blocks re-encode byte-exactly"
        );
        let _ = block.verify_roots();
        let threads = NonZeroUsize::new(2).expect("2 is not zero");
        let _ = block.validate_transactions(&TxRules::new(1, 30_000_000), threads);
        let _ = block.verify_receipts(&[]);
    }
    if let Ok(header) = Header::decode_exact(data) {
        assert_eq!(
            header.encoded(),
            data,
            "decoded headers re-encode byte-exactly"
        );
        let _ = header.hash();
    }
    if let Ok(receipt) = Receipt::decode_2718(data) {
        assert_eq!(
            receipt.encoded_2718(),
            data,
            "decoded receipts re-encode byte-exactly"
        );
    }
});
