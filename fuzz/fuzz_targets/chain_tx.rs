//! Transaction decoding must never panic; whatever decodes re-encodes to the same bytes, and the
//! one-call path (`decode_and_recover`) agrees with decoding, validating and recovering step by
//! step. BTT amount text that parses formats back to the same value.
#![no_main]

use chain_types::{
    decode_and_recover, decode_envelope, recover_sender, validate_tx, Encodable2718, Transaction,
    TxRules, Wei,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = decode_envelope(data) {
        assert_eq!(
            tx.encoded_2718(),
            data,
            "decoded transactions re-encode byte-exactly"
        );
        // Rules for the transaction's own chain, so validation goes past the chain id check.
        let rules = TxRules {
            allow_unprotected_legacy: true,
            ..TxRules::new(tx.chain_id().unwrap_or(1), 30_000_000)
        };
        let stepwise = validate_tx(&tx, &rules).and_then(|()| recover_sender(&tx));
        let oneshot = decode_and_recover(data, &rules).map(|r| r.sender());
        if data.len() <= rules.max_tx_bytes {
            assert_eq!(stepwise, oneshot);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(wei) = Wei::parse_btt(text) {
            assert_eq!(Wei::parse_btt(&wei.to_btt_string()), Ok(wei));
        }
    }
});
